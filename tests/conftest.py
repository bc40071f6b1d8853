import jax
import jax.random as jr
import pytest

# Tests run in float64 (closed forms to ~1e-10); test_float32.py covers single precision.
jax.config.update("jax_enable_x64", True)
# Implicit rank promotion hides index bugs in kernels; make it an error.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jr.key(20261128)


# The longest test files first (measured: notebooks, the default `jgeo train`, training,
# sharding), so that under `--dist loadfile` no long file starts last while the other
# processes sit idle. A file not listed keeps its place after these.
_LONGEST_FIRST = [
    "test_notebooks.py",
    "test_cli.py",
    "test_notebooks_dynamics.py",
    "test_train.py",
    "test_sharding.py",
    "test_data_file.py",
    "test_geodesics.py",
    "test_recorder.py",
    "test_representation.py",
    "test_dynamics.py",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
