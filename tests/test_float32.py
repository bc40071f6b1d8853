"""The float32 tier: dtype in = dtype out, and values agree with float64."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import pytest
from helpers import KERNELS, mlp_decoder, tree_allclose

import jgeo


def as_float32(tree):
    return jtu.tree_map(lambda a: a.astype(jnp.float32) if is_float_array(a) else a, tree)


def is_float_array(a):
    return isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jnp.floating)


@pytest.mark.parametrize("name", list(KERNELS))
def test_float32_in_float32_out(name, key):
    kernel = KERNELS[name]
    decoder = mlp_decoder(key, 3, 5)
    x = jnp.array([0.3, -0.4, 0.2])
    reference = kernel(jgeo.Pullback(decoder), x)
    single = jax.jit(kernel)(jgeo.Pullback(as_float32(decoder)), x.astype(jnp.float32))
    assert single.dtype == jnp.float32
    scale = float(jnp.max(jnp.abs(reference)))
    assert tree_allclose(single, reference.astype(jnp.float32), atol=2e-4 * (1 + scale))


@pytest.mark.slow
@pytest.mark.parametrize(
    "metric", [jgeo.PoincareBall(3), jgeo.StereographicSphere(3, 2.0), jgeo.PoincareHalfSpace(3)]
)
def test_analytic_metrics_keep_float32(metric):
    x = jnp.array([0.1, -0.2, 0.3], dtype=jnp.float32)
    for kernel in KERNELS.values():
        assert kernel(metric, x).dtype == jnp.float32
    assert jgeo.gaussian_curvature(jgeo.PoincareBall(2), x[:2]).dtype == jnp.float32


@pytest.mark.slow
def test_connecting_geodesic_keeps_float32_under_x64(key):
    # The suite runs with x64 on, where optimistix mixes float64 scalars into float32
    # solves; jgeo solves in float64 there and returns float32.
    decoder = as_float32(mlp_decoder(key, 2, 4))
    x, y = jnp.array([0.1, -0.2], jnp.float32), jnp.array([0.5, 0.3], jnp.float32)
    connect = eqx.filter_jit(lambda d, x, y: jgeo.connecting_geodesic(jgeo.Pullback(d), x, y))
    single, double = connect(decoder, x, y), connect(mlp_decoder(key, 2, 4), x, y)
    assert single.velocity.dtype == single.curve.dtype == single.length.dtype == jnp.float32
    assert bool(single.converged)
    assert jnp.allclose(single.velocity, double.velocity, rtol=1e-3, atol=1e-4)
