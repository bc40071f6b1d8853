"""Geodesic IVPs: closed forms (sphere great circles, Poincaré ball, straight lines),
conservation laws, parallel transport, batching with failures, and gradients."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from helpers import central_difference, mlp_decoder, sphere_embedding, tree_allclose

import jgeo

CLOSE = dict(rtol=1e-7, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("radius", [0.5, 2.0])
def test_sphere_geodesics_are_great_circles(radius):
    embed = sphere_embedding(radius)
    metric = jgeo.Pullback(embed)
    x, v = jnp.array([1.2, 0.4]), jnp.array([0.3, -0.5])
    ts = jnp.linspace(0.0, 1.0, 6)
    path = jgeo.geodesic(metric, x, v, ts)
    assert path.succeeded
    # Rotation formula in R³: P(t) = cos(st/r) P + r sin(st/r) V/s, s = |V|, V = J v.
    p0, big_v = embed(x), jax.jacfwd(embed)(x) @ v
    speed = jnp.linalg.norm(big_v)
    angle = ts[:, None] * speed / radius
    expected = jnp.cos(angle) * p0[None] + radius * jnp.sin(angle) * big_v[None] / speed
    assert tree_allclose(jax.vmap(embed)(path.xs), expected, **CLOSE)
    assert tree_allclose(embed(jgeo.exp_map(metric, x, v)), expected[-1], **CLOSE)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["auto", "ode"])
def test_poincare_ball_exp_at_origin(method):
    # g(0) = 4I and d(0, y) = 2 artanh |y|, so exp_0(v) = tanh(|v|) v / |v|.
    v = jnp.array([0.4, -0.9, 0.2])
    expected = jnp.tanh(jnp.linalg.norm(v)) * v / jnp.linalg.norm(v)
    y = jgeo.exp_map(jgeo.PoincareBall(3), jnp.zeros(3), v, method=method)
    assert tree_allclose(y, expected, **CLOSE)


@pytest.mark.slow
def test_linear_decoder_geodesics_are_straight_lines(key):
    a = jr.normal(key, (6, 3))
    metric = jgeo.Pullback(lambda z: a @ z)
    x, v = jnp.array([0.1, 0.2, -0.3]), jnp.array([1.0, -2.0, 0.5])
    assert tree_allclose(jgeo.exp_map(metric, x, v), x + v, **CLOSE)
    w = jnp.array([0.3, 0.3, 1.0])
    assert tree_allclose(jgeo.parallel_transport(metric, x, v, w), w, **CLOSE)


@pytest.mark.slow
def test_speed_is_conserved_on_a_curved_decoder(key):
    metric = jgeo.Pullback(mlp_decoder(key, 3, 5))
    x, v = jnp.array([0.2, -0.1, 0.3]), jnp.array([0.8, 0.5, -0.6])
    geodesic = eqx.filter_jit(jgeo.geodesic)
    path = geodesic(metric, x, v, jnp.linspace(0.0, 1.0, 9))
    speeds = jax.vmap(lambda p, u: u @ metric(p) @ u)(path.xs, path.vs)
    assert tree_allclose(speeds, jnp.full_like(speeds, speeds[0]), rtol=1e-7)
    assert jnp.max(jnp.abs(path.xs[-1] - (x + v))) > 1e-2  # really curved
    # The discrete curve's length approaches the geodesic's, |v|_g.
    dense = geodesic(metric, x, v, jnp.linspace(0.0, 1.0, 200)).xs
    assert tree_allclose(jgeo.curve_length(metric, dense), jnp.sqrt(speeds[0]), rtol=1e-4)
    assert tree_allclose(2 * jgeo.curve_energy(metric, dense), speeds[0], rtol=1e-3)


@pytest.mark.slow
def test_parallel_transport_is_an_isometry(key):
    metric = jgeo.Pullback(mlp_decoder(key, 3, 5))
    x, v = jnp.array([0.2, -0.1, 0.3]), jnp.array([0.8, 0.5, -0.6])
    w1, w2 = jnp.array([1.0, 0.0, 0.5]), jnp.array([-0.3, 1.0, 0.2])
    transport = eqx.filter_jit(jax.vmap(lambda w: jgeo.parallel_transport(metric, x, v, w)))
    p1, p2, pv = transport(jnp.stack([w1, w2, v]))
    y = eqx.filter_jit(jgeo.exp_map)(metric, x, v)
    for a, b, pa, pb in [(w1, w2, p1, p2), (w1, w1, p1, p1), (v, w2, pv, p2)]:
        assert tree_allclose(pa @ metric(y) @ pb, a @ metric(x) @ b, rtol=1e-7)
    # The velocity of a geodesic is parallel along it.
    final_velocity = eqx.filter_jit(jgeo.geodesic)(metric, x, v, jnp.ones(1)).vs[-1]
    assert tree_allclose(pv, final_velocity, **CLOSE)


@pytest.mark.slow
def test_batch_with_a_failure_keeps_the_others():
    # The ODE path (the closed form has no step budget to run out of).
    ball = jgeo.PoincareBall(2)
    xs = jnp.zeros((3, 2))
    vs = jnp.array([[0.3, 0.1], [40.0, 0.0], [-0.2, 0.5]])  # the middle one needs many steps
    short = jgeo.ODESolver(max_steps=64)
    solve = jax.jit(
        jax.vmap(lambda x, v: jgeo.exp_map(ball, x, v, method="ode", ode=short, throw=False))
    )
    out = solve(xs, vs)
    assert jnp.all(jnp.isnan(out[1]))
    for i in [0, 2]:
        norm = jnp.linalg.norm(vs[i])
        assert tree_allclose(out[i], jnp.tanh(norm) * vs[i] / norm, **CLOSE)
    paths = jax.vmap(
        lambda x, v: jgeo.geodesic(ball, x, v, jnp.ones(1), method="ode", ode=short, throw=False)
    )(xs, vs)
    assert paths.succeeded.tolist() == [True, False, True]


def test_failure_raises_by_default():
    with pytest.raises(Exception, match="max_steps"):
        jgeo.exp_map(
            jgeo.PoincareBall(2),
            jnp.zeros(2),
            jnp.array([40.0, 0.0]),
            method="ode",
            ode=jgeo.ODESolver(max_steps=16),
        )


@pytest.mark.slow
def test_gradients_through_exp_map(key):
    decoder = mlp_decoder(key, 2, 4)
    x, v = jnp.array([0.2, -0.3]), jnp.array([0.5, 0.4])
    weights = jnp.array([1.0, -2.0])

    @eqx.filter_jit  # compiled once: run eagerly, each call would trace the solver again
    def loss(point, velocity, mlp):
        return weights @ jgeo.exp_map(jgeo.Pullback(mlp), point, velocity)

    dx, dv = eqx.filter_jit(jax.grad(lambda p, w: loss(p, w, decoder), argnums=(0, 1)))(x, v)
    u = jnp.array([0.6, 0.8])
    fd = dict(rtol=1e-5, atol=1e-7)
    assert tree_allclose(dx @ u, central_difference(lambda p: loss(p, v, decoder), x, u), **fd)
    assert tree_allclose(dv @ u, central_difference(lambda w: loss(x, w, decoder), v, u), **fd)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: loss(x, v, m)))(decoder)
    assert jnp.max(jnp.abs(grads.layers[0].weight)) > 0
    # Forward mode, as Newton shooting needs it.
    forward = jgeo.ODESolver(adjoint=diffrax.ForwardMode())
    jac = jax.jit(jax.jacfwd(lambda w: jgeo.exp_map(jgeo.Pullback(decoder), x, w, ode=forward)))(v)
    assert tree_allclose(weights @ jac, dv, rtol=1e-6)


def test_float32_geodesic_keeps_dtype():
    x, v = jnp.zeros(2, jnp.float32), jnp.array([0.3, 0.4], jnp.float32)
    y = jgeo.exp_map(jgeo.PoincareBall(2), x, v)
    assert y.dtype == jnp.float32
    assert tree_allclose(y, (jnp.tanh(0.5) * v / 0.5).astype(jnp.float32))


def test_curve_input_validation():
    with pytest.raises(ValueError, match=r"`c` must be a discrete curve of shape \(n ≥ 2, d\)"):
        jgeo.curve_length(jgeo.Euclidean(2), jnp.zeros(2))
    with pytest.raises(ValueError, match="`ts` must be a non-empty 1-D"):
        jgeo.geodesic(jgeo.Euclidean(2), jnp.zeros(2), jnp.ones(2), jnp.ones((2, 2)))
    line = jnp.stack([jnp.linspace(0, 3, 7), jnp.linspace(0, 4, 7)], -1)
    assert tree_allclose(jgeo.curve_length(jgeo.Euclidean(2), line), jnp.asarray(5.0))
    assert tree_allclose(jgeo.curve_energy(jgeo.Euclidean(2), line), jnp.asarray(12.5))


@pytest.mark.slow
def test_degenerate_inputs_are_reported():
    # A zero Jacobian at the start: the spray is undefined there.
    cusp = jgeo.Pullback(lambda z: jnp.concatenate([z * z, z**3]))
    path = jgeo.geodesic(cusp, jnp.zeros(2), jnp.ones(2), jnp.ones(1), throw=False)
    assert not path.succeeded and jnp.all(jnp.isnan(path.xs))
    with pytest.raises(Exception):
        jgeo.exp_map(cusp, jnp.zeros(2), jnp.ones(2))
    # From outside the Poincaré ball a geodesic cannot reach the inside: the metric blows
    # up on the unit sphere, so the connecting geodesic is reported as not converged.
    ball = jgeo.PoincareBall(2)
    result = jgeo.connecting_geodesic(ball, jnp.array([1.5, 0.0]), jnp.zeros(2), throw=False)
    assert not result.converged and jnp.isnan(result.length)
