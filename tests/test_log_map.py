"""Connecting geodesics, the log map and distances: closed forms, exp∘log = id on a
curved decoder, batches with failures, and gradients."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from helpers import mlp_decoder, sphere_embedding, tree_allclose

import jgeo
from jgeo._bvp import energy_start

CLOSE = dict(rtol=1e-7, atol=1e-8)


def batched_distance(metric, **kwargs):
    return jax.jit(jax.vmap(lambda a, b: jgeo.distance(metric, a, b, **kwargs)))


def test_poincare_ball_distances(key):
    k1, k2 = jr.split(key)
    xs, ys = 0.25 * jr.normal(k1, (4, 3)), 0.25 * jr.normal(k2, (4, 3))
    assert jnp.all(jnp.sum(xs**2, -1) < 0.8) and jnp.all(jnp.sum(ys**2, -1) < 0.8)
    sq = jnp.sum((xs - ys) ** 2, -1)
    denominator = (1 - jnp.sum(xs**2, -1)) * (1 - jnp.sum(ys**2, -1))
    expected = jnp.arccosh(1 + 2 * sq / denominator)
    assert tree_allclose(batched_distance(jgeo.PoincareBall(3))(xs, ys), expected, **CLOSE)


def test_half_space_distances(key):
    k1, k2 = jr.split(key)
    xs = jr.uniform(k1, (4, 2), minval=0.3, maxval=1.5)
    ys = jr.uniform(k2, (4, 2), minval=0.3, maxval=1.5)
    sq = jnp.sum((xs - ys) ** 2, -1)
    expected = jnp.arccosh(1 + sq / (2 * xs[:, -1] * ys[:, -1]))
    metric = jgeo.PoincareHalfSpace(2)
    assert tree_allclose(batched_distance(metric)(xs, ys), expected, **CLOSE)


@pytest.mark.slow
@pytest.mark.parametrize("newton_steps", [1, None])
def test_sphere_distance_is_radius_times_angle(newton_steps):
    radius = 2.0
    embed = sphere_embedding(radius)
    x, y = jnp.array([1.0, 0.2]), jnp.array([1.9, 1.1])
    cosine = embed(x) @ embed(y) / radius**2
    # One Newton step, then chord steps (the default); or Newton steps throughout.
    solver = jgeo.Hybrid(shooting=jgeo.ShootingBVP(newton_steps=newton_steps))
    result = jax.jit(lambda *a: jgeo.connecting_geodesic(*a, solver=solver))(
        jgeo.Pullback(embed), x, y
    )
    assert result.converged
    assert tree_allclose(result.length, radius * jnp.arccos(cosine), **CLOSE)
    assert tree_allclose(result.curve[0], x) and tree_allclose(result.curve[-1], y, **CLOSE)
    assert tree_allclose(2 * result.energy, result.length**2, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("solver", [jgeo.Hybrid(), jgeo.ShootingBVP(), jgeo.EnergyBVP()])
def test_linear_decoder_distance(solver, key):
    a = jr.normal(key, (5, 2))
    x, y = jnp.array([0.1, -0.4]), jnp.array([1.2, 0.7])
    result = jgeo.connecting_geodesic(jgeo.Pullback(lambda z: a @ z), x, y, solver=solver)
    assert tree_allclose(result.length, jnp.linalg.norm(a @ (y - x)), rtol=1e-7)
    assert tree_allclose(result.velocity, y - x, rtol=1e-6)


def test_shooting_solves_tight_tolerances_with_an_eighth_order_method():
    # Shooting solves its ODE to a hundredth of rtol: Dopri8 below 1e-7 (float64's exact
    # log maps), Tsit5 above (loose distances, float32), or what the user chose.
    assert isinstance(jgeo.ShootingBVP().ode(1e-10), diffrax.Dopri8)
    assert isinstance(jgeo.ShootingBVP().ode(1e-5), diffrax.Tsit5)
    chosen = jgeo.ShootingBVP(ode_solver=diffrax.Heun())
    assert isinstance(chosen.ode(1e-10), diffrax.Heun)
    # Chord steps keep the Jacobian of the first Newton step, not the seed's: from the
    # seed they can diverge where Newton's converge.
    assert jgeo.Hybrid().shooting.newton_steps == 1 == jgeo.ShootingBVP().newton_steps
    with pytest.raises(ValueError, match="`newton_steps` must be None"):
        jgeo.ShootingBVP(max_steps=4, newton_steps=4)


@pytest.mark.slow
def test_exp_of_log_is_identity_on_a_curved_decoder(key):
    metric = jgeo.Pullback(mlp_decoder(key, 2, 6))
    k1, k2 = jr.split(jr.fold_in(key, 1))
    xs, ys = 0.5 * jr.normal(k1, (4, 2)), 0.5 * jr.normal(k2, (4, 2))

    @jax.jit
    @jax.vmap
    def round_trip(x, y):
        result = jgeo.connecting_geodesic(metric, x, y, throw=False)
        return jgeo.exp_map(metric, x, result.velocity), result

    ends, results = round_trip(xs, ys)
    assert jnp.all(results.converged)
    assert tree_allclose(ends, ys, **CLOSE)
    # The geodesic is shorter than the straight segment, measured in the same metric.
    lines = jnp.linspace(0.0, 1.0, 64)[None, :, None] * (ys - xs)[:, None] + xs[:, None]
    straight = jax.vmap(lambda c: jgeo.curve_length(metric, c))(lines)
    assert jnp.all(results.length <= straight + 1e-9)
    assert jnp.any(results.length < 0.999 * straight)


def test_coincident_points():
    x = jnp.array([0.2, -0.1])
    result = jgeo.connecting_geodesic(jgeo.PoincareBall(2), x, x)
    assert result.converged
    assert tree_allclose(result.length, jnp.asarray(0.0), atol=1e-12)
    assert tree_allclose(result.velocity, jnp.zeros(2), atol=1e-12)


def test_unreachable_point_is_reported_not_raised_in_a_batch():
    ball = jgeo.PoincareBall(2)
    xs = jnp.array([[0.0, 0.1], [0.0, 0.1]])
    ys = jnp.array([[0.3, -0.2], [1.0, 0.0]])  # the second lies on the ideal boundary
    solve = jax.jit(jax.vmap(lambda a, b: jgeo.connecting_geodesic(ball, a, b, throw=False)))
    results = solve(xs, ys)
    assert results.converged.tolist() == [True, False]
    assert jnp.isfinite(results.length[0]) and jnp.isnan(results.length[1])
    second = jax.tree.map(lambda a: a[1], results)  # a batched result code indexes as a pytree
    assert second.result == jgeo.BVPResult.outside_domain
    with pytest.raises(Exception, match="outside the metric's domain"):
        jgeo.distance(ball, xs[1], ys[1])


@pytest.mark.slow
def test_distance_gradient_is_the_unit_velocity():
    # ∇_y d(x, y) = g(y) γ'(1) / d: the dual of the unit tangent at y.
    ball = jgeo.PoincareBall(2)
    x, y = jnp.array([0.1, 0.2]), jnp.array([-0.4, 0.3])
    grad = jax.grad(lambda q: jgeo.distance(ball, x, q))(y)
    result = jgeo.connecting_geodesic(ball, x, y)
    end_velocity = jgeo.geodesic(ball, x, result.velocity, jnp.ones(1)).vs[-1]
    assert tree_allclose(grad, ball(y) @ end_velocity / result.length, rtol=1e-6)


@pytest.mark.slow
def test_bad_arguments():
    ball = jgeo.PoincareBall(2)
    with pytest.raises(ValueError, match="`y` must be a point of shape"):
        jgeo.distance(ball, jnp.zeros(2), jnp.zeros(3))
    with pytest.raises(TypeError, match="`solver` must be"):
        jgeo.distance(ball, jnp.zeros(2), jnp.ones(2) * 0.1, solver="spline")

    # Two Newton steps from y − x cannot join these points (32 do): the result code says
    # which stage failed, and `throw=True` raises with its message.
    def decoder(z):
        return jnp.stack([z[0], z[1], jnp.sin(3 * z[0]) * jnp.cos(2 * z[1]), z[0] ** 2 * z[1]])

    x, y, short = jnp.zeros(2), jnp.array([1.5, -1.0]), jgeo.ShootingBVP(max_steps=2)
    metric = jgeo.Pullback(decoder)
    failed = jgeo.connecting_geodesic(metric, x, y, solver=short, throw=False)
    assert failed.result == jgeo.BVPResult.shooting_failed and not failed.converged
    with pytest.raises(eqx.EquinoxRuntimeError, match="shooting .* did not converge"):
        jgeo.distance(metric, x, y, solver=short)


@pytest.mark.slow
def test_graph_initialisation_goes_around_a_wall():
    # A bump of high cost at the origin: the straight segment from (−1, 0) to (1, 0) is
    # a geodesic by symmetry, but far from the shortest; the graph path goes around.
    wall = jgeo.MetricField(lambda z: (1 + 50 * jnp.exp(-jnp.sum(z**2) / 0.1)) * jnp.eye(2))
    x, y = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0])
    grid = jnp.stack(jnp.meshgrid(*2 * [jnp.linspace(-1.2, 1.2, 13)]), -1).reshape(-1, 2)
    graph = jax.jit(jgeo.geodesic_graph, static_argnums=2)(wall, grid, 8)
    assert tree_allclose(graph.distances, graph.distances.T)
    straight = jax.jit(jgeo.connecting_geodesic)(wall, x, y)
    around = jax.jit(lambda g: jgeo.connecting_geodesic(wall, x, y, graph=g))(graph)
    assert straight.converged and around.converged
    assert tree_allclose(jnp.max(jnp.abs(straight.curve[:, 1])), jnp.asarray(0.0), atol=1e-9)
    assert around.length < 0.5 * straight.length
    assert jnp.max(jnp.abs(around.curve[:, 1])) > 0.3
    # Both are geodesics through y; the graph one is the shorter of the two.
    assert tree_allclose(jax.jit(jgeo.exp_map)(wall, x, around.velocity), y, atol=1e-6)
    # It started from the graph's path: its discrete energy is below the segment's.
    ts = jnp.linspace(0.0, 1.0, 16)
    assert tree_allclose(energy_start(wall, x, y, ts, graph), graph.path(x, y, 16))
    with pytest.raises(ValueError, match="`k` must be between"):
        jgeo.geodesic_graph(wall, grid, k=len(grid))
