"""Geodesics as boundary value problems: connecting geodesics, the log map, distance.

The solvers (`jgeo._bvp`): minimise the energy of a discretised curve between the two
points (`EnergyBVP`), refine an initial velocity by shooting — Newton's method on
exp_x(v) = y through the geodesic ODE, or damped Levenberg–Marquardt steps
(`ShootingBVP`) — or both, the first seeding the second (`Hybrid`, after the practice
of stochman and Arvanitidis et al. 2018).
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optimistix as optx
from jaxtyping import Array, Bool, Float

from ._autodiff import jacfwd_and_value
from ._banded_least_squares import BandedLevenbergMarquardt
from ._bvp import AbstractBVPSolver, BVPResult, Hybrid, ShootingBVP
from ._checks import as_point, curve_in_domain, has_domain, metric_point
from ._custom_types import PointLike, Scalar, Tangent
from ._geodesics import (
    ODESolver,
    closed_form_curve,
    curve_energy,
    curve_length,
    exp_map,
    geodesic,
)
from ._graph import GeodesicGraph
from ._metrics import AbstractMetric
from ._pullback import AbstractPullback


class ConnectingGeodesic(eqx.Module):
    """A geodesic from `x` to `y`, with diagnostics.

    **Fields:**

    - `velocity`: the initial velocity v with exp_x(v) ≈ y: the log map log_x(y).
    - `curve`: the geodesic sampled at `num_points` evenly spaced times, shape (n, d).
    - `length`: its length (the geodesic distance when it is minimising).
    - `energy`: ½ ∫ g(ċ, ċ) dt of `curve`.
    - `residual`: ‖exp_x(v) − y‖∞ in coordinates (for "energy", the gap between the
      first-order extrapolation and y is not measured: 0).
    - `result`: a `BVPResult`, `BVPResult.successful` or why the solve failed.
    - `converged` (a property): `result == BVPResult.successful`. With `throw=False`,
      the other fields are NaN where it is False.
    """

    velocity: Float[Array, " d"]
    curve: Float[Array, "n d"]
    length: Float[Array, ""]
    energy: Float[Array, ""]
    residual: Float[Array, ""]
    result: BVPResult

    @property
    def converged(self) -> Bool[Array, ""]:
        return self.result == BVPResult.successful


_SUBDIVISIONS = 2


def energy_residuals(metric) -> tuple[Callable, Callable | None]:
    """The residuals `r(interior, (x, y))` of the discrete energy ½ (n − 1) Σᵢ ‖rᵢ‖² of
    the curve x, interior..., y: one row per segment, row i depending on points i and
    i + 1 only; and, where the residuals' structure gives it cheaply, the band of their
    Jacobian (`BandedLevenbergMarquardt`'s `jacobian`), else None.

    For a pullback, the residuals are the chords of the decoded curve, each segment
    decoded at a few sub-steps: no derivatives of the decoder in the residual, and no
    "tunnelling" — with g taken at segment midpoints (or chords of whole segments), a
    long segment whose midpoint sits on the crest of a ridge of the metric (a stochastic
    decoder's wall of variance) crosses it at almost no cost. Otherwise (a pullback
    through a non-Euclidean `ambient` metric too, whose chords are not its lengths)
    rᵢ = Lᵢᵀ Δᵢ with gᵢ = Lᵢ Lᵢᵀ at segment midpoints.
    """
    if isinstance(metric, AbstractPullback) and metric.ambient is None:
        chords = _Chords(metric)
        return chords, chords.band

    def residuals(interior, ends):
        x, y = ends
        curve = jnp.concatenate([x[None], interior, y[None]])
        steps, mids = curve[1:] - curve[:-1], 0.5 * (curve[1:] + curve[:-1])
        factors = jax.vmap(lambda m: jnp.linalg.cholesky(metric(m)))(mids)
        return jnp.einsum("nij,ni->nj", factors, steps)

    return residuals, None


class _Chords(eqx.Module):
    """A pullback's energy residuals: row i holds the chords of segment i's decoded
    sub-steps (`_SUBDIVISIONS` of them, so that a jump across a symmetric ridge, equal
    φ on both sides, still pays for the climb), times √s."""

    metric: AbstractPullback

    def _fine(self, interior, ends):
        # The curve with each segment split into s sub-steps: (n − 1)·s + 1 points, each
        # shared end once; fine point i·s + k = (1 − k/s)·cᵢ + (k/s)·cᵢ₊₁.
        x, y = ends
        s = _SUBDIVISIONS
        t = jnp.arange(s, dtype=x.dtype)[None, :, None] / s
        curve = jnp.concatenate([x[None], interior, y[None]])
        fine = curve[:-1, None] + t * (curve[1:] - curve[:-1])[:, None]  # (n − 1, s, d)
        return jnp.concatenate([fine.reshape(-1, x.shape[0]), y[None]])

    @staticmethod
    def _rows(points, segments):  # the decoded fine points' chords, one row per segment
        return jnp.sqrt(_SUBDIVISIONS) * (points[1:] - points[:-1]).reshape(segments, -1)

    def __call__(self, interior, ends):
        points = jax.vmap(self.metric.embedding)(self._fine(interior, ends))
        return self._rows(points, interior.shape[0] + 1)

    def band(self, interior, ends):
        """The residuals and their Jacobian's band from the decoder's Jacobian at each
        fine point: d products per point, where probing the whole curve takes 2·d."""
        s, d = _SUBDIVISIONS, interior.shape[1]
        points, rows = jax.vmap(self.metric._embedding_and_rows)(self._fine(interior, ends))
        segments = interior.shape[0] + 1
        residual = self._rows(points, segments)
        # Sub-chord k of segment i runs from fine point i·s + k to i·s + k + 1, at
        # t = k/s and (k + 1)/s: its derivative along cᵢ₊₁ is t₊ J₊ − t J, along
        # cᵢ (1 − t₊) J₊ − (1 − t) J.
        t = jnp.arange(s, dtype=interior.dtype)[None, :, None, None] / s
        ahead = rows[1:].reshape(segments, s, d, -1)
        behind = rows[:-1].reshape(segments, s, d, -1)
        to_end = (t + 1 / s) * ahead - t * behind
        to_start = (1 - t - 1 / s) * ahead - (1 - t) * behind

        def band(block):  # (segments, s, d, m) → (segments, d, s·m), as the residual rows
            return jnp.sqrt(s) * jnp.moveaxis(block, 2, 1).reshape(segments, d, -1)

        return residual, band(to_start)[1:], band(to_end)[:-1]


def _minimise_energy(metric, x, y, curve0, max_steps, tol):
    """Energy-minimising discrete curve between x and y, from `curve0`.

    The discrete energy is a sum of squares (`energy_residuals`), so Levenberg–Marquardt
    minimises it in a few iterations where a quasi-Newton method crawls (the problem's
    conditioning grows like n²); its Jacobian is block-banded (row i: points i and
    i + 1), which `BandedLevenbergMarquardt` exploits.
    """
    residuals, band = energy_residuals(metric)
    # A matrix-free pullback (`linear_solver=`) solves the normal equations by CG too.
    linear_solver = metric.linear_solver if isinstance(metric, AbstractPullback) else None
    solver = BandedLevenbergMarquardt(
        rtol=tol, atol=tol, jacobian=band, linear_solver=linear_solver
    )
    sol = optx.least_squares(
        residuals, solver, curve0[1:-1], args=(x, y), max_steps=max_steps, throw=False
    )
    curve = jnp.concatenate([x[None], sol.value, y[None]])
    return curve, sol.result == optx.RESULTS.successful


def _initial_velocity(curve: Array) -> Tangent:
    # Second-order one-sided difference at t = 0 on the grid of spacing 1 / (n − 1).
    n = curve.shape[0]
    if n == 2:
        return curve[1] - curve[0]
    return 0.5 * (n - 1) * (-3 * curve[0] + 4 * curve[1] - curve[2])


def connecting_geodesic(
    metric: AbstractMetric,
    x: PointLike,
    y: PointLike,
    *,
    solver: AbstractBVPSolver | None = None,
    num_points: int = 16,
    graph: GeodesicGraph | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    throw: bool = True,
) -> ConnectingGeodesic:
    """The geodesic from `x` to `y`: a solution of the boundary value problem
    exp_x(v) = y.

    **Arguments:**

    - `metric`, `x`, `y`: the metric and two points of shape (d,).
    - `solver`: an `EnergyBVP`, a `ShootingBVP` or a `Hybrid` of both. The default
      (None) is the metric's closed-form log map where it has one (`Euclidean`, the
      Poincaré models, `StereographicSphere`, products of them), else `Hybrid()` — and,
      with a `graph`, `Hybrid(shooting=ShootingBVP(damped=True))`, whose damped steps
      stay on the geodesic around the obstacle the graph path found. An explicit solver
      is always used as given, also on a metric with a closed form.
    - `num_points`: points of the discretised curve (and of the returned `curve`).
    - `graph`: a `geodesic_graph` of reference points; the energy stage then starts from
      the graph's shortest path instead of the straight line (for far-apart points, or
      a straight line through a high-cost region).
    - `rtol`, `atol`: tolerances (default 1e-8 in float64, 1e-4 in float32) of the
      energy minimisation (`EnergyBVP` alone) and of the shooting residual, with the ODE
      solves at a hundredth of them.
    - `throw`: raise if the solve fails (default); if False, report it in `result` and
      `converged` and fill the outputs with NaN, so a batch under `jax.vmap` goes on.
      A point outside the metric's domain (`metric.contains`) never converges.

    **Returns:** a `ConnectingGeodesic`: `velocity` (log_x y), `curve` (`num_points`
    points from `x` to `y`), `length`, `energy`, `residual` (‖exp_x(v) − y‖∞; 0 for
    `EnergyBVP`, whose curve ends at y by construction), `result` (a `BVPResult`: why it
    failed) and `converged`. x = y gives velocity 0 and length 0.

    **Raises:** `ValueError` for a malformed point or `num_points`, `TypeError` for a
    solver that is not one; with `throw=True`, a runtime error with the message of the
    failure's `BVPResult`.
    """
    x = metric_point(metric, x, throw=False)
    y = as_point(y, "y")
    if y.shape != x.shape:
        raise ValueError(f"`y` must be a point of shape {x.shape} like `x`, got {y.shape}.")
    if solver is None and not metric.closed_form_geodesics:
        solver = Hybrid(shooting=ShootingBVP(damped=graph is not None))
    if solver is not None and not isinstance(solver, AbstractBVPSolver):
        raise TypeError(
            "`solver` must be jgeo.EnergyBVP(...), jgeo.ShootingBVP(...) or "
            f"jgeo.Hybrid(...), or None for the default; got {type(solver).__name__}."
        )
    if num_points < 3:
        raise ValueError(f"`num_points` must be at least 3, got {num_points}.")
    default = 1e-8 if x.dtype == jnp.float64 else 1e-4
    rtol = default if rtol is None else rtol
    atol = default if atol is None else atol
    return _connect(metric, x, y, solver, num_points, graph, rtol, atol, throw)


# Compiled as one program, like diffrax's `diffeqsolve`: called outside `jax.jit`, the
# stages' own compiled solves and the code between them would otherwise run op by op
# (13 s the first call and 3.9 s every call after it for a 2 → 784 MLP decoder, against
# 8.6 s, then 0.4 s: the solve itself). Non-array arguments (solver, tolerances, `throw`)
# are static.
@eqx.filter_jit
def _connect(metric, x, y, solver, num_points, graph, rtol, atol, throw) -> ConnectingGeodesic:
    out_dtype = x.dtype
    if jax.config.jax_enable_x64 and x.dtype == jnp.float32:
        # optimistix mixes in float64 scalars when x64 is on (optimistix#155, #207): solve
        # in float64 there, to the float32 tolerances, and return float32.
        x, y = x.astype(jnp.float64), y.astype(jnp.float64)
    ts = jnp.linspace(0.0, 1.0, num_points, dtype=x.dtype)
    tol = atol + rtol * jnp.max(jnp.abs(y))

    if solver is None:  # the closed form
        velocity = metric.log_map(x, y)
        curve = closed_form_curve(metric, x, velocity, ts)
        residual = jnp.max(jnp.abs(curve[-1] - y))
        ok = jnp.all(jnp.isfinite(curve)) & (residual <= tol)
        result = BVPResult.where(ok, BVPResult.successful, BVPResult.not_finite)
        length = metric.distance(x, y)
    else:
        energy, shooting = solver.stages()
        velocity, result = y - x, BVPResult.successful
        if energy is not None:
            if graph is None:
                start = (1 - ts[:, None]) * x[None] + ts[:, None] * y[None]
            else:
                start = graph.path(x, y, num_points)
            energy_tol = rtol if shooting is None else max(rtol, solver.seed_rtol)
            curve, ok = _minimise_energy(metric, x, y, start, energy.max_steps, energy_tol)
            velocity = _initial_velocity(curve)
            result = BVPResult.where(ok, result, BVPResult.energy_failed)
        if shooting is None:  # the discrete curve ends at y by construction
            residual, length = jnp.zeros((), x.dtype), curve_length(metric, curve)
        else:
            # DirectAdjoint: shooting Jacobians use forward mode, implicit gradients reverse.
            ode = ODESolver(shooting.ode(0.01 * rtol), 0.01 * rtol, 0.01 * atol,
                            adjoint=diffrax.DirectAdjoint())  # fmt: skip
            velocity, ok = _shoot(metric, x, y, velocity, shooting, ode, rtol, atol)
            curve = geodesic(metric, x, velocity, ts, method="ode", ode=ode, throw=False).xs
            residual = jnp.max(jnp.abs(curve[-1] - y))
            # The solver's own test is on the step; also demand that the endpoint is hit.
            failed = BVPResult.where(ok, BVPResult.endpoint_missed, BVPResult.shooting_failed)
            hit = ok & (residual <= tol)
            result = BVPResult.where(hit, BVPResult.successful, failed)
            length = jnp.sqrt(velocity @ metric(x) @ velocity)

    if has_domain(metric):  # both ends, and every point of the curve, in the domain
        inside = metric.contains(x) & metric.contains(y) & curve_in_domain(metric, curve)
        result = BVPResult.where(inside, result, BVPResult.outside_domain)
    finite = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(y))  # a NaN end, not the solver
    result = BVPResult.where(finite, result, BVPResult.not_finite)
    succeeded = result == BVPResult.successful
    fields = (velocity, curve, length, curve_energy(metric, curve), residual)
    fields = [jnp.where(succeeded, a, jnp.nan).astype(out_dtype) for a in fields]
    out = ConnectingGeodesic(*fields, result)
    if throw:
        out = result.error_if(out, ~succeeded)
    return out


def _shoot(metric, x, y, velocity, shooting: ShootingBVP, ode: ODESolver, rtol, atol):
    """Refine `velocity` until exp_x(v) = y; returns it and whether the solver converged."""

    def miss(v, _):
        return exp_map(metric, x, v, method="ode", ode=ode, throw=False) - y

    # The start does not move the solution's derivatives (the implicit function theorem):
    # no need to differentiate the seed or the Newton steps below.
    velocity = jax.lax.stop_gradient(velocity)
    if shooting.damped:
        solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol)
        sol = optx.least_squares(miss, solver, velocity, max_steps=shooting.max_steps, throw=False)
    elif shooting.newton_steps is None:
        solver = optx.Newton(rtol=rtol, atol=atol)
        sol = optx.root_find(miss, solver, velocity, max_steps=shooting.max_steps, throw=False)
    else:
        # Newton steps, the last of them the first chord step: every pair takes them (no
        # loop to wait on), and one traced Jacobian serves them all.
        def newton(v, _):
            jacobian, value = jacfwd_and_value(lambda u: miss(u, None), v)
            return v - jnp.linalg.solve(jacobian, value), jacobian

        velocity, jacobians = jax.lax.scan(newton, velocity, length=shooting.newton_steps + 1)
        # Chord steps v ← v − J⁻¹ (exp_x(v) − y) with that J kept: a fixed-point iteration
        # whose fixed points are the roots (optimistix's implicit adjoint differentiates
        # it as such; J, a constant, drops out at a root).
        kept = jsl.lu_factor(jax.lax.stop_gradient(jacobians[-1]))

        def chord(v, _):
            return v - jsl.lu_solve(kept, miss(v, None))

        solver = optx.FixedPointIteration(rtol=rtol, atol=atol)
        steps = max(1, shooting.max_steps - shooting.newton_steps - 1)
        velocity = jax.lax.stop_gradient(velocity)
        sol = optx.fixed_point(chord, solver, velocity, max_steps=steps, throw=False)
    return sol.value, sol.result == optx.RESULTS.successful


def log_map(metric: AbstractMetric, x: PointLike, y: PointLike, **kwargs) -> Tangent:
    """The logarithmic map log_x(y): the initial velocity v of the geodesic from `x` with
    exp_x(v) = y.

    **Arguments:**

    - `metric`, `x`, `y`: the metric and two points of shape (d,).
    - `**kwargs`: those of `connecting_geodesic` (`solver`, tolerances, `graph`, `throw`).

    **Returns:** the velocity, shape (d,); NaN if the solve failed and `throw=False`.
    Differentiable (implicit function theorem through the shooting solve).
    """
    return connecting_geodesic(metric, x, y, **kwargs).velocity


def distance(metric: AbstractMetric, x: PointLike, y: PointLike, **kwargs) -> Scalar:
    """Geodesic distance: the length of the connecting geodesic from `x` to `y`.

    **Arguments:**

    - `metric`, `x`, `y`: the metric and two points of shape (d,).
    - `**kwargs`: those of `connecting_geodesic` (for many pairs, `solver=EnergyBVP(),
      rtol=1e-3` is far cheaper than exact shooting).

    **Returns:** a scalar; NaN if the solve failed and `throw=False`. Where geodesics pass
    an obstacle on either side this is the length of the critical curve found, not always
    the shortest (see the FAQ).
    """
    return connecting_geodesic(metric, x, y, **kwargs).length
