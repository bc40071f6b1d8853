"""Solves against a metric matrix: Cholesky, never an explicit inverse; singular values."""

import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import cho_solve
from jaxtyping import Array


def solve(g: Array, b: Array) -> Array:
    """Return g⁻¹ b for a symmetric positive-definite `g` of shape (d, d).

    `b` has shape (d,) or (d, ...); trailing axes are flattened for one triangular
    solve pair and restored. A singular `g` gives non-finite output, which the public
    kernels turn into an error (see `check_finite`).
    """
    factor = jnp.linalg.cholesky(g)
    flat = b.reshape(b.shape[0], -1)
    return cho_solve((factor, True), flat).reshape(b.shape)


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
