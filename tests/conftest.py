import os
from pathlib import Path

# A persistent compilation cache shared by the xdist workers and by the processes the
# tests start (`jgeo train` subprocesses, notebook kernels inherit the environment): the
# same train steps, probes and kernels compile in several files, and a rerun finds them
# all. Set before jax is imported, which reads these variables then. Loading from it makes
# XLA log once per program on stderr: a warning ("Assume version compatibility") and, on
# CPUs with AVX-512, two errors that are not (jax#38445, see `_compilation_cache`), which
# broke the tests that read a command's stderr (a clean-clone CI run's Ctrl-C test got
# three lines): level 3 keeps XLA's fatal messages only, as the `jgeo` command does.
_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.random as jr  # noqa: E402
import pytest  # noqa: E402

# Tests run in float64 (closed forms to ~1e-10); test_float32.py covers single precision.
jax.config.update("jax_enable_x64", True)
# Implicit rank promotion hides index bugs in kernels; make it an error.
jax.config.update("jax_numpy_rank_promotion", "raise")
# In case a plugin imported jax before this file set the variables above.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)


@pytest.fixture
def key():
    return jr.key(20261128)


# Test files by their measured time (longest first, summed over their tests in a cold
# run on 2 cores), so that under `--dist loadfile` no long file starts last while the
# other process sits idle. A file not listed runs after these: list a new long one.
_LONGEST_FIRST = [
    "test_notebooks.py",
    "test_train.py",
    "test_geodesics.py",
    "test_log_map.py",
    "test_cli.py",
    # The 4-device subprocess's collectives spin on the cores it shares: beside notebook 02
    # it more than doubled that notebook's time (55 s alone, 127 s beside it). Not first.
    "test_sharding.py",
    "test_transforms.py",
    "test_space_forms.py",
    "test_stats.py",
    "test_dynamics.py",
    "test_notebooks_dynamics.py",
    "test_data_file.py",
    "test_damaged_files.py",
    "test_probe_saved.py",
    "test_docs.py",
    "test_representation.py",
    "test_fisher.py",
    "test_recorder.py",
    "test_regularizers.py",
    "test_landscape.py",
    "test_properties.py",
    "test_float32.py",
    "test_diagnostics.py",
    "test_nn.py",
    "test_closed_forms.py",
    "test_run_integrity.py",
    "test_readme.py",
    "test_imports.py",
    "test_cli_errors.py",
    "test_optim.py",
    "test_data.py",
    "test_errors.py",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
