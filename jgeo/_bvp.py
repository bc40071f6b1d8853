"""Solvers of the geodesic boundary value problem, and the codes that say why one failed.

A solver is a strategy, like diffrax's: a small immutable `equinox.Module` whose `solve`
does the work. `connecting_geodesic(metric, x, y, solver=...)` checks the inputs, runs
`solver.solve` and checks what it returns (domain, finiteness), so a new method is a new
class. They compose: `Hybrid(EnergyBVP(...), ShootingBVP(...))` seeds shooting with the
energy solution.
"""

import abc
import numbers
from typing import Literal

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from ._energy import (
    energy_linear_solver,
    initial_velocity,
    minimise_energy,
    velocity_sensitivity,
)
from ._geodesics import closed_form_curve, curve_energy, curve_length
from ._shooting import shoot


class BVPSolution(eqx.Module):
    """What a solver's `solve` returns; `connecting_geodesic` adds its checks.

    **Fields:** `velocity` (d,), the initial velocity; `curve` (n, d), the geodesic at
    the requested times; `length`; `residual`, ‖exp_x(v) − y‖∞ where the solver
    measures it (else 0); `result`, a `BVPResult`.
    """

    velocity: Float[Array, " d"]
    curve: Float[Array, "n d"]
    length: Float[Array, ""]
    residual: Float[Array, ""]
    result: "BVPResult"


class AbstractBVPSolver(eqx.Module):
    """A method for the geodesic boundary value problem exp_x(v) = y.

    Subclasses implement `solve`; the built-in ones are `ClosedForm`, `EnergyBVP`,
    `ShootingBVP` and `Hybrid`.

    **Arguments:** those of the subclass.
    """

    @abc.abstractmethod
    def solve(self, metric, x: Array, y: Array, ts: Array, *, graph, rtol: float,
              atol: float) -> BVPSolution:  # fmt: skip
        """Solve exp_x(v) = y.

        **Arguments:** the metric; the points `x`, `y` (d,); the times `ts` (n,) in
        [0, 1] at which to return the curve; `graph`, a `GeodesicGraph` or None, to start
        from; `rtol`, `atol`, the tolerances (see `connecting_geodesic`).

        **Returns:** a `BVPSolution`.
        """


class ClosedForm(AbstractBVPSolver):
    """The metric's own closed-form log map and geodesics: `Euclidean`, the Poincaré
    models, `StereographicSphere`, and products of them (`metric.closed_form_geodesics`).
    The default of `connecting_geodesic` on those metrics. The curve is checked to end at
    y within atol + rtol·max|y| (`BVPResult.not_finite` where it does not: points too
    close to a Poincaré model's boundary for their dtype).

    **Arguments:** none.
    """

    def solve(self, metric, x, y, ts, *, graph, rtol, atol):
        if not metric.closed_form_geodesics:
            raise TypeError(
                f"jgeo.ClosedForm(): {type(metric).__name__} has no closed-form geodesics; "
                "use jgeo.Hybrid() (the default for such metrics), jgeo.EnergyBVP() or "
                "jgeo.ShootingBVP()."
            )
        velocity = metric.log_map(x, y)
        curve = closed_form_curve(metric, x, velocity, ts)
        residual = jnp.max(jnp.abs(curve[-1] - y))
        ok = jnp.all(jnp.isfinite(curve)) & (residual <= atol + rtol * jnp.max(jnp.abs(y)))
        result = BVPResult.where(ok, BVPResult.successful, BVPResult.not_finite)
        return BVPSolution(velocity, curve, metric.distance(x, y), residual, result)


# The fewest points of a curve whose length `EnergyBVP(check_length=True)` vouches for.
CHECKED_POINTS = 8


def energy_start(metric, x: Array, y: Array, ts: Array, graph) -> Array:
    """Where an energy minimisation starts: the straight segment at `ts`; with a `graph`,
    its shortest path instead where that path's discrete energy is the lower. Around a
    wall of high cost the path is; in many dimensions a sparse k-NN graph's paths zigzag
    and the line often is (at d = 16, on 40 random codes of `bench/distances.py`'s
    decoder, the refined tier's whole matrix took 10–20 % less time than from the paths
    alone, in one process)."""
    line = (1 - ts[:, None]) * x[None] + ts[:, None] * y[None]
    if graph is None:
        return line
    path = graph.path(x, y, ts.shape[0])
    return jnp.where(curve_energy(metric, line) <= curve_energy(metric, path), line, path)


