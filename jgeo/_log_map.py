"""Geodesics as boundary value problems: connecting geodesics, the log map, distance.

The solvers are strategies (`jgeo._bvp`): `ClosedForm`, `EnergyBVP` (minimise the
energy of a discretised curve), `ShootingBVP` (refine an initial velocity through the
geodesic ODE) and `Hybrid` (the first seeding the second, after the practice of stochman
and Arvanitidis et al. 2018). This module checks inputs and outputs around them.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._bvp import AbstractBVPSolver, BVPResult, ClosedForm, EnergyBVP, Hybrid, ShootingBVP
from ._checks import as_point, curve_in_domain, has_domain, metric_point
from ._custom_types import PointLike, Scalar, Tangent
from ._geodesics import curve_energy
from ._graph import GeodesicGraph
from ._metrics import AbstractMetric


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
    - `solver`: a strategy (`jgeo._bvp`): `ClosedForm()`, `EnergyBVP(...)`,
      `ShootingBVP(...)` or a `Hybrid` of the last two. The default (None) is
      `ClosedForm()` where the metric has closed-form geodesics (`Euclidean`, the
      Poincaré models, `StereographicSphere`, products of them), else `Hybrid()` — and,
      with a `graph`, `Hybrid(shooting=ShootingBVP(damped=True))`, whose damped steps
      stay on the geodesic around the obstacle the graph path found. An explicit solver
      is always used as given, also on a metric with a closed form.
    - `num_points`: points of the discretised curve (and of the returned `curve`).
    - `graph`: a `geodesic_graph` of reference points; the energy stage then starts from
      the graph's shortest path instead of the straight line where the path's discrete
      energy is the lower (for far-apart points, or a straight line through a high-cost
      region).
    - `rtol`, `atol`: tolerances (default 1e-8 in float64, 1e-4 in float32): of the
      shooting residual ‖exp_x(v) − y‖∞ ≤ atol + rtol·max|y| (the ODE solves at a
      hundredth of them), of the energy minimisation (`EnergyBVP` alone), of the closed
      form's endpoint.
    - `throw`: raise if the solve fails (default); if False, report it in `result` and
      `converged` and fill the outputs with NaN, so a batch under `jax.vmap` goes on.
      A point outside the metric's domain (`metric.contains`) never converges.

    **Returns:** a `ConnectingGeodesic`: `velocity` (log_x y), `curve` (`num_points`
    points from `x` to `y`), `length`, `energy`, `residual` (‖exp_x(v) − y‖∞; 0 for
    `EnergyBVP`, whose curve ends at y by construction), `result` (a `BVPResult`: why it
    failed) and `converged`. x = y gives velocity 0 and length 0.

    **Raises:** `ValueError` for a malformed point or `num_points`, `TypeError` for a
    solver that is not one (or `ClosedForm()` on a metric without closed forms); with
    `throw=True`, a runtime error with the message of the failure's `BVPResult`.
    """
    x = metric_point(metric, x, throw=False)
    y = as_point(y, "y")
    if y.shape != x.shape:
        raise ValueError(f"`y` must be a point of shape {x.shape} like `x`, got {y.shape}.")
    solver = default_solver(metric, graph) if solver is None else solver
    if not isinstance(solver, AbstractBVPSolver):
        raise TypeError(
            "`solver` must be jgeo.ClosedForm(), jgeo.EnergyBVP(...), jgeo.ShootingBVP(...) "
            f"or jgeo.Hybrid(...), or None for the default; got {type(solver).__name__}."
        )
    if num_points < 3:
        raise ValueError(f"`num_points` must be at least 3, got {num_points}.")
    rtol, atol = tolerances(x.dtype, rtol, atol)
    return _connect(metric, x, y, solver, num_points, graph, rtol, atol, throw)


def default_solver(metric: AbstractMetric, graph: GeodesicGraph | None) -> AbstractBVPSolver:
    """`connecting_geodesic`'s solver where none is given: the closed form where the
    metric has one, else energy then shooting, damped from a graph path."""
    if metric.closed_form_geodesics:
        return ClosedForm()
    return Hybrid(shooting=ShootingBVP(damped=graph is not None))


