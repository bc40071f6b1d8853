"""Shooting for the geodesic boundary value problem: find v with exp_x(v) = y by steps
through the geodesic ODE (the `ShootingBVP` solver and `Hybrid`'s second stage)."""

from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optimistix as optx
from jaxtyping import Array, Bool, Float, PyTree

from ._autodiff import jacfwd_and_value
from ._geodesics import ODESolver, geodesic


class Chord(optx.AbstractRootFinder):
    """Chord steps v ← v − M f(v) with a fixed approximate inverse Jacobian M, until
    max|f(v)| ≤ `tolerance`. It stops *at* the point it last evaluated, so the aux it
    returns (the geodesic) belongs to the returned v, and the test is on f itself — the
    endpoint residual — not on the step.

    **Fields:** `inverse` (M, d × d), `tolerance` (absolute, on max|f|).
    """

    inverse: Float[Array, "d d"]
    tolerance: Float[Array, ""]
    rtol: float = 0.0  # unused: the test is on f (optimistix's interface asks for them)
    atol: float = 0.0
    norm: Callable[[PyTree], Array] = optx.max_norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        return jnp.array(False)

    def step(self, fn, y, args, options, state, tags):
        f, aux = fn(y, args)
        done = jnp.max(jnp.abs(f)) <= self.tolerance
        return jnp.where(done, y, y - self.inverse @ f), done, aux

    def terminate(self, fn, y, args, options, state, tags):
        return state, optx.RESULTS.successful

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
    ∂v/∂y for chord steps from the start (no Newton steps)."""
    # DirectAdjoint: Newton's Jacobians use forward mode, the implicit gradients reverse.
    ode = ODESolver(ode_solver, 0.01 * rtol, 0.01 * atol, adjoint=diffrax.DirectAdjoint())
    tolerance = atol + rtol * jnp.max(jnp.abs(y))

    def miss(v, _):
        curve = geodesic(metric, x, v, ts, method="ode", ode=ode, throw=False).xs
        return curve[-1] - y, curve

    def endpoint(v):
        return miss(v, None)[0]

    # The start does not move the solution's derivatives (the implicit function theorem):
    # no need to differentiate the seed or the Newton steps below.
    velocity = jax.lax.stop_gradient(velocity)
    if damped:
        solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol)
        sol = optx.least_squares(miss, solver, velocity, has_aux=True, max_steps=max_steps,
                                 throw=False)  # fmt: skip
        return _finish(miss, sol)
    if inverse is None and newton_steps is None:
        solver = optx.Newton(rtol=rtol, atol=atol)
        sol = optx.root_find(miss, solver, velocity, has_aux=True, max_steps=max_steps,
                             throw=False)  # fmt: skip
        return _finish(miss, sol)
    if inverse is None:
        # Newton steps, the last of them the first chord step: every pair takes them (no
        # loop to wait on), and one traced Jacobian serves them all.
        def newton(v, _):
            jacobian, value = jacfwd_and_value(endpoint, v)
            return v - jnp.linalg.solve(jacobian, value), jacobian

        velocity, jacobians = jax.lax.scan(newton, velocity, length=newton_steps + 1)
        kept = jsl.lu_factor(jax.lax.stop_gradient(jacobians[-1]))
        inverse = jsl.lu_solve(kept, jnp.eye(x.shape[0], dtype=x.dtype))
        steps = max(1, max_steps - newton_steps - 1)
    else:
        steps = max_steps
    chord = Chord(jax.lax.stop_gradient(inverse), tolerance)
    velocity = jax.lax.stop_gradient(velocity)
    # Differentiated by optimistix's implicit adjoint as a root of exp_x(v) − y: M drops out.
    sol = optx.root_find(miss, chord, velocity, has_aux=True, max_steps=steps, throw=False)
    return sol.value, sol.aux, sol.result == optx.RESULTS.successful


def _finish(miss, sol):
    # The solvers' aux is that of their last evaluation, not always of the returned v.
    return sol.value, miss(sol.value, None)[1], sol.result == optx.RESULTS.successful
