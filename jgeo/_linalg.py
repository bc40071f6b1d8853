"""Solves against a metric matrix: Cholesky, never an explicit inverse."""

import jax.numpy as jnp
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


def logdet(g: Array) -> Array:
    """log det g of a symmetric positive-definite matrix, from its Cholesky factor."""
    factor = jnp.linalg.cholesky(g)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))
