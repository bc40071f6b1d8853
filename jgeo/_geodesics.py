"""Geodesics as initial value problems: the exponential map, sampled geodesics,
parallel transport (diffrax), and the length and energy of discrete curves."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._checks import as_point, as_tangent, metric_point
from ._custom_types import Point, PointLike, Scalar, Tangent
from ._metrics import AbstractMetric


class Geodesic(eqx.Module):
    """A geodesic sampled at times `ts`, with the solver's diagnostics.

    **Fields:**

    - `ts`: the times, shape (n,).
    - `xs`, `vs`: positions and velocities at `ts`, shape (n, d). Where the solve failed
      (`succeeded` is False) they are NaN, so a failure cannot pass for a result.
    - `result`: the `diffrax.RESULTS` code of the solve.
    - `num_steps`: accepted plus rejected steps taken.
    """

    ts: Float[Array, " n"]
    xs: Float[Array, "n d"]
    vs: Float[Array, "n d"]
    result: diffrax.RESULTS
    num_steps: Int[Array, ""]

    @property
    def succeeded(self) -> Bool[Array, ""]:
        return self.result == diffrax.RESULTS.successful


class ODESolver(eqx.Module):
    """How geodesic ODEs are solved: a diffrax solver with adaptive steps.

    **Fields:**

    - `solver`: a diffrax solver (default `diffrax.Tsit5()`).
    - `rtol`, `atol`: tolerances of the `PIDController`; `None` means 1e-9 in float64
      and 1e-5 in float32.
    - `max_steps`: the step budget; running out is a failure.
    - `adjoint`: a diffrax adjoint. The default differentiates in reverse mode; pass
      `diffrax.ForwardMode()` for `jax.jvp`/`jax.jacfwd`, or `diffrax.DirectAdjoint()`
      for both.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: float | None = None
    atol: float | None = None
    max_steps: int = eqx.field(static=True, default=4096)
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()

    def solve(self, metric, y0: tuple[Array, ...], vector_field, ts: Array, throw: bool):
        dtype = y0[0].dtype
        default = 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5
        controller = diffrax.PIDController(
            rtol=default if self.rtol is None else self.rtol,
            atol=default if self.atol is None else self.atol,
        )
        return diffrax.diffeqsolve(
            diffrax.ODETerm(vector_field),
            self.solver,
            t0=jnp.zeros((), dtype),
            t1=ts[-1],
            dt0=None,
            y0=y0,
            args=metric,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=controller,
            max_steps=self.max_steps,
            throw=throw,
            adjoint=self.adjoint,
        )


def _geodesic_field(t, state, metric):
    x, v = state
    return v, metric.geodesic_acceleration(x, v)


def _transport_field(t, state, metric):
    x, v, w = state
    # −Γ(v, w) by polarisation of the spray, a quadratic form: −Γ(v,w) = ¼[a(v+w) − a(v−w)].
    # It reuses each metric's fast spray, so no metric needs to form Γ.
    along = 0.25 * (metric.geodesic_acceleration(x, v + w) - metric.geodesic_acceleration(x, v - w))
    return v, metric.geodesic_acceleration(x, v), along


def _times(ts: ArrayLike, like: Array) -> Array:
    ts = jnp.asarray(ts, like.dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"`ts` must be a non-empty 1-D array of times, got shape {ts.shape}.")
    return ts


def _mask(succeeded: Array, *arrays: Array) -> tuple[Array, ...]:
    return tuple(jnp.where(succeeded, a, jnp.nan) for a in arrays)


_SOLVER_DOC = """
    - `ode`: an `ODESolver` (solver, tolerances, step budget, adjoint).
    - `throw`: if True, a failed solve raises (also under jit); if False, the failed
      output is NaN and the batch goes on (use with `jax.vmap` over many geodesics).
"""


