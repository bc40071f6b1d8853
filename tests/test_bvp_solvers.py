"""The boundary value solvers as strategies: each against the closed forms of the space
forms and against the others, the chord steps of `Hybrid` from the energy curve's own
Jacobian, honest convergence reports, `distance`'s loose-tolerance default, Simpson
lengths, and a solver written outside jgeo."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from helpers import mlp_decoder

import jgeo
from jgeo._bvp import energy_start
from jgeo._energy import energy_residuals, minimise_energy, velocity_sensitivity

# Every solver on the disk; the default Hybrid on the sphere's chart too (its closed
# forms differ in kind: a bounded chart against the whole plane).
CASES = [(jgeo.PoincareBall(2), solver) for solver in (
    jgeo.Hybrid(), jgeo.Hybrid(seed_jacobian=False), jgeo.ShootingBVP(), jgeo.EnergyBVP()
)] + [(jgeo.StereographicSphere(2), jgeo.Hybrid())]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("metric, solver", CASES)
def test_every_solver_finds_the_closed_form_geodesic(metric, solver):
    # On metrics with closed forms an explicit solver is used as given: the energy
    # residuals there are the generic ones (Cholesky factors at midpoints), so Hybrid's
    # seed Jacobian comes from probing the band, not from a decoder's Jacobian.
    xs = jnp.array([[0.1, -0.2], [-0.3, 0.25], [0.4, 0.1]])
    ys = jnp.array([[0.5, 0.3], [0.2, -0.35], [-0.3, 0.45]])
    solve = jax.jit(jax.vmap(lambda x, y, s: jgeo.connecting_geodesic(metric, x, y, solver=s),
                             in_axes=(0, 0, None)))  # fmt: skip
    closed, out = solve(xs, ys, jgeo.ClosedForm()), solve(xs, ys, solver)
    assert np.all(out.converged)
    # The energy curve's length is Simpson's on 16 points; shooting's is exact.
    rtol = 1e-5 if isinstance(solver, jgeo.EnergyBVP) else 1e-7
    np.testing.assert_allclose(out.length, closed.length, rtol=rtol)
    if not isinstance(solver, jgeo.EnergyBVP):  # its velocity is a finite difference
        np.testing.assert_allclose(out.velocity, closed.velocity, rtol=1e-6, atol=1e-8)


def test_closed_form_refuses_a_metric_without_one():
    metric = jgeo.Pullback(mlp_decoder(jr.key(0), 2, 5))
    with pytest.raises(TypeError, match="ClosedForm.*no closed-form geodesics"):
        jgeo.connecting_geodesic(metric, jnp.zeros(2), jnp.ones(2), solver=jgeo.ClosedForm())


@pytest.mark.parametrize("num_points", [3, 4, 16])
def test_seed_jacobian_of_a_flat_metric_is_the_identity(num_points):
    # A linear decoder's chords are linear in the curve: Gauss–Newton is exact, the
    # discrete geodesic is the straight line, and v = y − x moves with y one for one.
    a = jr.normal(jr.key(1), (7, 3))
    metric = jgeo.Pullback(lambda z: a @ z)
    x, y = jnp.array([0.1, -0.4, 0.3]), jnp.array([1.2, 0.7, -0.5])
    ts = jnp.linspace(0, 1, num_points)
    line = (1 - ts[:, None]) * x[None] + ts[:, None] * y[None]
    curve, ok = minimise_energy(metric, x, y, line, 50, 1e-10, None)
    assert ok
    np.testing.assert_allclose(velocity_sensitivity(metric, curve), np.eye(3), atol=1e-9)


def test_seed_jacobian_is_the_dense_gauss_newton_derivative():
    # The block-tridiagonal solve against dense linear algebra: the full Jacobians of the
    # energy residuals in the interior and in y, and v's difference formula by hand.
    metric = jgeo.Pullback(mlp_decoder(jr.key(4), 2, 9))
    x, y = jnp.array([0.3, -0.5]), jnp.array([-0.6, 0.4])
    ts = jnp.linspace(0, 1, 5)
    line = (1 - ts[:, None]) * x[None] + ts[:, None] * y[None]
    curve, ok = minimise_energy(metric, x, y, line, 100, 1e-12, None)
    assert ok
    residuals, _ = energy_residuals(metric)
    interior = curve[1:-1]
    inner = jax.jacfwd(lambda z: residuals(z, (x, y)).ravel())(interior).reshape(-1, 6)
    outer = jax.jacfwd(lambda b: residuals(interior, (x, b)).ravel())(y)
    moved = -np.linalg.solve(inner.T @ inner, inner.T @ outer).reshape(3, 2, 2)
    expected = 0.5 * 4 * (4 * moved[0] - moved[1])  # v = ½(n − 1)(−3x + 4c₁ − c₂)
    np.testing.assert_allclose(velocity_sensitivity(metric, curve), expected, rtol=1e-9)


@pytest.mark.slow
def test_seed_jacobian_is_close_to_the_inverse_of_the_exp_maps():
    # ∂v/∂y of the discrete problem against (∂exp_x/∂v)⁻¹ of the ODE at the curve's
    # velocity, by forward mode: close enough that chord steps contract fast.
    metric = jgeo.Pullback(mlp_decoder(jr.key(2), 3, 20))
    x, y = jnp.array([0.3, -0.5, 0.2]), jnp.array([-0.6, 0.4, 0.5])
    ts = jnp.linspace(0, 1, 16)
    line = (1 - ts[:, None]) * x[None] + ts[:, None] * y[None]
    curve, ok = minimise_energy(metric, x, y, line, 100, 1e-10, None)
    assert ok
    velocity = 7.5 * (-3 * curve[0] + 4 * curve[1] - curve[2])
    ode = jgeo.ODESolver(diffrax.Dopri8(), 1e-11, 1e-11, adjoint=diffrax.ForwardMode())
    jacobian = jax.jacfwd(lambda v: jgeo.exp_map(metric, x, v, ode=ode))(velocity)
    contraction = np.linalg.norm(np.eye(3) - velocity_sensitivity(metric, curve) @ jacobian, 2)
    # Gauss–Newton leaves out the curvature terms: a contraction, far from exact on this
    # small, strongly curved decoder (0.46), which Broyden's updates then correct.
    assert contraction < 0.6


def _decoder_and_pairs(seed: int, *, d: int, outputs: int, pairs: int):
    """A random MLP decoder's pullback and pairs of points drawn in [−2, 2]^d."""
    metric = jgeo.Pullback(mlp_decoder(jr.key(seed), d, outputs))
    k1, k2 = jr.split(jr.key(seed + 1))
    return metric, *(jr.uniform(k, (pairs, d), minval=-2, maxval=2) for k in (k1, k2))


