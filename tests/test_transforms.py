"""Every kernel composes with jit, vmap, vmap∘vmap, grad and jacfwd — with respect to the
point and to the decoder's parameters — and derivatives match finite differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from flax import nnx
from helpers import (
    KERNELS,
    central_difference,
    mlp_decoder,
    random_like,
    tree_allclose,
    tree_dot,
)

import jgeo

D_LATENT = 3
FD = dict(rtol=1e-5, atol=1e-7)


@pytest.fixture
def decoder(key):
    return mlp_decoder(key, D_LATENT, 5)


@pytest.fixture
def points(key):
    return 0.5 * jr.normal(jr.fold_in(key, 7), (4, D_LATENT))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KERNELS))
def test_jit_and_vmap(name, decoder, points):
    kernel, metric = KERNELS[name], jgeo.Pullback(decoder)
    eager = jnp.stack([kernel(metric, x) for x in points])
    jitted = jax.jit(jax.vmap(kernel, in_axes=(None, 0)))(metric, points)
    assert tree_allclose(jitted, eager)
    grid = points.reshape(2, 2, D_LATENT)
    nested = jax.vmap(jax.vmap(kernel, in_axes=(None, 0)), in_axes=(None, 0))(metric, grid)
    assert tree_allclose(nested, eager.reshape((2, 2) + eager.shape[1:]))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KERNELS))
def test_derivatives_in_the_point(name, decoder, points, key):
    kernel, metric = KERNELS[name], jgeo.Pullback(decoder)
    x, direction = points[0], jr.normal(jr.fold_in(key, 3), (D_LATENT,))
    weights = jr.normal(jr.fold_in(key, 4), jnp.shape(kernel(metric, x)))

    def scalar(y):
        return jnp.sum(weights * kernel(metric, y))

    expected = central_difference(lambda y: kernel(metric, y), x, direction)
    assert tree_allclose(jax.jacfwd(lambda y: kernel(metric, y))(x) @ direction, expected, **FD)
    assert tree_allclose(jax.grad(scalar)(x) @ direction, jnp.sum(weights * expected), **FD)
    batched = jax.grad(lambda ys: jnp.sum(jax.vmap(scalar)(ys)))(points)
    assert tree_allclose(batched[0], jax.grad(scalar)(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KERNELS))
def test_gradient_reaches_decoder_parameters(name, decoder, points, key):
    kernel, x = KERNELS[name], points[1]

    @eqx.filter_jit
    def loss(mlp):
        return jnp.sum(jnp.sin(kernel(jgeo.Pullback(mlp), x)))

    grads = eqx.filter_grad(loss)(decoder)
    direction = random_like(jr.fold_in(key, 5), decoder)
    params, static = eqx.partition(decoder, eqx.is_inexact_array)
    tangent, _ = eqx.partition(direction, eqx.is_inexact_array)
    expected = central_difference(lambda p: loss(eqx.combine(p, static)), params, tangent)
    assert tree_allclose(tree_dot(grads, tangent), expected, **FD)


@pytest.mark.slow
def test_generic_path_is_differentiable(decoder, points):
    metric, x = jgeo.Pullback(decoder), points[2]
    fast = jax.grad(lambda y: jgeo.scalar_curvature(metric, y))(x)
    generic = jax.grad(lambda y: jgeo.scalar_curvature(metric, y, method="autodiff"))(x)
    assert tree_allclose(fast, generic, atol=1e-8)


def test_metric_is_a_pytree_no_retrace(key, points):
    # New parameter values must not recompile: the decoder's arrays are leaves.
    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def curvature(metric, x):
        return jgeo.scalar_curvature(metric, x)

    first = curvature(jgeo.Pullback(mlp_decoder(key, D_LATENT, 5)), points[0])
    second = curvature(jgeo.Pullback(mlp_decoder(jr.fold_in(key, 1), D_LATENT, 5)), points[0])
    assert not tree_allclose(first, second)


@pytest.mark.slow
def test_flax_nnx_decoder(points):
    class Decoder(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(D_LATENT, 16, rngs=rngs, param_dtype=jnp.float64)
            self.out = nnx.Linear(16, 6, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, z):
            return self.out(jnp.tanh(self.hidden(z)))

    decoder = Decoder(nnx.Rngs(0))
    metric = jgeo.Pullback(decoder)
    x = points[0]
    jac = jax.jacfwd(decoder)(x)
    assert tree_allclose(jax.jit(lambda m, y: m(y))(metric, x), jac.T @ jac)
    # Gradients of a curvature reach the NNX parameters.
    grads = nnx.grad(lambda model: jgeo.scalar_curvature(jgeo.Pullback(model), x))(decoder)
    assert jnp.all(jnp.isfinite(grads["hidden"]["kernel"][...]))
    assert jnp.max(jnp.abs(grads["hidden"]["kernel"][...])) > 0


def test_closure_over_parameters_is_differentiable(decoder, points):
    # The common research idiom: a function closing over traced parameters.
    params, static = eqx.partition(decoder, eqx.is_inexact_array)

    def loss(p):
        mlp = eqx.combine(p, static)
        return jgeo.log_volume(jgeo.Pullback(lambda z: mlp(z)), points[0])

    grads = jax.grad(loss)(params)
    expected = eqx.filter_grad(lambda m: jgeo.log_volume(jgeo.Pullback(m), points[0]))(decoder)
    assert tree_allclose(grads, eqx.partition(expected, eqx.is_inexact_array)[0])