def geodesic(
    metric: AbstractMetric,
    x: PointLike,
    v: ArrayLike,
    ts: ArrayLike,
    *,
    ode: ODESolver = ODESolver(),
    throw: bool = True,
) -> Geodesic:
    """The geodesic γ with γ(0) = x, γ'(0) = v, sampled at times `ts` ≥ 0.

    Solves ẍᵏ = −Γᵏᵢⱼ ẋⁱ ẋʲ as a first-order system in (x, v) with the metric's fast
    `geodesic_acceleration`.

    **Arguments:**

    - `metric`, `x`, `v`: the metric, a point and a tangent vector, shape (d,).
    - `ts`: increasing times, shape (n,); the solve runs from 0 to `ts[-1]`.
    """
    x = metric_point(metric, x)
    v = as_tangent(x, v, "v")
    ts = _times(ts, x)
    sol = ode.solve(metric, (x, v), _geodesic_field, ts, throw)
    succeeded = sol.result == diffrax.RESULTS.successful
    xs, vs = _mask(succeeded, sol.ys[0], sol.ys[1])
    return Geodesic(ts, xs, vs, sol.result, sol.stats["num_steps"])


geodesic.__doc__ += _SOLVER_DOC


def exp_map(
    metric: AbstractMetric,
    x: PointLike,
    v: ArrayLike,
    *,
    ode: ODESolver = ODESolver(),
    throw: bool = True,
) -> Point:
    """The exponential map exp_x(v) = γ(1) for the geodesic γ(0) = x, γ'(0) = v.

    **Returns:** a point of shape (d,); NaN if the solve failed and `throw=False`.

    **Arguments:** as for `geodesic`, without `ts`:
    """
    x = as_point(x, "x")
    return geodesic(metric, x, v, jnp.ones((1,), x.dtype), ode=ode, throw=throw).xs[-1]


exp_map.__doc__ += _SOLVER_DOC


def parallel_transport(
    metric: AbstractMetric,
    x: PointLike,
    v: ArrayLike,
    w: ArrayLike,
    *,
    ode: ODESolver = ODESolver(),
    throw: bool = True,
) -> Tangent:
    """Parallel transport of `w` ∈ T_x along t ↦ exp_x(t v), t ∈ [0, 1].

    Solves ẇᵏ = −Γᵏᵢⱼ ẋⁱ wʲ together with the geodesic. Transport is linear in `w` and
    preserves inner products: g(P w₁, P w₂) = g(w₁, w₂).

    **Returns:** the transported vector at exp_x(v), shape (d,).

    **Arguments:** `metric`, `x`, `v` as for `exp_map`; `w` a tangent vector at `x`;
    """
    x = metric_point(metric, x)
    v, w = as_tangent(x, v, "v"), as_tangent(x, w, "w")
    sol = ode.solve(metric, (x, v, w), _transport_field, jnp.ones((1,), x.dtype), throw)
    succeeded = sol.result == diffrax.RESULTS.successful
    return _mask(succeeded, sol.ys[2][-1])[0]


parallel_transport.__doc__ += _SOLVER_DOC


def _segments(metric: AbstractMetric, c: ArrayLike) -> Array:
    """g(Δᵢ, Δᵢ) of each segment Δᵢ = cᵢ₊₁ − cᵢ, with g at the segment's midpoint."""
    c = jnp.asarray(c)
    if c.ndim != 2 or c.shape[0] < 2:
        raise ValueError(f"`c` must be a discrete curve of shape (n ≥ 2, d), got {c.shape}.")
    metric_point(metric, c[0])
    steps = c[1:] - c[:-1]
    mids = 0.5 * (c[1:] + c[:-1])
    return jax.vmap(lambda m, s: s @ metric(m) @ s)(mids, steps)


def curve_length(metric: AbstractMetric, c: ArrayLike) -> Scalar:
    """Length Σᵢ √g(Δᵢ, Δᵢ) of the polygon through the points `c` (n, d), with the metric
    at each segment's midpoint (second-order accurate in the spacing)."""
    return jnp.sum(jnp.sqrt(_segments(metric, c)))


def curve_energy(metric: AbstractMetric, c: ArrayLike) -> Scalar:
    """Energy ½ ∫₀¹ g(ċ, ċ) dt of the curve through `c` (n, d), its points taken at
    evenly spaced times: ½ (n − 1) Σᵢ g(Δᵢ, Δᵢ). For a constant-speed curve,
    length² = 2 · energy; geodesics minimise it among curves with the same ends."""
    squares = _segments(metric, c)
    return 0.5 * (squares.shape[0]) * jnp.sum(squares)