def check_max_steps(max_steps) -> None:
    integral = isinstance(max_steps, numbers.Integral) and not isinstance(max_steps, bool)
    if not integral or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive integer, got {max_steps!r}.")


class EnergyBVP(AbstractBVPSolver):
    """Minimise the energy of a discrete curve of `num_points` points between x and y.

    The discrete energy ½ (n − 1) Σᵢ ‖rᵢ‖² is a sum of squares whose segment i depends on
    points i and i + 1 only, so Levenberg–Marquardt on its block-tridiagonal normal
    equations minimises it in a few iterations. Robust from the straight line (or a graph
    path); the curve is second-order accurate in the spacing, its length (Simpson's rule,
    `curve_length(..., rule="simpson")`) much better: within 1.6e-7 of exact at 16
    points on `bench/geodesics.py`'s d = 16 decoder. What distances of many pairs need.
    Its velocity, a finite difference of the curve, is only second-order accurate: for
    log maps, shoot from it (`Hybrid`).

    **Arguments:**

    - `max_steps`: the iteration budget of Levenberg–Marquardt.
    - `linear_solver`: how its normal equations are solved: None, by the curve's
      d × d blocks (d decoder products a point, O(d³) a block); a `lineax` solver
      (`lineax.CG(...)`), matrix-free, each iteration a few products Jᵀ(J v) of the
      curve; `"auto"` (default): a pullback's own `linear_solver` if it has one, else CG
      for pullbacks from d = 8 on (faster from there on `bench/geodesics.py`'s decoders:
      22 against 53 ms a pair at d = 16), else the blocks.
    - `check_length`: make `rtol`/`atol` tolerances on the length, not on the curve's
      points. The curve is then minimised to 10·rtol only (on its points; `atol` is not
      the minimisation's, which takes rtol for both) — the length is
      stationary at the solution, so a curve δ off moves it by O(δ²): at d = 64 on
      `bench/geodesics.py`'s decoder, 1e-2 on the curve gave lengths within 1.1e-4 in a
      fifth of the time of 1e-3 — and the pair is reported converged only where the
      midpoint and Simpson lengths of `curve_length` agree within atol + rtol·length
      (else `BVPResult.length_unresolved`): the midpoint rule's error is second order,
      the reported Simpson length's fourth, so this bounds the quadrature's error with a
      wide margin. It does not see the curve's own discretisation error (its points are
      O(h²) off the geodesic, its length O(h⁴)): at 5 points a strongly curved decoder's
      lengths passed it 3 % off at rtol 1e-2, so it needs `num_points` ≥ 8. Off by
      default; `distance` turns it on where it picks this solver.
    """

    max_steps: int = eqx.field(default=100, static=True)
    linear_solver: lx.AbstractLinearSolver | Literal["auto"] | None = eqx.field(
        default="auto", static=True
    )
    check_length: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        check_max_steps(self.max_steps)

    def minimise(self, metric, x, y, ts, graph, tol) -> tuple[Array, Array]:
        """The energy-minimising curve at `ts` (from `energy_start`) to tolerance `tol`,
        and whether the minimisation converged."""
        start = energy_start(metric, x, y, ts, graph)
        solver = energy_linear_solver(metric, x.shape[0], self.linear_solver)
        return minimise_energy(metric, x, y, start, self.max_steps, tol, solver)

    def solve(self, metric, x, y, ts, *, graph, rtol, atol):
        if self.check_length and ts.shape[0] < CHECKED_POINTS:
            raise ValueError(
                f"EnergyBVP(check_length=True) needs `num_points` ≥ {CHECKED_POINTS}, got "
                f"{ts.shape[0]}: below, the curve's own discretisation error, which the "
                "check does not see, can exceed the tolerance."
            )
        tol = 10 * rtol if self.check_length else rtol
        curve, ok = self.minimise(metric, x, y, ts, graph, tol)
        length = curve_length(metric, curve, rule="simpson")
        result = BVPResult.where(ok, BVPResult.successful, BVPResult.energy_failed)
        if self.check_length:
            resolved = jnp.abs(curve_length(metric, curve) - length) <= atol + rtol * length
            result = BVPResult.where(resolved, result, BVPResult.length_unresolved)
        residual = jnp.zeros((), x.dtype)  # the curve ends at y by construction
        return BVPSolution(initial_velocity(curve), curve, length, residual, result)


