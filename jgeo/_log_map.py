"""Geodesics as boundary value problems: connecting geodesics, the log map, distance.

Method (after the practice of stochman and Arvanitidis et al. 2018): minimise the
energy of a discretised curve between the two points to get a good initial velocity,
then refine it by shooting — Newton's method on exp_x(v) = y (damped, Levenberg–Marquardt,
when starting from a graph path), differentiating through the geodesic ODE.
"""

from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float

from ._checks import as_point, has_domain, metric_point
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

BVPMethod = Literal["auto", "hybrid", "energy", "shooting"]
_SEED_TOL = 1e-3  # energy-stage tolerance when it only seeds shooting


class ConnectingGeodesic(eqx.Module):
    """A geodesic from `x` to `y`, with diagnostics.

    **Fields:**

    - `velocity`: the initial velocity v with exp_x(v) ≈ y: the log map log_x(y).
    - `curve`: the geodesic sampled at `num_points` evenly spaced times, shape (n, d).
    - `length`: its length (the geodesic distance when it is minimising).
    - `energy`: ½ ∫ g(ċ, ċ) dt of `curve`.
    - `residual`: ‖exp_x(v) − y‖∞ in coordinates (for "energy", the gap between the
      first-order extrapolation and y is not measured: 0).
    - `converged`: whether the method met its tolerance. With `throw=False`, the other
      fields are NaN where it did not.
    """

    velocity: Float[Array, " d"]
    curve: Float[Array, "n d"]
    length: Float[Array, ""]
    energy: Float[Array, ""]
    residual: Float[Array, ""]
    converged: Bool[Array, ""]


_SUBDIVISIONS = 2


