"""Solves against a metric matrix: Cholesky, never an explicit inverse; matrix-free
solves by a `lineax` solver; singular values."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import lineax as lx
from jax import lax
from jax.scipy.linalg import cho_solve
from jaxtyping import Array, PyTree

# A symmetric positive (semi)definite operator: what CG and the Krylov methods rely on.
PSD_TAGS = (lx.symmetric_tag, lx.positive_semidefinite_tag)


def solve(g: Array, b: Array) -> Array:
    """Return g⁻¹ b for a symmetric positive-definite `g` of shape (d, d).

    `b` has shape (d,) or (d, ...); trailing axes are flattened for one triangular
    solve pair and restored. A singular `g` gives non-finite output, which the public
    kernels turn into an error (see `check_finite`).
    """
    factor = jnp.linalg.cholesky(g)
    flat = b.reshape(b.shape[0], -1)
    return cho_solve((factor, True), flat).reshape(b.shape)


def solve_matrix_free(
    matvec: Callable[[PyTree], PyTree],
    b: PyTree,
    solver: lx.AbstractLinearSolver,
    preconditioner: Callable[[PyTree], PyTree] | None = None,
) -> PyTree:
    """Return A⁻¹ b for a symmetric positive-definite A seen only through `matvec(v) =
    A v` (arrays of `b`'s structure), by the `lineax` solver (`lineax.CG(rtol, atol,
    max_steps=...)`), optionally with a symmetric positive-definite `preconditioner(v)`
    ≈ A⁻¹ v. A is never formed: the geodesic spray's G u = b and the energy solver's
    normal equations of matrix-free pullbacks (`linear_solver=...`) both solve here.

    A solve that does not converge within the solver's `max_steps` gives NaN (not an
    error, so a batch under `vmap` goes on and the caller reports it: the ODE solver
    fails the geodesic, Levenberg–Marquardt rejects the step and raises its damping).

    The preconditioner is scaled by a power of two s = 2^⌈log₂(100·n/ρ)⌉, ρ the Rayleigh
    quotient of the preconditioned operator at b (one product more). A scalar factor
    leaves CG's iterates as they are, but lineax's CG declares a breakdown where
    pᵀAp < 100·n·ε·pᵀM⁻¹p, a test of scale: a float32 metric of width 1,024 whose
    eigenvalues are ~1e-3 (the MLP decoders of `bench/wide.py`) failed it at the first
    step. With s, only directions of eigenvalue below ε·ρ (beyond what CG resolves in
    this precision) fail it.
    """
    struct = jax.eval_shape(lambda: b)
    operator = lx.FunctionLinearOperator(matvec, struct, PSD_TAGS)
    if preconditioner is None:
        preconditioner = lambda v: v  # noqa: E731
    n = sum(leaf.size for leaf in jax.tree.leaves(b))
    dot = lambda u, v: sum(jnp.vdot(p, q) for p, q in zip(jax.tree.leaves(u), jax.tree.leaves(v)))  # noqa: E731
    z = preconditioner(b)
    rho = dot(z, matvec(z)) / dot(b, z)
    rho = jnp.where(jnp.isfinite(rho) & (rho > 0), rho, 1)
    scale = jnp.exp2(jnp.ceil(jnp.log2(100 * n / rho)))  # exact in floating point
    scaled = lambda v: jax.tree.map(lambda a: scale * a, preconditioner(v))  # noqa: E731
    options = {"preconditioner": lx.FunctionLinearOperator(scaled, struct, PSD_TAGS)}
    solution = lx.linear_solve(operator, b, solver, options=options, throw=False)
    solved = solution.result == lx.RESULTS.successful
    return jax.tree.map(lambda u: jnp.where(solved, u, jnp.nan), solution.value)


def raise_first_index(g: Array, t: Array) -> Array:
    """Return g⁻¹ contracted with the first axis of `t` (d, ...): `solve` for tensors
    with many trailing entries, such as the lowered Riemann tensor's d³.

    g⁻¹ is formed from the Cholesky factor (a solve against the identity, so a singular
    `g` still gives non-finite output) and contracted once. The one triangular solve
    with d³ right-hand sides is what `solve` would do; inside the vmapped Riemann kernel
    on XLA:CPU it cost a quarter of the kernel (d = 8, 256 points, float32, 2 cores:
    156 vs 114 ms), although the same solve alone takes 2 ms: the cost is the program's,
    not LAPACK's. For the d × d metrics of a latent space the accuracy is that of the
    solve (relative error ~ κ(g)·ε either way; the tests compare with autodiff).
    """
    inverse = solve(g, jnp.eye(g.shape[0], dtype=g.dtype))
    return jnp.tensordot(inverse, t, axes=1)


def logdet(g: Array) -> Array:
    """log det g of a symmetric positive-definite matrix, from its Cholesky factor."""
    factor = jnp.linalg.cholesky(g)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))


def singular_values(a: Array) -> Array:
    """The singular values of `a` (m, n), descending: `jnp.linalg.svd(a, compute_uv=False)`
    by LAPACK's gesvd (`SvdAlgorithm.QR`) instead of jax's default gesdd.

    jaxlib's CPU gesdd kernel hands work to XLA's intra-op thread pool and waits for it
    while itself running on that pool; when the pool has no free thread (one CPU core,
    and the program was dispatched asynchronously beside another, as the probes of
    `jgeo train` run beside training) it never returns. Measured with jax 0.9.2 under
    `taskset -c 0`: `jgeo train` hung at its first probe with the pool's only thread
    waiting inside `lapack_sgesdd_ffi`; gesvd takes no thread pool.
    """
    return lax.linalg.svd(a, full_matrices=False, compute_uv=False,
                          algorithm=lax.linalg.SvdAlgorithm.QR)  # fmt: skip
