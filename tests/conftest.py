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