def _minimise_energy(metric, x, y, curve0, max_steps, tol):
    """Energy-minimising discrete curve between x and y, from the straight line.

    The discrete energy ½ (n − 1) Σᵢ ‖rᵢ‖² is a sum of squares, so Levenberg–Marquardt
    minimises it in a few iterations where a quasi-Newton method crawls (the problem's
    conditioning grows like n²). For a pullback, the residuals are the chords of the
    decoded curve, each segment decoded at a few sub-steps: no derivatives of the
    decoder in the residual, and no "tunnelling" — with g taken at segment midpoints (or
    chords of whole segments), a long segment whose midpoint sits on the crest of a
    ridge of the metric (a stochastic decoder's wall of variance) crosses it at almost
    no cost. Otherwise (a pullback through a non-Euclidean `ambient` metric too, whose
    chords are not its lengths) rᵢ = Lᵢᵀ Δᵢ with gᵢ = Lᵢ Lᵢᵀ at segment midpoints.
    """
    interior0 = curve0[1:-1]

    if isinstance(metric, AbstractPullback) and metric.ambient is None:
        # Each segment is decoded at `_SUBDIVISIONS` sub-steps, so that a jump across
        # a symmetric ridge (equal φ on both sides) still pays for the climb.
        t = jnp.linspace(0.0, 1.0, _SUBDIVISIONS + 1, dtype=x.dtype)[:, None, None]

        def residuals(interior, _):
            curve = jnp.concatenate([x[None], interior, y[None]])
            fine = (1 - t) * curve[None, :-1] + t * curve[None, 1:]  # (s + 1, n − 1, d)
            points = jax.vmap(jax.vmap(metric.embedding))(fine)
            return jnp.sqrt(_SUBDIVISIONS) * (points[1:] - points[:-1])

    else:

        def residuals(interior, _):
            curve = jnp.concatenate([x[None], interior, y[None]])
            steps, mids = curve[1:] - curve[:-1], 0.5 * (curve[1:] + curve[:-1])
            factors = jax.vmap(lambda m: jnp.linalg.cholesky(metric(m)))(mids)
            return jnp.einsum("nij,ni->nj", factors, steps)

    solver = optx.LevenbergMarquardt(rtol=tol, atol=tol)
    sol = optx.least_squares(residuals, solver, interior0, max_steps=max_steps, throw=False)
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
    method: BVPMethod = "auto",
    num_points: int = 16,
    graph: GeodesicGraph | None = None,
    energy_steps: int = 100,
    shooting_steps: int = 32,
    rtol: float | None = None,
    atol: float | None = None,
    throw: bool = True,
) -> ConnectingGeodesic:
    """The geodesic from `x` to `y`, found by energy minimisation, shooting, or both.

    **Arguments:**

    - `metric`, `x`, `y`: the metric and two points of shape (d,).
    - `method`: `"auto"` (default) uses the metric's closed-form log map where it has
      one (`Euclidean`, the Poincaré models, `StereographicSphere`, products of them),
      else `"hybrid"`. `"energy"` minimises the energy of a curve of `num_points` points
      (robust, first-order accurate in the spacing); `"shooting"` solves exp_x(v) = y by
      Newton's method from v = y − x (accurate to the ODE tolerance, but needs a good
      start); `"hybrid"` shoots from the energy solution's velocity.
    - `num_points`: points of the discretised curve (and of the returned `curve`).
    - `graph`: a `geodesic_graph` of reference points; the energy stage then starts from
      the graph's shortest path instead of the straight line (for far-apart points, or
      a straight line through a high-cost region), and shooting uses damped steps.
    - `energy_steps`, `shooting_steps`: iteration budgets of the two stages.
    - `rtol`, `atol`: tolerances (default 1e-8 in float64, 1e-4 in float32) for the
      shooting residual and of the ODE solves (a hundredth of them).
    - `throw`: raise if the method does not converge (default); if False, report it in
      `converged` and fill the outputs with NaN, so a batch under `jax.vmap` goes on.
      A point outside the metric's domain (`metric.contains`) never converges.

    **Returns:** a `ConnectingGeodesic`: `velocity` (log_x y), `curve` (`num_points`
    points from `x` to `y`), `length`, `energy`, `residual` (‖exp_x(v) − y‖, or of the
    discrete curve for `"energy"`), `converged`. x = y gives velocity 0 and length 0.

    **Raises:** `ValueError` for an unknown `method` or malformed points; with
    `throw=True`, a runtime error if the solve does not converge.
    """
    x = metric_point(metric, x, throw=False)
    y = as_point(y, "y").astype(x.dtype)
    if y.shape != x.shape:
        raise ValueError(f"`y` must be a point of shape {x.shape} like `x`, got {y.shape}.")
    if method not in ("auto", "hybrid", "energy", "shooting"):
        raise ValueError(
            f'`method` must be "auto", "hybrid", "energy" or "shooting", got {method!r}.'
        )
    if method == "auto":
        method = "closed_form" if metric.closed_form_geodesics else "hybrid"
    if num_points < 3:
        raise ValueError(f"`num_points` must be at least 3, got {num_points}.")
    default = 1e-8 if x.dtype == jnp.float64 else 1e-4
    rtol = default if rtol is None else rtol
    atol = default if atol is None else atol
    out_dtype = x.dtype
    if jax.config.jax_enable_x64 and x.dtype == jnp.float32:
        # optimistix mixes in float64 scalars when x64 is on (optimistix#155, #207): solve
        # in float64 there, to the float32 tolerances, and return float32.
        x, y = x.astype(jnp.float64), y.astype(jnp.float64)
    # DirectAdjoint: shooting Jacobians use forward mode, implicit gradients use reverse.
    ode = ODESolver(rtol=0.01 * rtol, atol=0.01 * atol, adjoint=diffrax.DirectAdjoint())

    if method == "closed_form":
        velocity, converged = metric.log_map(x, y), jnp.array(True)
    elif method == "shooting":
        velocity, converged = y - x, jnp.array(True)
    else:
        if graph is None:
            t = jnp.linspace(0.0, 1.0, num_points, dtype=x.dtype)[:, None]
            start = (1 - t) * x[None] + t * y[None]
        else:
            start = graph.path(x, y, num_points)
        # As a seed for shooting, the discrete curve only needs the accuracy of its own
        # O(1/n²) discretisation error: solving it tighter costs steps and buys nothing.
        energy_tol = rtol if method == "energy" else max(rtol, _SEED_TOL)
        curve, converged = _minimise_energy(metric, x, y, start, energy_steps, energy_tol)
        velocity = _initial_velocity(curve)

    residual = jnp.zeros((), x.dtype)
    ts = jnp.linspace(0.0, 1.0, num_points, dtype=x.dtype)
    if method == "closed_form":
        curve = closed_form_curve(metric, x, velocity, ts)
        residual = jnp.max(jnp.abs(curve[-1] - y))
        converged = jnp.all(jnp.isfinite(curve)) & (residual <= atol + rtol * jnp.max(jnp.abs(y)))
        length = metric.distance(x, y)
    elif method != "energy":

        def miss(v, _):
            return exp_map(metric, x, v, method="ode", ode=ode, throw=False) - y

        if graph is None:  # Newton: about 3 steps from the energy solution
            solver = optx.Newton(rtol=rtol, atol=atol)
            sol = optx.root_find(miss, solver, velocity, max_steps=shooting_steps, throw=False)
        else:
            # Graph paths are long and strongly curved; there undamped Newton can jump to
            # another geodesic through y (the straight one through a wall). The damped
            # steps of Levenberg–Marquardt stay on the energy solution's, at ~4× the cost.
            solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol)
            sol = optx.least_squares(miss, solver, velocity, max_steps=shooting_steps, throw=False)
        velocity = sol.value
        curve = geodesic(metric, x, velocity, ts, method="ode", ode=ode, throw=False).xs
        residual = jnp.max(jnp.abs(curve[-1] - y))
        # The solver's own test is on the step; also demand that the endpoint is hit.
        converged = (sol.result == optx.RESULTS.successful) & (
            residual <= atol + rtol * jnp.max(jnp.abs(y))
        )
        length = jnp.sqrt(velocity @ metric(x) @ velocity)
    else:
        length = curve_length(metric, curve)

    if has_domain(metric):  # both ends, and every point of the curve, in the domain
        converged &= metric.contains(x) & metric.contains(y)
        converged &= jnp.all(jax.vmap(metric.contains)(jnp.nan_to_num(curve, nan=0.0)))
    energy = curve_energy(metric, curve)
    out = ConnectingGeodesic(velocity, curve, length, energy, residual, converged)
    out = jax.tree_util.tree_map(
        lambda a: a if a.dtype == jnp.bool_ else jnp.where(converged, a, jnp.nan).astype(out_dtype),
        out,
    )
    if throw:
        message = (
            f"connecting_geodesic ({method}) did not converge: the points may be too far "
            "apart for the iteration budgets, or outside the metric's domain. Raise "
            "`energy_steps`/`shooting_steps` or `num_points`, try method='energy', or pass "
            "throw=False and inspect `converged`."
        )
        out = eqx.error_if(out, ~converged, message)
    return out


