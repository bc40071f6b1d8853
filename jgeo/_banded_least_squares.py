"""Levenberg–Marquardt for least squares whose Jacobian is block-bidiagonal: the
residuals of a discrete curve.

The energy of a curve of n points with fixed ends is a sum over its n − 1 segments, and
segment i depends on points i and i + 1 only. Written as residuals r (one row of m
numbers per segment) of the N = n − 2 free points y (N, d), the Jacobian has two nonzero
blocks per row, so JᵀJ is block tridiagonal. A dense solver (optimistix's
`LevenbergMarquardt`) builds all N·d columns of J — one pass of the residuals per column
— and factors the (n − 1)·m × N·d matrix by QR: at d = 16 and a 784-pixel decoder, 2.4
GFLOP a step. Here, two colours suffice to probe the band (no row touches two points of
the same parity), so 2·d Jacobian-vector products give every block; JᵀJ is assembled per
block and factored by block Cholesky in O(N·d³).

For wide latent spaces (d in the hundreds to thousands) the blocks themselves are the
cost: d products per point and N·d³ arithmetic. With a `linear_solver` the damped normal
equations are solved matrix-free instead, by preconditioned conjugate gradients on
products Jᵀ(J v) (one JVP and one VJP of the residuals each), see
`BandedLevenbergMarquardt`.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._linalg import solve_matrix_free


def solve_block_tridiagonal(
    diag: Float[Array, "N d d"], upper: Float[Array, "N-1 d d"], b: Float[Array, "N d"]
) -> Float[Array, "N d"]:
    """Solve A x = b for a symmetric positive definite block-tridiagonal A.

    **Arguments:**

    - `diag`: the diagonal blocks A[j, j].
    - `upper`: the blocks above the diagonal, A[j, j + 1] (A[j + 1, j] is its transpose).
    - `b`: the right-hand side, one row per block.

    **Returns:** x, shape (N, d). Block Cholesky: A = L Lᵀ with diagonal blocks Lⱼ and
    blocks Cⱼ below them, Lⱼ Lⱼᵀ = A[j, j] − Cⱼ Cⱼᵀ, Cⱼ = (L⁻¹ⱼ₋₁ A[j − 1, j])ᵀ.
    """

    def lower_solve(a, rhs):
        return jsl.solve_triangular(a, rhs, lower=True)

    def upper_solve(a, rhs):  # with Lᵀ, given L
        return jsl.solve_triangular(a, rhs, lower=True, trans="T")

    first = jnp.linalg.cholesky(diag[0])
    w_first = lower_solve(first, b[0])

    def forward(carry, block):
        factor, w = carry
        a, above, rhs = block
        c = lower_solve(factor, above).T
        factor = jnp.linalg.cholesky(a - c @ c.T)
        w = lower_solve(factor, rhs - c @ w)
        return (factor, w), (factor, c, w)

    _, (factors, cs, ws) = jax.lax.scan(forward, (first, w_first), (diag[1:], upper, b[1:]))
    factors = jnp.concatenate([first[None], factors])
    ws = jnp.concatenate([w_first[None], ws])
    x_last = upper_solve(factors[-1], ws[-1])

    def backward(x_next, block):
        factor, c_next, w = block
        x = upper_solve(factor, w - c_next.T @ x_next)
        return x, x

    _, xs = jax.lax.scan(backward, x_last, (factors[:-1], cs, ws[:-1]), reverse=True)
    return jnp.concatenate([xs, x_last[None]])


class _Linearisation(eqx.Module):
    residual: Float[Array, "N+1 m"]
    diag: Float[Array, "N d d"] | None  # JᵀJ, blocks on the diagonal (None: matrix-free)
    upper: Float[Array, "N-1 d d"] | None  # JᵀJ, blocks above it
    gradient: Float[Array, "N d"]  # Jᵀr
    scale: Float[Array, ""]  # the largest diagonal entry of JᵀJ (matrix-free: an estimate)


# The band of J, tangent-major: row i's block for the point before it and for the point
# after it, (d, m) each (see `BandedLevenbergMarquardt.jacobian`).
Band = tuple[Float[Array, "N+1 m"], Float[Array, "N d m"], Float[Array, "N d m"]]


def probe_band(fn, y, args) -> tuple[Band, Any]:
    """The band of J from 2·d Jacobian-vector products of `fn` (with its aux)."""
    n_free, d = y.shape
    residual, jvp, aux = jax.linearize(lambda z: fn(z, args), y, has_aux=True)
    # Probe the points of one parity at a time, one coordinate at a time: row i sees only
    # points i − 1 and i, of different parities, so each product isolates one block column.
    parity = jnp.arange(n_free) % 2
    probes = (parity[None, :] == jnp.arange(2)[:, None]).astype(y.dtype)  # (2, N)
    eye = jnp.eye(d, dtype=y.dtype)
    tangents = probes[:, None, :, None] * eye[None, :, None, :]  # (2, d, N, d)
    products = jax.vmap(jax.vmap(jvp))(tangents)  # (2, d, N + 1, m)
    rows = jnp.arange(n_free + 1)
    # Row i's block for point i − 1 (left of it) and for point i (right of it).
    left = products[(rows + 1) % 2, :, rows][1:]
    right = products[rows % 2, :, rows][:-1]
    return (residual, left, right), aux


def block_gram(left: Array, right: Array) -> tuple[Array, Array]:
    """JᵀJ of a band (`left`, `right`): its diagonal blocks (N, d, d) and the blocks
    above them (N − 1, d, d)."""
    diag = jnp.einsum("jdm,jem->jde", right, right) + jnp.einsum("jdm,jem->jde", left, left)
    return diag, jnp.einsum("jdm,jem->jde", left[:-1], right[1:])


def _linearise(fn, y, args, jacobian=None) -> tuple[_Linearisation, Any]:
    """JᵀJ's blocks and Jᵀr at y: from `jacobian(y, args)` when given, else by probing
    `fn` (optimistix's form, returning (residuals, aux))."""
    if jacobian is None:
        (residual, left, right), aux = probe_band(fn, y, args)
    else:
        (residual, left, right), aux = jacobian(y, args), None
    diag, upper = block_gram(left, right)
    gradient = jnp.einsum("jdm,jm->jd", right, residual[:-1])
    gradient = gradient + jnp.einsum("jdm,jm->jd", left, residual[1:])
    scale = jnp.max(jnp.diagonal(diag, axis1=1, axis2=2))
    return _Linearisation(residual, diag, upper, gradient, scale), aux


def _differences(v: Array) -> Array:
    """The N + 1 differences vᵢ − vᵢ₋₁ of the rows of v (N, d) between zero ends: D v,
    with DᵀD = T ⊗ I, T = tridiag(−1, 2, −1)."""
    zero = jnp.zeros_like(v[:1])
    return jnp.concatenate([v, zero]) - jnp.concatenate([zero, v])


def _linearise_free(fn, y, args) -> tuple[_Linearisation, Any]:
    """The residuals and Jᵀr at y without JᵀJ's blocks: one linearisation of `fn`. The
    scale is that of c·(T ⊗ I), the curve's second differences times c ≈ the mean
    eigenvalue of the metric along it (‖J z‖² / ‖D z‖² for one Rademacher z): JᵀJ's
    shape for a curve, exactly so for the Euclidean metric."""
    residual, push, aux = jax.linearize(lambda z: fn(z, args), y, has_aux=True)
    gradient = jax.linear_transpose(push, y)(residual)[0]
    z = jr.rademacher(jr.key(0), y.shape, y.dtype)
    c = jnp.sum(push(z) ** 2) / jnp.sum(_differences(z) ** 2)
    return _Linearisation(residual, None, None, gradient, 2 * c), aux


def _curve_preconditioner(n: int, c: Array, damping: Array, dtype):
    """v ↦ (c·T ⊗ I + λI)⁻¹ v for v (N, d), by the sine transform that diagonalises T
    (eigenvalues 2 − 2 cos(πk/(N + 1))): it removes the N² of JᵀJ's condition number,
    leaving the metric's own along the curve."""
    k = jnp.arange(1, n + 1, dtype=dtype)
    q = jnp.sqrt(2 / (n + 1)) * jnp.sin(jnp.pi * k[:, None] * k[None, :] / (n + 1))
    inverse = 1 / (c * (2 - 2 * jnp.cos(jnp.pi * k / (n + 1))) + damping)
    return lambda v: q @ (inverse[:, None] * (q @ v))


def _propose_free(fn, y, args, state: "_State", solver: lx.AbstractLinearSolver) -> Array:
    """The damped Gauss–Newton step (JᵀJ + λI) δ = −Jᵀr by preconditioned CG on products
    Jᵀ(J v) + λv; NaN where the solver did not converge (the step is then rejected and
    the damping raised)."""
    _, push, _ = jax.linearize(lambda z: fn(z, args), y, has_aux=True)
    pull = jax.linear_transpose(push, y)
    damping = state.damping

    def normal(v):
        return pull(push(v))[0] + damping * v

    precondition = _curve_preconditioner(y.shape[0], state.at.scale / 2, damping, y.dtype)
    return solve_matrix_free(normal, -state.at.gradient, solver, precondition)


class _State(eqx.Module):
    at: _Linearisation
    aux: PyTree
    damping: Float[Array, ""]
    growth: Float[Array, ""]  # the factor of the damping's next increase
    terminate: Bool[Array, ""]


class BandedLevenbergMarquardt(optx.AbstractLeastSquaresSolver):
    """Levenberg–Marquardt (Madsen, Nielsen and Tingleff's damping schedule) for
    residuals `fn(y, args)` of shape (N + 1, m) whose row i depends on `y[i − 1]` and
    `y[i]` only, with y of shape (N, d). Used through `optimistix.least_squares`, which
    gives it the implicit-function adjoint.

    **Arguments:**

    - `rtol`, `atol`: it stops after an accepted step that moves every coordinate of y
      and every residual by less than atol + rtol·|value| (optimistix's Cauchy test).
    - `jacobian`: optionally, `(y, args) ↦ (r, left, right)`: the residuals with the band
      of their Jacobian, `left[j]` = ∂r[j + 1]/∂y[j] and `right[j]` = ∂r[j]/∂y[j], each
      (d, m), for residuals whose blocks are cheaper built from their structure (a
      decoder's Jacobian at each point of a curve) than by 2·d products with the whole
      of J. For residuals without aux. It only steers the iteration: the solution's
      gradients (optimistix's implicit adjoint) come from `fn`.
    - `linear_solver`: None (default) builds JᵀJ's d × d blocks and factors them; a
      `lineax` solver (`lineax.CG(rtol, atol, max_steps=...)`) solves the damped normal
      equations matrix-free instead, each iteration one JVP and one VJP of the
      residuals, preconditioned by the curve's second differences (c·T ⊗ I + λI, applied
      by a sine transform), which takes the N² out of their conditioning. `jacobian` is
      then unused. The first damping is 1e-3 of an estimate of JᵀJ's diagonal.
    """

    rtol: float
    atol: float
    norm: Callable[[PyTree], Array] = optx.max_norm
    jacobian: Callable | None = None
    linear_solver: lx.AbstractLinearSolver | None = None

    def _linearise(self, fn, y, args):
        if self.linear_solver is not None:
            return _linearise_free(fn, y, args)
        return _linearise(fn, y, args, self.jacobian)

    def init(self, fn, y, args, options, f_struct, aux_struct, tags) -> _State:
        return _start(*self._linearise(fn, y, args))

    def step(self, fn, y, args, options, state: _State, tags):
        if self.linear_solver is None:
            step = _propose(state)
        else:
            step = _propose_free(fn, y, args, state, self.linear_solver)
        # The trial's Jacobian blocks are built before it is accepted, and wasted when it is
        # not; rejections are the exception, and under `vmap` a `cond` would run both anyway.
        trial, aux = self._linearise(fn, y + step, args)
        y, state = _advance(y, step, state, trial, aux, self.rtol, self.atol, self.norm)
        return y, state, state.aux

    def terminate(self, fn, y, args, options, state: _State, tags):
        return state.terminate, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}


