"""Shooting for the geodesic boundary value problem: find v with exp_x(v) = y by steps
through the geodesic ODE (the `ShootingBVP` solver and `Hybrid`'s second stage)."""

import functools
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optimistix as optx
from jaxtyping import Array, Bool, Float, PyTree

from ._autodiff import frozen, jacfwd_and_value
from ._geodesics import ODESolver, geodesic
from ._split_modes import split_modes


class _BroydenState(eqx.Module):
    inverse: Float[Array, "d d"]  # the current approximation M of (∂f/∂v)⁻¹
    previous: Array  # the last v evaluated, and f there
    previous_f: Array
    started: Bool[Array, ""]
    done: Bool[Array, ""]


class Broyden(optx.AbstractRootFinder):
    """Quasi-Newton steps v ← v − M f(v) from an approximate inverse Jacobian M, with
    Broyden's ("good") rank-one update of M after every step, until max|f(v)| ≤
    `tolerance`: a chord iteration that learns, superlinear where a fixed M contracts
    only linearly (by ‖I − M J‖: 0.05–0.5 for an energy curve's Gauss–Newton M on
    strongly curved decoders). It stops *at* the point it last evaluated, so the test is
    on f itself at the returned v — the endpoint residual — not on the step.

    **Fields:** `inverse` (M₀, d × d), `tolerance` (absolute, on max|f|).
    """

    inverse: Float[Array, "d d"]
    tolerance: Float[Array, ""]
    rtol: float = 0.0  # unused: the test is on f (optimistix's interface asks for them)
    atol: float = 0.0
    norm: Callable[[PyTree], Array] = optx.max_norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        zero = jnp.zeros_like(y)
        return _BroydenState(self.inverse, zero, zero, jnp.array(False), jnp.array(False))

    def step(self, fn, y, args, options, state: _BroydenState, tags):
        f, aux = fn(y, args)
        done = jnp.max(jnp.abs(f)) <= self.tolerance
        # M ← M + (Δv − M Δf) Δvᵀ M / (Δvᵀ M Δf): the inverse of J + (Δf − J Δv) Δvᵀ/‖Δv‖².
        step, change = y - state.previous, f - state.previous_f
        moved = state.inverse @ change
        denominator = step @ moved
        usable = state.started & (jnp.abs(denominator) > 1e-12 * jnp.sum(step**2))
        update = jnp.outer(step - moved, step @ state.inverse) / jnp.where(usable, denominator, 1)
        inverse = jnp.where(usable & jnp.all(jnp.isfinite(update)), state.inverse + update,
                            state.inverse)  # fmt: skip
        new = jnp.where(done, y, y - inverse @ f)
        return new, _BroydenState(inverse, y, f, jnp.array(True), done), aux

    def terminate(self, fn, y, args, options, state: _BroydenState, tags):
        return state.done, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}