def log_map(metric: AbstractMetric, x: PointLike, y: PointLike, **kwargs) -> Tangent:
    """The logarithmic map log_x(y): the initial velocity v of the geodesic from `x` with
    exp_x(v) = y.

    **Arguments:**

    - `metric`, `x`, `y`: the metric and two points of shape (d,).
    - `**kwargs`: those of `connecting_geodesic` (method, tolerances, `graph`, `throw`).

    **Returns:** the velocity, shape (d,); NaN if the solve failed and `throw=False`.
    Differentiable (implicit function theorem through the shooting solve).
    """
    return connecting_geodesic(metric, x, y, **kwargs).velocity


def distance(metric: AbstractMetric, x: PointLike, y: PointLike, **kwargs) -> Scalar:
    """Geodesic distance: the length of the connecting geodesic from `x` to `y`.

    **Arguments:**

    - `metric`, `x`, `y`: the metric and two points of shape (d,).
    - `**kwargs`: those of `connecting_geodesic` (for many pairs, `method="energy",
      rtol=1e-3` is far cheaper than exact shooting).

    **Returns:** a scalar; NaN if the solve failed and `throw=False`. Where geodesics pass
    an obstacle on either side this is the length of the critical curve found, not always
    the shortest (see the FAQ).
    """
    return connecting_geodesic(metric, x, y, **kwargs).length