@pytest.mark.slow
def test_converged_means_the_endpoint_and_the_length_are_right():
    # Honest reports: every pair reported converged hits y to the tolerance and has the
    # exact length within it; the rest are NaN, never a wrong number.
    metric, xs, ys = _decoder_and_pairs(3, d=3, outputs=20, pairs=6)

    def solve(**kwargs):
        return jax.jit(jax.vmap(
            lambda x, y: jgeo.connecting_geodesic(metric, x, y, throw=False, **kwargs)
        ))(xs, ys)  # fmt: skip

    exact = solve(rtol=1e-10, atol=1e-10)
    assert np.all(exact.converged)
    for rtol in (1e-3, 1e-6):
        out = solve(rtol=rtol, atol=rtol)
        tol = rtol + rtol * np.max(np.abs(ys), axis=1)
        ok = np.asarray(out.converged)
        assert ok.sum() >= 5
        assert np.all(np.asarray(out.residual)[ok] <= tol[ok])
        assert np.all(np.isnan(np.asarray(out.length)[~ok]))
        np.testing.assert_allclose(out.length[ok], exact.length[ok], rtol=10 * rtol)


@pytest.mark.slow
def test_distance_at_loose_tolerance_measures_the_energy_curve():
    # From rtol 1e-3 up `distance` takes the energy curve's Simpson length, checked
    # against its midpoint length; 8 points cannot resolve these lengths to 1e-5 of them
    # (`length_unresolved`, NaN), 16 can to 1e-3, within the tolerance of the exact
    # length. Fewer than 8 points are refused: the check does not see the curve's own
    # discretisation error.
    metric, xs, ys = _decoder_and_pairs(5, d=3, outputs=20, pairs=6)
    exact = jax.vmap(lambda x, y: jgeo.distance(metric, x, y))(xs, ys)

    def loose(rtol, **kwargs):
        solver = jgeo.EnergyBVP(check_length=True)
        return jax.vmap(lambda x, y: jgeo.connecting_geodesic(
            metric, x, y, throw=False, solver=solver, rtol=rtol, atol=rtol, **kwargs
        ))(xs, ys)  # fmt: skip

    out = loose(1e-3)
    default = jax.vmap(lambda x, y: jgeo.distance(metric, x, y, rtol=1e-3, atol=1e-3))(xs, ys)
    np.testing.assert_array_equal(default, out.length)
    assert np.all(out.converged)
    np.testing.assert_allclose(out.length, exact, rtol=1e-4)
    coarse = loose(1e-5, num_points=8)
    unresolved = np.asarray(coarse.result._value == jgeo.BVPResult.length_unresolved._value)
    assert unresolved.any()
    assert np.all(np.isnan(np.asarray(coarse.length)[unresolved]))
    with pytest.raises(ValueError, match="needs `num_points` ≥ 8"):
        loose(1e-3, num_points=7)
    # Points as lists, as everywhere else.
    listed = jgeo.distance(metric, xs[0].tolist(), ys[0].tolist(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(listed, out.length[0], rtol=1e-12)


@pytest.mark.slow
def test_the_curve_of_a_shot_geodesic_has_gradients():
    # The curve and its energy are recomputed from the solution, so that gradients reach
    # them through it (the implicit adjoint differentiates the solution, not its aux):
    # on the Poincaré disk, shooting's against the closed form's.
    x, y = jnp.array([0.1, -0.3]), jnp.array([0.4, 0.35])

    def middle(b, solver):
        out = jgeo.connecting_geodesic(jgeo.PoincareBall(2), x, b, solver=solver)
        return out.curve[8, 0] + out.energy

    exact = jax.grad(middle)(y, jgeo.ClosedForm())
    np.testing.assert_allclose(jax.grad(middle)(y, jgeo.Hybrid()), exact, rtol=1e-6)


def test_simpson_lengths_are_fourth_order():
    # A quarter circle of radius 2 in the Euclidean plane at evenly spaced angles: the
    # midpoint polygon's error falls fourfold per halving of the spacing, Simpson's on
    # the Hermite curve sixteenfold.
    metric = jgeo.Euclidean(2)

    def errors(n):
        t = jnp.linspace(0, jnp.pi / 2, n)
        arc = 2 * jnp.stack([jnp.cos(t), jnp.sin(t)], -1)
        lengths = [jgeo.curve_length(metric, arc, rule=rule) for rule in ("midpoint", "simpson")]
        return np.abs(np.array(lengths) - np.pi)

    coarse, fine = errors(17), errors(33)  # past n = 9, where Simpson's error changes sign
    ratio = coarse / fine
    assert 3.5 < ratio[0] < 4.5 and 13 < ratio[1] < 19
    assert fine[1] < 1e-5 * np.pi
    for n in (3, 4):  # second-order velocities below 5 points: a straight line exactly
        line = jnp.linspace(0, 1, n)[:, None] * jnp.array([[3.0, 4.0]])
        np.testing.assert_allclose(jgeo.curve_length(metric, line, rule="simpson"), 5.0)
    with pytest.raises(ValueError, match='`rule` must be "midpoint" or "simpson"'):
        jgeo.curve_length(metric, jnp.zeros((4, 2)), rule="trapezoid")
    with pytest.raises(ValueError, match=r"n ≥ 3"):
        jgeo.curve_length(metric, jnp.zeros((2, 2)), rule="simpson")


class _StraightLine(jgeo.AbstractBVPSolver):
    """A solver written outside jgeo: the straight segment, right only where the metric
    is flat. `connecting_geodesic` still checks what it returns."""

    def solve(self, metric, x, y, ts, *, graph, rtol, atol):
        curve = (1 - ts[:, None]) * x[None] + ts[:, None] * y[None]
        length = jgeo.curve_length(metric, curve, rule="simpson")
        zero = jnp.zeros((), x.dtype)
        return jgeo.BVPSolution(y - x, curve, length, zero, jgeo.BVPResult.successful)


def test_a_new_solver_is_a_subclass_with_a_solve():
    out = jgeo.connecting_geodesic(jgeo.Euclidean(2), jnp.zeros(2), jnp.array([3.0, 4.0]),
                                   solver=_StraightLine())  # fmt: skip
    np.testing.assert_allclose(out.length, 5.0, rtol=1e-6)
    # On the ball, a point outside the domain is still reported by connecting_geodesic.
    bad = jgeo.connecting_geodesic(jgeo.PoincareBall(2), jnp.zeros(2), jnp.array([1.5, 0.0]),
                                   solver=_StraightLine(), throw=False)  # fmt: skip
    assert bad.result == jgeo.BVPResult.outside_domain
    assert isinstance(_StraightLine(), eqx.Module)


@pytest.mark.slow
def test_distance_gradients_in_the_points_and_the_decoder_weights():
    # Reverse mode transposes the shooting's forward-mode derivative through a second
    # program (jgeo._split_modes): diffrax's DirectAdjoint, which did both, was 1e-3 off
    # in x here. References: the first variation of length, ∂L/∂x = −G(x) v / |v|_g, and
    # central differences along a random direction of the weights.
    metric, _, _ = _decoder_and_pairs(0, d=2, outputs=12, pairs=1)
    x, y = jnp.array([0.3, -0.5]), jnp.array([-0.6, 0.4])

    def geodesic(metric, a):
        return jgeo.connecting_geodesic(metric, a, y, rtol=1e-10, atol=1e-10)

    grad_weights, grad_x = eqx.filter_grad(lambda both: geodesic(*both).length)((metric, x))
    v = geodesic(metric, x).velocity
    lowered = metric.operator(x).mv(v)
    np.testing.assert_allclose(grad_x, -lowered / jnp.sqrt(v @ lowered), rtol=1e-7)
    # Damped shooting (the default with a graph) is differentiated as a root too.
    damped = jgeo.Hybrid(shooting=jgeo.ShootingBVP(damped=True))
    length = lambda a: jgeo.distance(metric, a, y, solver=damped, rtol=1e-10, atol=1e-10)  # noqa: E731
    np.testing.assert_allclose(jax.grad(length)(x), grad_x, rtol=1e-7)

    weights, rest = eqx.partition(metric, eqx.is_inexact_array)
    keys = iter(jr.split(jr.key(1), len(jax.tree.leaves(weights))))
    direction = jax.tree.map(lambda w: jr.normal(next(keys), w.shape), weights)

    def along(eps):
        moved = jax.tree.map(lambda w, u: w + eps * u, weights, direction)
        return geodesic(eqx.combine(moved, rest), x).length

    eps = 1e-5
    difference = (along(eps) - along(-eps)) / (2 * eps)
    directional = sum(jnp.vdot(g, u) for g, u in zip(jax.tree.leaves(grad_weights),
                                                     jax.tree.leaves(direction)))  # fmt: skip
    np.testing.assert_allclose(directional, difference, rtol=1e-6)


def test_energy_starts_from_the_line_where_it_is_lower_than_the_graph_path():
    # With a graph, the energy stage (and the refined tier) starts from its shortest
    # path only where the path's discrete energy is below the straight segment's (the
    # other case, a path around a wall: test_log_map's wall test).
    grid = jnp.stack(jnp.meshgrid(*2 * [jnp.linspace(-1.2, 1.2, 9)]), -1).reshape(-1, 2)
    x, y, ts = jnp.array([-1.0, -0.1]), jnp.array([1.0, 0.1]), jnp.linspace(0.0, 1.0, 8)
    line = (1 - ts[:, None]) * x[None] + ts[:, None] * y[None]
    flat = jgeo.Euclidean(2)  # the segment is the geodesic: the grid's path zigzags
    graph = jgeo.geodesic_graph(flat, grid, 8)
    assert jgeo.curve_energy(flat, graph.path(x, y, 8)) > jgeo.curve_energy(flat, line)
    np.testing.assert_allclose(energy_start(flat, x, y, ts, graph), line)