def shoot(
    metric,
    x: Array,
    y: Array,
    ts: Array,
    velocity: Array,
    *,
    inverse: Float[Array, "d d"] | None,
    newton_steps: int | None,
    damped: bool,
    max_steps: int,
    ode_solver: diffrax.AbstractSolver,
    rtol: float,
    atol: float,
) -> tuple[Array, Array, Bool[Array, ""]]:
    """Refine `velocity` until exp_x(v) hits y to atol + rtol·max|y|; returns v, the
    geodesic at `ts`, and whether the solver converged. `inverse`: an approximate
    ∂v/∂y to start Broyden's steps from (no Newton steps)."""
    ode = ODESolver(ode_solver, 0.01 * rtol, 0.01 * atol)
    tolerance = atol + rtol * jnp.max(jnp.abs(y))

    def misses(metric, x, y):
        def miss(v, _):  # exp_x(v) − y, and the geodesic's points as aux
            curve = _geodesic_points(metric, x, v, ts, ode)
            return curve[-1] - y, curve

        return miss

    miss = misses(metric, x, y)

    def endpoint(v):
        return miss(v, None)[0]

    # The start does not move the solution's derivatives (the implicit function theorem):
    # no need to differentiate the seed or the Newton steps below.
    velocity = jax.lax.stop_gradient(velocity)
    if damped:
        # Solved on constants, then differentiated as a root of exp_x(v) − y as the other
        # routes are: the least-squares adjoint would differentiate Jᵀr, forward over
        # reverse, which the reverse program (RecursiveCheckpointAdjoint) cannot. A
        # Broyden "solve" that stops at its start evaluates the miss once and carries
        # the implicit adjoint.
        solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol)
        sol = optx.least_squares(misses(*frozen((metric, x, y))), solver, velocity,
                                 has_aux=True, max_steps=max_steps, throw=False)  # fmt: skip
        stop = Broyden(jnp.eye(x.shape[0], dtype=x.dtype), jnp.asarray(jnp.inf, x.dtype))
        root = optx.root_find(miss, stop, jax.lax.stop_gradient(sol.value), has_aux=True,
                              max_steps=1, throw=False)  # fmt: skip
        return _finish(miss, root.value, sol.result)
    if inverse is None and newton_steps is None:
        solver = optx.Newton(rtol=rtol, atol=atol)
        sol = optx.root_find(miss, solver, velocity, has_aux=True, max_steps=max_steps,
                             throw=False)  # fmt: skip
        return _finish(miss, sol.value, sol.result)
    if inverse is None:
        # Newton steps, the last of them the first Broyden step: every pair takes them
        # (no loop to wait on), and one traced Jacobian serves them all.
        def newton(v, _):
            jacobian, value = jacfwd_and_value(endpoint, v)
            return v - jnp.linalg.solve(jacobian, value), jacobian

        velocity, jacobians = jax.lax.scan(newton, velocity, length=newton_steps + 1)
        kept = jsl.lu_factor(jax.lax.stop_gradient(jacobians[-1]))
        inverse = jsl.lu_solve(kept, jnp.eye(x.shape[0], dtype=x.dtype))
        steps = max(1, max_steps - newton_steps - 1)
    else:
        steps = max_steps
    broyden = Broyden(jax.lax.stop_gradient(inverse), tolerance)
    velocity = jax.lax.stop_gradient(velocity)
    # Differentiated by optimistix's implicit adjoint as a root of exp_x(v) − y: M drops out.
    sol = optx.root_find(miss, broyden, velocity, has_aux=True, max_steps=steps, throw=False)
    return _finish(miss, sol.value, sol.result)


def _points(metric, x, v, ts, ode: ODESolver, adjoint: diffrax.AbstractAdjoint) -> Array:
    ode = eqx.tree_at(lambda o: o.adjoint, ode, adjoint)
    return geodesic(metric, x, v, ts, method="ode", ode=ode, throw=False).xs


# (metric, x, v, ts, ode) ↦ the geodesic's points at `ts`, differentiable in both modes:
# Newton's Jacobians take forward mode, and the implicit adjoint of the root find
# transposes a JVP for reverse-mode gradients. diffrax's `DirectAdjoint` does both but
# its reverse mode is wrong here (`jgeo._split_modes`): forward mode from `ForwardMode`,
# reverse from `RecursiveCheckpointAdjoint`. Everything, the ODE solver's tolerances too,
# comes in as an argument: the two programs close over nothing traced.
_geodesic_points = split_modes(
    functools.partial(_points, adjoint=diffrax.ForwardMode()),
    functools.partial(_points, adjoint=diffrax.RecursiveCheckpointAdjoint()),
)


def _finish(miss, value, result):
    # The geodesic again from the solution: the solvers' aux is that of their last
    # evaluation (not always at the returned v), and it carries no gradient — the
    # implicit adjoint differentiates the solution, not its aux. One ODE solve more.
    return value, miss(value, None)[1], result == optx.RESULTS.successful
