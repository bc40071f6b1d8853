"""Solvers of the geodesic boundary value problem, and the codes that say why one failed.

A solver is a small, immutable configuration (an `equinox.Module` of static fields):
`connecting_geodesic(metric, x, y, solver=...)` runs it. Like diffrax's solvers they
compose: `Hybrid(EnergyBVP(...), ShootingBVP(...))` seeds shooting with the energy
solution.
"""

import diffrax
import equinox as eqx
import equinox.internal as eqxi


class AbstractBVPSolver(eqx.Module):
    """A method for the geodesic boundary value problem exp_x(v) = y.

    **Arguments:** those of the subclass: `EnergyBVP`, `ShootingBVP` or `Hybrid`.
    """

    def stages(self) -> tuple["EnergyBVP | None", "ShootingBVP | None"]:
        """The energy stage and the shooting stage this solver runs (None: skipped)."""
        raise NotImplementedError


class EnergyBVP(AbstractBVPSolver):
    """Minimise the energy of a discrete curve of `num_points` points between x and y.

    The discrete energy ½ (n − 1) Σᵢ ‖rᵢ‖² is a sum of squares whose segment i depends on
    points i and i + 1 only, so Levenberg–Marquardt on its block-tridiagonal normal
    equations minimises it in a few iterations at O(n·d) decoder Jacobian-vector products
    and O(n·d³) arithmetic a step. Robust from the straight line (or a graph path),
    first-order accurate in the spacing: lengths within a few 1e-4 of exact at 16 points
    on smooth decoders — what distance matrices of many pairs need.

    **Arguments:**

    - `max_steps`: the iteration budget of Levenberg–Marquardt.
    """

    max_steps: int = eqx.field(default=100, static=True)

    def stages(self):
        return self, None


class ShootingBVP(AbstractBVPSolver):
    """Solve exp_x(v) = y for v by differentiating through the geodesic ODE, from
    v = y − x (alone) or from the energy solution's velocity (in `Hybrid`).

    Accurate to the ODE tolerance, but it needs a start close to a geodesic.

    **Arguments:**

    - `max_steps`: the iteration budget.
    - `damped`: False takes Newton and chord steps (`newton_steps`); True takes
      the damped steps of Levenberg–Marquardt, at about 4× the cost, which stay on the
      geodesic of their start instead of jumping to another one through y — what a long,
      strongly curved start (a graph path around a wall) needs.
    - `newton_steps`: with undamped steps, how many Newton steps (each differentiating
      through the ODE in d directions, 1 + d solves' worth) come before the Jacobian is
      kept for chord steps (one ODE solve each). After one Newton step from an energy
      seed the kept Jacobian is so close to the solution's that 1–3 chord steps finish,
      where Newton alone takes 2–4 steps with a Jacobian each, and a `vmap`ped batch
      runs as long as its slowest pair: exact log maps of 50 pairs of a 2 → 784 MLP
      decoder (float64) went from 132 to 92 ms a pair. `0` keeps the seed's Jacobian
      (its steps can diverge where Newton's converge: 1 of 200 float32 pairs of
      `bench/distances.py`); `None` takes Newton steps throughout.
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
        if self.newton_steps is not None and not 0 <= self.newton_steps < self.max_steps:
            raise ValueError(
                "`newton_steps` must be None (Newton steps throughout) or an integer in "
                f"[0, max_steps = {self.max_steps}), got {self.newton_steps!r}."
            )

    def stages(self):
        return None, self

    def ode(self, rtol: float) -> diffrax.AbstractSolver:
        """The ODE solver for solves to `rtol` (see `ode_solver`)."""
        if self.ode_solver is not None:
            return self.ode_solver
        return diffrax.Dopri8() if rtol < 1e-7 else diffrax.Tsit5()


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
    """

    energy: EnergyBVP = EnergyBVP()
    shooting: ShootingBVP = ShootingBVP()
    seed_rtol: float = eqx.field(default=1e-3, static=True)

    def stages(self):
        return self.energy, self.shooting


class BVPResult(eqxi.Enumeration):
    """Why a connecting-geodesic solve failed (`ConnectingGeodesic.result`).

    **Fields:** the codes, compared as `result == jgeo.BVPResult.successful`:
    `successful`, `energy_failed`, `shooting_failed`, `endpoint_missed`,
    `outside_domain`, `not_finite`. Each failure carries the message `throw=True` raises
    with, and a result prints as its message (`BVPResult<successful>` on success).
    """

    successful = "successful"  # never raised: the text of its repr
    energy_failed = (
        "the energy minimisation of the discrete curve did not converge: raise "
        "`EnergyBVP(max_steps=...)` or `num_points`, or start from a `graph` of reference "
        "points when the points are far apart."
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
