"""Closed-form geodesics of the analytic metrics, against the geodesic ODE (the
reference), at large velocities in float32, and on points outside their domain."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from helpers import KERNELS, central_difference, tree_allclose

import jgeo

CLOSE = dict(rtol=1e-7, atol=1e-8)

SPACE_FORMS = {
    "euclidean": jgeo.Euclidean(3),
    "ball": jgeo.PoincareBall(3),
    "half_space": jgeo.PoincareHalfSpace(3),
    "sphere": jgeo.StereographicSphere(3, radius=2.0),
    "product": jgeo.Product(jgeo.PoincareBall(2), jgeo.StereographicSphere(1, radius=0.5)),
}
X = jnp.array([0.1, -0.2, 0.3])
V = jnp.array([0.5, 0.3, -0.4])
W = jnp.array([0.2, -0.7, 0.1])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPACE_FORMS))
def test_closed_forms_agree_with_the_geodesic_ode(name):
    metric = SPACE_FORMS[name]
    assert metric.closed_form_geodesics
    ts = jnp.linspace(0.0, 1.0, 4)
    closed = jgeo.geodesic(metric, X, V, ts)
    ode = eqx.filter_jit(jgeo.geodesic)(metric, X, V, ts, method="ode")  # compiled once
    assert closed.succeeded and ode.succeeded and closed.num_steps == 0
    assert tree_allclose(closed.xs, ode.xs, **CLOSE)
    assert tree_allclose(closed.vs, ode.vs, **CLOSE)  # γ' is v transported along γ
    transported = jgeo.parallel_transport(metric, X, V, W)
    reference = eqx.filter_jit(jgeo.parallel_transport)(metric, X, V, W, method="ode")
    assert tree_allclose(transported, reference, **CLOSE)
    # log inverts the ODE's exp, and the distance is the length ‖v‖_g of that geodesic.
    y = ode.xs[-1]
    result = jgeo.connecting_geodesic(metric, X, y)
    assert result.converged and result.residual < 1e-12
    assert tree_allclose(result.velocity, V, **CLOSE)
    assert tree_allclose(result.length, jnp.sqrt(V @ metric(X) @ V), **CLOSE)
    assert tree_allclose(jgeo.distance(metric, y, X), result.length, **CLOSE)  # symmetric
    curve = jgeo.geodesic(metric, X, V, jnp.linspace(0, 1, 16)).xs
    assert tree_allclose(result.curve, curve, **CLOSE)


@pytest.mark.slow
def test_closed_forms_are_differentiable_and_batch(key):
    ball = jgeo.PoincareBall(3)
    u = jnp.array([0.6, 0.0, 0.8])
    for fn in [
        lambda x: jgeo.exp_map(ball, x, V),
        lambda x: jgeo.log_map(ball, X, x),
        lambda x: jgeo.parallel_transport(ball, x, V, W),
        lambda x: jgeo.distance(jgeo.StereographicSphere(3, 2.0), X, x),
        lambda x: jgeo.exp_map(jgeo.PoincareHalfSpace(3), x, V),
    ]:
        y = jnp.array([-0.2, 0.1, 0.4])
        jvp = jax.jvp(fn, (y,), (u,))[1]
        assert tree_allclose(jvp, central_difference(fn, y, u), rtol=1e-6, atol=1e-8)
    # d(x, ·) has a gradient at x itself (0, by symmetry), not NaN.
    assert tree_allclose(jax.grad(lambda y: jgeo.distance(ball, X, y))(X), jnp.zeros(3))
    xs = 0.3 * jr.normal(key, (5, 3))
    batched = jax.jit(jax.vmap(lambda a, b: jgeo.distance(ball, a, b), in_axes=(0, None)))(xs, X)
    assert tree_allclose(batched, jnp.stack([jgeo.distance(ball, a, X) for a in xs]))


@pytest.mark.slow
def test_ball_exp_never_reaches_the_boundary_in_float32():
    # The geodesic ODE in float32 runs into the unit sphere for large velocities and
    # came back as exp₀((15, 0)) = (−0.995, 0). The closed form is exact up to speed
    # ~6.6, where tanh rounds to within 32ε of 1; beyond, the end (tanh(15) ≈ 1 − 1.9e-13)
    # has no float32 point inside the ball, and the answer is NaN, not the boundary.
    ball = jgeo.PoincareBall(2)
    x = jnp.zeros(2, jnp.float32)
    for speed in [3.0, 6.0]:
        v = jnp.array([speed, 0.0], jnp.float32)
        y = jgeo.exp_map(ball, x, v)
        assert y.dtype == jnp.float32 and bool(ball.contains(y))
        assert abs(float(y[0]) - float(jnp.tanh(speed))) < 1e-6 and y[1] == 0
    for speed in [15.0, 50.0, 1e4]:
        y = jgeo.exp_map(ball, x, jnp.array([speed, 0.0], jnp.float32), throw=False)
        assert y.dtype == jnp.float32 and jnp.all(jnp.isnan(y))
    # From points near the boundary, in every direction, the result stays inside.
    angles = jnp.linspace(0, 2 * jnp.pi, 16, endpoint=False, dtype=jnp.float32)
    units = jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)
    ends = jax.vmap(lambda x, v: jgeo.exp_map(ball, x, v))(0.999 * units, 3e-3 * units[::-1])
    assert jnp.all(jax.vmap(ball.contains)(ends))
    # The ODE path near the boundary: accurate endpoints pass the speed check (the metric
    # there is known only to tens of percent in float32, and the check allows for it) ...
    for speed in [5.0, 8.0, 10.0]:
        y = jgeo.exp_map(ball, x, jnp.array([speed, 0.0], jnp.float32), method="ode")
        assert abs(float(y[0]) - float(jnp.tanh(speed))) < 1e-6
    # ... and the one that came back through the ball reports the failure.
    bad = jgeo.exp_map(ball, x, jnp.array([15.0, 0.0], jnp.float32), method="ode", throw=False)
    assert jnp.all(jnp.isnan(bad))
    with pytest.raises(eqx.EquinoxRuntimeError, match="lost accuracy|outside the metric"):
        jgeo.exp_map(ball, x, jnp.array([15.0, 0.0], jnp.float32), method="ode")


def test_half_space_and_sphere_at_large_velocities_in_float32():
    half = jgeo.PoincareHalfSpace(2)
    x = jnp.array([0.3, 0.5], jnp.float32)
    for v in [[0.0, -5.0], [4.0, 1.0], [0.0, 5.0]]:
        y = jgeo.exp_map(half, x, jnp.array(v, jnp.float32))
        assert bool(half.contains(y)) and y.dtype == jnp.float32
    # Lengths 50 to 80 end beyond what float32 holds through the ball: NaN.
    long = jnp.array([[0.0, -40.0], [25.0, 3.0], [0.0, 40.0]], jnp.float32)
    ends = jax.jit(jax.vmap(lambda v: jgeo.exp_map(half, x, v, throw=False)))(long)
    assert jnp.all(jnp.isnan(ends))
    # Straight down, x_d shrinks like e^{−t}: exp((0, 0.5), (0, −s)) = (0, 0.5 e^{−2s}).
    y = jgeo.exp_map(half, x, jnp.array([0.0, -2.0], jnp.float32))
    assert tree_allclose(y, jnp.array([0.3, 0.5 * jnp.exp(-4.0)], jnp.float32))
    # A great circle of length 2πr comes back to its start.
    sphere = jgeo.StereographicSphere(2, radius=2.0)
    z = jnp.array([0.3, -0.1], jnp.float32)
    v = jnp.array([1.0, 0.0], jnp.float32)
    around = 2 * jnp.pi * 2.0 / jnp.sqrt(v @ sphere(z) @ v)
    assert tree_allclose(jgeo.exp_map(sphere, z, around * v), z, atol=1e-4)


# Velocities the closed forms have no answer for: not finite, or so long that the end
# point is lost (the ball's tanh rounds to 1; the sphere's angle wraps with no digits
# left). Each once gave the base point or a wrong finite point; now NaN, with the code
# `not_finite`, and under vmap the good velocity beside them keeps its value.
NO_ANSWER = {
    "ball": (jgeo.PoincareBall(2), [[jnp.nan, 0.0], [jnp.inf, 0.0], [1e20, 0.0], [1e38, 0.0]]),
    "half_space": (jgeo.PoincareHalfSpace(2), [[jnp.nan, 0.0], [1e20, 0.0], [0.0, 1e38]]),
    "sphere": (
        jgeo.StereographicSphere(2),
        [[0.0, jnp.nan], [1e20, 0.0], [1e38, 0.0], [1e8, 1e8]],  # θ ≈ 2.7e8 > 1/√ε
    ),
}


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("name", list(NO_ANSWER))
def test_exp_map_without_an_answer_is_nan_and_not_finite(name, dtype):
    metric, bad = NO_ANSWER[name]
    x = jnp.array([0.1, 0.2], dtype)
    good = jnp.array([0.3, -0.2], dtype)
    vs = jnp.concatenate([good[None], jnp.array(bad, dtype)])

    def end(v):
        path = jgeo.geodesic(metric, x, v, jnp.ones(1, dtype), throw=False)
        flagged = path.result == jgeo.GeodesicResult.not_finite
        return jgeo.exp_map(metric, x, v, throw=False), flagged

    @jax.jit  # one program: eager calls would dispatch op by op
    def run(vs):
        first = jax.grad(lambda v: jgeo.exp_map(metric, x, v, throw=False)[0])
        return jax.vmap(end)(vs), jax.vmap(first)(vs), jgeo.exp_map(metric, x, vs[0])

    (ys, flagged), grads, alone = run(vs)
    assert ys.dtype == dtype
    assert tree_allclose(ys[0], alone) and jnp.all(jnp.isfinite(grads[0]))
    assert jnp.all(jnp.isnan(ys[1:])) and jnp.all(flagged == jnp.array([False] + [True] * len(bad)))
    with pytest.raises(eqx.EquinoxRuntimeError, match="no finite value"):
        eqx.filter_jit(jgeo.exp_map)(metric, x, vs[-1])


@pytest.mark.slow
def test_points_outside_the_domain_are_refused():
    ball = jgeo.PoincareBall(2)
    outside = jnp.array([1.5, 0.0])
    for name, kernel in KERNELS.items():
        if name in ("riemann", "ricci", "scalar_curvature", "christoffel", "log_volume"):
            with pytest.raises(eqx.EquinoxRuntimeError, match="outside the domain of PoincareBall"):
                kernel(ball, outside)
    with pytest.raises(eqx.EquinoxRuntimeError, match="outside the domain of PoincareHalfSpace"):
        jgeo.scalar_curvature(jgeo.PoincareHalfSpace(2), jnp.array([0.3, -1.0]))
    # One bad point in a jitted batch is found too.
    batch = jnp.array([[0.1, 0.2], [1.5, 0.0]])
    with pytest.raises(Exception, match="outside the domain"):
        jax.jit(jax.vmap(jgeo.scalar_curvature, in_axes=(None, 0)))(ball, batch)
    # Geodesic functions: an error, or with throw=False NaN and a failure flag.
    with pytest.raises(eqx.EquinoxRuntimeError, match="outside the metric's domain"):
        jgeo.exp_map(ball, outside, jnp.array([0.1, 0.0]))
    assert jnp.all(jnp.isnan(jgeo.exp_map(ball, outside, jnp.ones(2), throw=False)))
    path = jgeo.geodesic(ball, outside, jnp.ones(2), jnp.ones(1), method="ode", throw=False)
    assert not path.succeeded and path.result == jgeo.GeodesicResult.outside_domain
    for solver in [None, jgeo.EnergyBVP(), jgeo.Hybrid()]:
        result = jgeo.connecting_geodesic(
            ball, outside, jnp.array([0.0, 1.6]), solver=solver, throw=False
        )
        assert not result.converged and jnp.isnan(result.length), solver
        assert result.result == jgeo.BVPResult.outside_domain, solver