class ShootingBVP(AbstractBVPSolver):
    """Solve exp_x(v) = y for v by steps through the geodesic ODE, from v = y − x (alone)
    or from the energy solution's velocity (in `Hybrid`).

    Accurate to the ODE tolerance, but it needs a start close to a geodesic.

    **Arguments:**

    - `max_steps`: the iteration budget.
    - `damped`: False takes Newton and Broyden steps (`newton_steps`); True takes the
      damped steps of Levenberg–Marquardt, at about 4× the cost, which stay on the
      geodesic of their start instead of jumping to another one through y — what a long,
      strongly curved start (a graph path around a wall) needs.
    - `newton_steps`: with undamped steps, how many Newton steps (each differentiating
      through the ODE in d directions, 1 + d solves' worth) come before the last one's
      Jacobian seeds Broyden's quasi-Newton steps (one ODE solve each, the Jacobian
      updated by rank one from every step; they stop when the endpoint is hit). `0`
      starts them from the seed's Jacobian; `None` takes Newton steps throughout. Unused
      where `Hybrid` starts Broyden's steps from the energy curve's own Jacobian (its
      default).
    - `ode_solver`: the diffrax solver of the geodesic ODE. None: by the ODE's
      tolerance (a hundredth of the solve's rtol): `Dopri8` below 1e-7 — at float64's
      default 1e-10 the 8th-order method takes so many fewer steps that the exact log
      maps of `bench/geodesics.py` ran 1.6× faster — and `Tsit5` otherwise (at 1e-5,
      the rtol=1e-3 distances, Tsit5 was 1.2× faster; at 1e-7 they were even).
    """

    max_steps: int = eqx.field(default=32, static=True)
    damped: bool = eqx.field(default=False, static=True)
    newton_steps: int | None = eqx.field(default=1, static=True)
    ode_solver: diffrax.AbstractSolver | None = None

    def __check_init__(self):
        check_max_steps(self.max_steps)
        if self.newton_steps is not None and not 0 <= self.newton_steps < self.max_steps:
            raise ValueError(
                "`newton_steps` must be None (Newton steps throughout) or an integer in "
                f"[0, max_steps = {self.max_steps}), got {self.newton_steps!r}."
            )

    def ode(self, rtol: float) -> diffrax.AbstractSolver:
        """The ODE solver for solves to `rtol` (see `ode_solver`)."""
        if self.ode_solver is not None:
            return self.ode_solver
        return diffrax.Dopri8() if rtol < 1e-7 else diffrax.Tsit5()

    def shoot(self, metric, x, y, ts, velocity, rtol, atol, inverse=None) -> BVPSolution:
        """Shoot from `velocity`; with `inverse` (an approximate ∂v/∂y), undamped steps
        are Broyden's steps from it, with no Newton step."""
        velocity, curve, ok = shoot(
            metric, x, y, ts, velocity, inverse=inverse, newton_steps=self.newton_steps,
            damped=self.damped, max_steps=self.max_steps, ode_solver=self.ode(0.01 * rtol),
            rtol=rtol, atol=atol,
        )  # fmt: skip
        residual = jnp.max(jnp.abs(curve[-1] - y))
        # The solver's own test may be on the step; also demand that the endpoint is hit.
        hit = ok & (residual <= atol + rtol * jnp.max(jnp.abs(y)))
        failed = BVPResult.where(ok, BVPResult.endpoint_missed, BVPResult.shooting_failed)
        result = BVPResult.where(hit, BVPResult.successful, failed)
        length = jnp.sqrt(velocity @ metric.operator(x).mv(velocity))
        return BVPSolution(velocity, curve, length, residual, result)

    def solve(self, metric, x, y, ts, *, graph, rtol, atol):
        return self.shoot(metric, x, y, ts, y - x, rtol, atol)