def _start(at: _Linearisation, aux) -> _State:
    # Nielsen's start, 1e-3 · max diag(JᵀJ); `tiny` keeps JᵀJ + λI factorable at J = 0.
    damping = 1e-3 * at.scale + jnp.finfo(at.gradient.dtype).tiny
    growth = jnp.asarray(2.0, at.gradient.dtype)
    return _State(at, aux, damping, growth, jnp.array(False))


def _propose(state: _State) -> Array:
    """The damped Gauss–Newton step (JᵀJ + λI) δ = −Jᵀr."""
    at = state.at
    eye = jnp.eye(at.gradient.shape[1], dtype=at.gradient.dtype)
    return solve_block_tridiagonal(at.diag + state.damping * eye[None], at.upper, -at.gradient)


def _advance(y, step, state: _State, trial: _Linearisation, aux, rtol, atol, norm):
    """Accept or reject `step` given the linearisation at y + step; update the damping
    and the Cauchy stopping test. Returns the new (y, state)."""
    at, damping = state.at, state.damping
    loss, trial_loss = _half_squares(at.residual), _half_squares(trial.residual)
    # The decrease the linear model predicts: ½ δᵀ(λδ − Jᵀr) > 0 for δ ≠ 0.
    predicted = 0.5 * jnp.sum(step * (damping * step - at.gradient))
    gain = (loss - trial_loss) / jnp.where(predicted > 0, predicted, 1.0)
    accept = jnp.isfinite(trial_loss) & (predicted > 0) & (gain > 0)
    scale = jnp.maximum(1 / 3, 1 - (2 * gain - 1) ** 3)
    damping = jnp.where(accept, damping * scale, damping * state.growth)
    growth = jnp.where(accept, 2.0, 2 * state.growth).astype(y.dtype)

    def small(diff, value):
        return norm(diff / (atol + rtol * jnp.abs(value))) < 1

    still = small(step, y + step) & small(trial.residual - at.residual, trial.residual)
    # Where the model predicts no decrease (δ = 0: Jᵀr = 0), y is stationary already;
    # a NaN never terminates, and runs out of steps.
    terminate = (accept & still) | (predicted <= 0)
    new = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (y + step, trial), (y, at))
    aux = jax.tree.map(lambda a, b: jnp.where(accept, a, b), aux, state.aux)
    y, at = new
    return y, _State(at, aux, damping, growth, terminate)


