"""The energy stage's solver: Levenberg–Marquardt on a block-banded Jacobian (the
residuals of a curve's segments), against dense linear algebra and optimistix."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
import pytest

import jgeo
from jgeo._banded_least_squares import (
    BandedLevenbergMarquardt,
    _linearise,
    probe_band,
    solve_block_tridiagonal,
)
from jgeo._energy import energy_residuals

N, D, M = 5, 3, 7


def _blocks(a, offset):
    return jnp.stack([a[i * D : (i + 1) * D, (i + offset) * D : (i + offset + 1) * D]
                      for i in range(N - offset)])  # fmt: skip


def _segment_residuals(z, weights):
    # Row i (segment i of the curve x, z₀, …, z_{N−1}, y) depends on its two ends only.
    curve = jnp.concatenate([jnp.ones((1, D)), z, -jnp.ones((1, D))])
    start, end = curve[:-1], curve[1:]
    return jnp.tanh(end @ weights) - jnp.sin(start @ weights) * end[:, :1] - 0.1


def test_block_tridiagonal_solve_equals_the_dense_solve(key):
    k1, k2 = jr.split(key)
    m = jr.normal(k1, (N * D, N * D))
    band = np.kron(np.abs(np.subtract.outer(np.arange(N), np.arange(N))) <= 1, np.ones((D, D)))
    a = (m @ m.T + N * D * jnp.eye(N * D)) * band  # positive definite: diagonally dominant
    b = jr.normal(k2, (N, D))
    x = solve_block_tridiagonal(_blocks(a, 0), _blocks(a, 1), b)
    np.testing.assert_allclose(x.ravel(), jnp.linalg.solve(a, b.ravel()), atol=1e-12)
    # One block: no blocks above the diagonal.
    one = solve_block_tridiagonal(_blocks(a, 0)[:1], _blocks(a, 1)[:0], b[:1])
    np.testing.assert_allclose(one[0], jnp.linalg.solve(a[:D, :D], b[0]), atol=1e-12)


def test_two_colours_of_probes_give_every_block_of_the_normal_equations(key):
    k1, k2 = jr.split(key)
    weights, z = jr.normal(k1, (D, M)), jr.normal(k2, (N, D))
    at, _ = _linearise(lambda z, w: (_segment_residuals(z, w), None), z, weights)
    jac = jax.jacfwd(lambda v: _segment_residuals(v.reshape(N, D), weights).ravel())(z.ravel())
    normal = jac.T @ jac
    np.testing.assert_allclose(at.diag, _blocks(normal, 0), atol=1e-12)
    np.testing.assert_allclose(at.upper, _blocks(normal, 1), atol=1e-12)
    gradient = jac.T @ _segment_residuals(z, weights).ravel()
    np.testing.assert_allclose(at.gradient.ravel(), gradient, atol=1e-12)
    # Blocks two apart vanish: the structure the probes rely on.
    np.testing.assert_allclose(_blocks(normal, 2), 0.0, atol=0.0)


@pytest.mark.parametrize("jitter", [0.0, 1e-3])
def test_a_pullbacks_band_from_decoder_jacobians_equals_the_probed_band(key, jitter):
    # The chord residuals of a decoded curve give their Jacobian's band from the decoder's
    # Jacobian at each fine point (d products a point) instead of 2·d probes of the curve.
    k1, k2, k3 = jr.split(key, 3)
    w1, w2 = jr.normal(k1, (D, 16)), jr.normal(k2, (16, M))
    metric = jgeo.Pullback(lambda z: jnp.tanh(z @ w1) @ w2, jitter=jitter)
    residuals, band = energy_residuals(metric)
    z, ends = jr.normal(k3, (N, D)), (jnp.zeros(D), jnp.ones(D))
    probed, _ = probe_band(lambda v, a: (residuals(v, a), None), z, ends)
    for built, expected in zip(band(z, ends), probed, strict=True):
        np.testing.assert_allclose(built, expected, atol=1e-12)
    # The general residuals (g at segment midpoints) have no such shortcut.
    assert energy_residuals(jgeo.PoincareBall(D))[1] is None


def test_it_finds_the_minimum_optimistix_finds_and_differentiates_through_it(key):
    weights = 0.5 * jr.normal(key, (D, M))
    z0 = jnp.linspace(1.0, -1.0, N + 2)[1:-1, None] * jnp.ones((1, D))

    def solve(solver, w):
        sol = optx.least_squares(_segment_residuals, solver, z0, args=w, throw=False)
        return sol.value, sol.result

    banded, result = solve(BandedLevenbergMarquardt(rtol=1e-10, atol=1e-10), weights)
    dense, _ = solve(optx.LevenbergMarquardt(rtol=1e-10, atol=1e-10), weights)
    assert result == optx.RESULTS.successful
    np.testing.assert_allclose(banded, dense, atol=1e-7)

    # Implicit-function gradients (optimistix's adjoint) equal the dense solver's.
    def loss(solver):
        return jax.grad(lambda w: jnp.sum(solve(solver, w)[0] ** 2))(weights)

    np.testing.assert_allclose(
        loss(BandedLevenbergMarquardt(rtol=1e-10, atol=1e-10)),
        loss(optx.LevenbergMarquardt(rtol=1e-10, atol=1e-10)),
        rtol=1e-5,
    )


def test_a_stationary_start_stops_at_once_and_nan_never_succeeds():
    weights = jnp.zeros((D, M))  # residuals −0.1 everywhere, whatever z: J = 0
    z0 = jnp.zeros((N, D))
    solver = BandedLevenbergMarquardt(rtol=1e-8, atol=1e-8)
    sol = optx.least_squares(_segment_residuals, solver, z0, args=weights, throw=False)
    assert sol.result == optx.RESULTS.successful and sol.stats["num_steps"] <= 1
    nan = jnp.full((D, M), jnp.nan)
    sol = optx.least_squares(_segment_residuals, solver, z0, args=nan, max_steps=8, throw=False)
    assert sol.result != optx.RESULTS.successful