class Hybrid(AbstractBVPSolver):
    """Energy minimisation, then shooting from its initial velocity (after the practice
    of stochman and Arvanitidis et al. 2018): the robustness of the first, the accuracy
    of the second.

    **Arguments:**

    - `energy`: the `EnergyBVP` stage.
    - `shooting`: the `ShootingBVP` stage.
    - `seed_rtol`: the energy stage's tolerance (at least the solve's own): as a seed,
      the discrete curve only needs the accuracy of its O(1/n²) discretisation error,
      and solving it tighter costs steps and buys nothing.
    - `seed_jacobian`: True (default): undamped shooting starts Broyden's steps from the
      energy curve's own Jacobian ∂v/∂y (the discrete problem's Gauss–Newton system at
      its solution, factored by blocks, `jgeo._energy.velocity_sensitivity`): no
      differentiation through the ODE, each step one ODE solve. Exact log maps (rtol
      1e-8) of `bench/geodesics.py`'s d = 16 decoder took 5.8× less time than with a
      Newton step first. False, or a shooting stage with `newton_steps=None` (Newton
      throughout) or `damped=True`: the shooting stage's own steps.
    """

    energy: EnergyBVP = EnergyBVP()
    shooting: ShootingBVP = ShootingBVP()
    seed_rtol: float = eqx.field(default=1e-3, static=True)
    seed_jacobian: bool = eqx.field(default=True, static=True)

    def solve(self, metric, x, y, ts, *, graph, rtol, atol):
        curve, _ = self.energy.minimise(metric, x, y, ts, graph, max(rtol, self.seed_rtol))
        inverse = None
        newton = self.shooting.newton_steps is None  # asked for Newton steps throughout
        if self.seed_jacobian and not self.shooting.damped and not newton:
            inverse = velocity_sensitivity(metric, curve)
        # Reported as shooting ends: a seed short of convergence that it still carries to
        # y is a success, and its failure is named after the shooting.
        return self.shooting.shoot(metric, x, y, ts, initial_velocity(curve), rtol, atol, inverse)


class BVPResult(eqxi.Enumeration):
    """Why a connecting-geodesic solve failed (`ConnectingGeodesic.result`).

    **Fields:** the codes, compared as `result == jgeo.BVPResult.successful`:
    `successful`, `energy_failed`, `length_unresolved`, `shooting_failed`,
    `endpoint_missed`, `outside_domain`, `not_finite`. Each failure carries the message
    `throw=True` raises with, and a result prints as its message
    (`BVPResult<successful>` on success).
    """

    successful = "successful"  # never raised: the text of its repr
    energy_failed = (
        "the energy minimisation of the discrete curve did not converge: raise "
        "`EnergyBVP(max_steps=...)` or `num_points`, or start from a `graph` of reference "
        "points when the points are far apart."
    )
    length_unresolved = (
        "the discrete curve does not resolve its length to the tolerance: its midpoint and "
        "Simpson lengths differ by more than atol + rtol·length. Raise `num_points`, "
        "loosen `rtol`, or pass `solver=jgeo.Hybrid()` for a length to the ODE tolerance."
    )
    shooting_failed = (
        "shooting (exp_x(v) = y) did not converge: its start is too far from a geodesic. "
        "Seed it with the energy stage (`Hybrid`), pass a `graph`, or raise "
        "`ShootingBVP(max_steps=...)`."
    )
    endpoint_missed = (
        "shooting stopped, but exp_x(v) misses y by more than atol + rtol·max|y|: raise "
        "`ShootingBVP(max_steps=...)` or loosen `rtol`/`atol`."
    )
    outside_domain = (
        "a point of the curve lies outside the metric's domain (e.g. on or beyond the "
        "ideal boundary of a Poincaré model)."
    )
    not_finite = (
        "`x` or `y` is not finite (check the step that produced it); or the closed-form "
        "geodesic from `x` to `y` is not finite, or misses `y` by more than "
        "atol + rtol·max|y|. On a PoincareBall or PoincareHalfSpace the points lie too "
        "close to the ideal boundary, or too far apart, for their dtype: near the boundary "
        "1 − ‖x‖² keeps few digits (float32 points within about 1e-3 of it), and the curve, "
        "computed from `x`, needs tanh(d/2) of the distance d told apart from 1 (d below "
        "about 33 in float64, 13 in float32). Pass float64 points "
        "(`jax.config.update('jax_enable_x64', True)`, then `x.astype(jnp.float64)`), or "
        "points farther from the boundary. On a StereographicSphere `x` and `y` are "
        "antipodal (no single shortest geodesic joins them) or the geodesic passes the "
        "north pole, which the chart leaves out."
    )