def _half_squares(r: Array) -> Array:
    return 0.5 * jnp.sum(r**2)


class _Slots(eqx.Module):
    index: Int[Array, " S"]  # the problem each slot holds (≥ count: none left)
    y: Array
    args: PyTree
    state: _State
    steps: Int[Array, " S"]
    due: Bool[Array, " S"]  # to be loaded with the next problem


def _select(mask: Array, a: PyTree, b: PyTree) -> PyTree:
    """a where `mask` (S,), else b, for every leaf with a leading axis S."""
    return jax.tree.map(
        lambda u, v: jnp.where(mask.reshape(mask.shape + (1,) * (u.ndim - 1)), u, v), a, b
    )


def solve_queue(
    fn: Callable,
    start: Callable,
    count: int,
    *,
    slots: int,
    max_steps: int,
    rtol: float,
    atol: float,
    jacobian: Callable | None = None,
    linear_solver: lx.AbstractLinearSolver | None = None,
    refill: int | None = None,
) -> tuple[Array, Bool[Array, " count"]]:
    """Solve `count` independent problems of `BandedLevenbergMarquardt` with `slots` of
    them in flight: a slot whose problem has finished takes the next one.

    A `vmap` of separate solves runs every problem of a batch for as many steps as its
    slowest one needs; the energy solves of a distance matrix take from 2 to over 20
    steps, so most of such a batch's work is wasted. Here every slot takes one step per
    iteration, and a slot whose problem stopped is linearised at the next problem's start
    in that same iteration instead (one linearisation per slot per iteration either way).
    Each problem runs exactly the steps `optx.least_squares` would run for it.

    **Arguments:**

    - `fn`: the residuals `fn(y, args)`, as for `BandedLevenbergMarquardt`.
    - `start`: problem k ↦ (y0, args): its start and its arguments.
    - `count`: the number of problems; `slots`: how many are solved at once.
    - `max_steps`, `rtol`, `atol`: the step budget and tolerances of each problem.
    - `jacobian`, `linear_solver`: as for `BandedLevenbergMarquardt`.
    - `refill`: how many problems are started per iteration at most (default a quarter of
      the slots: with problems of ~6 steps about a sixth of the slots fall due each
      iteration). Starts are built for all of them every iteration, used or not, and
      a graph path costs about a quarter of a linearisation. On `bench/distances.py`'s
      codes a quarter ran 5 % faster than a half or all of the slots, and an
      eighth 25 % slower (slots left idle).

    **Returns:** (the solutions, shape (count, ...) of y; whether each converged within
    `max_steps`). Not differentiable: a `lax.while_loop` (its users measure the solution
    with gradients stopped at it).
    """
    slots = min(slots, count)
    refill = max(1, slots // 4) if refill is None else min(refill, slots)

    def load(index):
        return start(jnp.minimum(index, count - 1))

    with_aux = lambda z, a: (fn(z, a), None)  # noqa: E731

    def linearise(y, args):
        if linear_solver is not None:
            return _linearise_free(with_aux, y, args)
        return _linearise(with_aux, y, args, jacobian)

    def propose(y, args, state):
        if linear_solver is not None:
            return _propose_free(with_aux, y, args, state, linear_solver)
        return _propose(state)

    def advance(y, step, state, trial, aux):
        return _advance(y, step, state, trial, aux, rtol, atol, optx.max_norm)

    index = jnp.arange(slots)
    y, args = jax.vmap(load)(index)
    state = jax.vmap(_start)(*jax.vmap(linearise)(y, args))
    none = jnp.zeros(slots, bool)
    solutions = jnp.zeros((count,) + y.shape[1:], y.dtype)
    first = _Slots(index, y, args, state, jnp.zeros(slots, jnp.int32), none)

    def body(carry):
        queued, held, solutions, converged = carry
        # The next `refill` problems are started, and handed to the first due slots; a
        # due slot beyond them (rare) idles for an iteration, out of range.
        due = held.due
        rank = jnp.cumsum(due) - 1
        loaded = due & (rank < refill)
        fresh_y, fresh_args = jax.vmap(load)(queued + jnp.arange(refill))
        pick = jnp.minimum(rank, refill - 1)
        index = jnp.where(due, jnp.where(loaded, queued + rank, count), held.index)
        step = jax.vmap(propose)(held.y, held.args, held.state)
        point = _select(due, fresh_y[pick], held.y + step)
        args = _select(due, jax.tree.map(lambda a: a[pick], fresh_args), held.args)
        trial, aux = jax.vmap(linearise)(point, args)
        y, state = jax.vmap(advance)(held.y, step, held.state, trial, aux)
        y, state = _select(due, (point, jax.vmap(_start)(trial, aux)), (y, state))
        steps = jnp.where(due, 0, held.steps + 1)
        live = index < count
        finished = live & ~due & (state.terminate | (steps >= max_steps))
        slot_of = jnp.where(finished, index, count)  # out of range: dropped
        solutions = solutions.at[slot_of].set(y, mode="drop")
        converged = converged.at[slot_of].set(state.terminate, mode="drop")
        held = _Slots(index, y, args, state, steps, finished | ~live)
        return jnp.minimum(queued + jnp.sum(loaded), count), held, solutions, converged

    def pending(carry):
        queued, held, _, _ = carry
        return (queued < count) | jnp.any(~held.due)

    carry = (jnp.asarray(slots), first, solutions, jnp.zeros(count, bool))
    _, _, solutions, converged = jax.lax.while_loop(pending, body, carry)
    return solutions, converged