def tolerances(dtype, rtol: float | None, atol: float | None) -> tuple[float, float]:
    """(rtol, atol), None meaning 1e-8 in float64 and 1e-4 in float32; a negative one,
    or both 0, is refused (a test no solve can pass)."""
    default = 1e-8 if dtype == jnp.float64 else 1e-4
    rtol, atol = (default if rtol is None else rtol), (default if atol is None else atol)
    return check_tolerances(rtol, atol)


def check_tolerances(rtol, atol) -> tuple:
    """Refuse a negative (or NaN) tolerance, and rtol = atol = 0; return them as Python
    floats (a NumPy or concrete JAX scalar too, so no solver closes over an array). A
    tracer (a tolerance under `jax.jit`) is passed through unchecked."""
    checked = []
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, jax.core.Tracer):
            value = float(value)
            if not value >= 0:  # NaN too
                raise ValueError(f"`{name}` must be a tolerance ≥ 0, got {value!r}.")
        checked.append(value)
    if all(isinstance(t, float) for t in checked) and checked == [0.0, 0.0]:
        raise ValueError("`rtol` and `atol` are both 0: give one of them a positive value.")
    return tuple(checked)


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
    out = solver.solve(metric, x, y, ts, graph=graph, rtol=rtol, atol=atol)
    curve, result = out.curve, out.result
    if has_domain(metric):  # both ends, and every point of the curve, in the domain
        inside = metric.contains(x) & metric.contains(y) & curve_in_domain(metric, curve)
        result = BVPResult.where(inside, result, BVPResult.outside_domain)
    finite = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(y))  # a NaN end, not the solver
    result = BVPResult.where(finite, result, BVPResult.not_finite)
    succeeded = result == BVPResult.successful
    fields = (out.velocity, curve, out.length, curve_energy(metric, curve), out.residual)
    fields = [jnp.where(succeeded, a, jnp.nan).astype(out_dtype) for a in fields]
    out = ConnectingGeodesic(*fields, result)
    if throw:
        out = result.error_if(out, ~succeeded)
    return out


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


# From this relative tolerance on, `distance` measures the discrete curve's length
# instead of shooting: at 16 points the midpoint rule's error (the check) is a few 1e-4
# on smooth decoders, below 1e-3; tighter tolerances would fail its check.
LOOSE = 1e-3


def distance(
    metric: AbstractMetric,
    x: PointLike,
    y: PointLike,
    *,
    solver: AbstractBVPSolver | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    **kwargs,
) -> Scalar:
    """Geodesic distance: the length of the connecting geodesic from `x` to `y`.

    **Arguments:**

    - `metric`, `x`, `y`: the metric and two points of shape (d,).
    - `solver`: as for `connecting_geodesic`, whose default it shares except at loose
      tolerances: from `rtol` = 1e-3 up (`LOOSE`) on a metric without closed forms the
      default is `EnergyBVP(check_length=True)` — the discrete curve's Simpson length,
      reported converged only where the cruder midpoint length agrees with it within
      atol + rtol·length. No ODE solve: the distance guide (docs/geodesics.md) has its
      cost against stochman's spline and its errors, measured at d = 2, 16 and 64.
    - `rtol`, `atol`: the tolerances (default 1e-8 in float64, 1e-4 in float32).
    - `**kwargs`: the other arguments of `connecting_geodesic` (`num_points`, `graph`,
      `throw`).

    **Returns:** a scalar; NaN if the solve failed and `throw=False`. Where geodesics pass
    an obstacle on either side this is the length of the critical curve found, not always
    the shortest (see the FAQ).
    """
    if solver is None and not metric.closed_form_geodesics:
        # Both dtypes' default rtol (1e-8, 1e-4) is below LOOSE.
        solver = EnergyBVP(check_length=True) if rtol is not None and rtol >= LOOSE else None
    return connecting_geodesic(metric, x, y, solver=solver, rtol=rtol, atol=atol, **kwargs).length
