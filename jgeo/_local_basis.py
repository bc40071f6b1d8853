"""The top of the spectrum of a metric at a point, matrix-free: local bases of wide
latent spaces and hidden layers, and the per-point spectra a probe records."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from . import _krylov as krylov
from ._checks import finish, metric_point
from ._custom_types import Point, PointLike
from ._metrics import AbstractMetric


class LocalBasis(eqx.Module):
    """The k largest eigenvalues of a metric G(x) and their eigenvectors: the directions
    of a latent space (or hidden layer) that the metric stretches most.

    **Fields:**

    - `values`: the eigenvalues λ₁ ≥ … ≥ λ_k, shape (k,).
    - `vectors`: their eigenvectors as orthonormal columns (Euclidean in coordinates),
      shape (d, k); each column's sign is fixed so that its largest entry is positive.
    - `residuals`: the Ritz residuals ‖G v − λ v‖, shape (k,): a pair has converged when
      its residual is small against λ (the eigenvalue error is then about
      residual² / gap, Kato–Temple).
    - `outputs`: for a pullback, the output-space directions J v / ‖J v‖, one column per
      eigenvector, shape (D, k) with D the immersion's output (the decoder's output for
      a `Pullback`; the chart 2√p of the decoded distribution, flattened, for a
      `FisherPullback`; the jitter coordinates left out): the change of the decoded
      output each latent direction makes (the semantic directions of Park et al.
      2023). A column whose ‖J v‖ is 0 is 0. None for other metrics.
    """

    values: Float[Array, " k"]
    vectors: Float[Array, "d k"]
    residuals: Float[Array, " k"]
    outputs: Float[Array, "D k"] | None


def _count(name: str, value, least: int, most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"`{name}` must be an integer ≥ {least}, got {value!r}.")
    if most is not None and value > most:
        raise ValueError(f"`{name}` must be at most {most} here, got {value}.")
    return value


def default_steps(k: int, d: int) -> int:
    """Lanczos steps of `local_basis` by default: max(3k, 32), at most d."""
    return min(d, max(3 * k, 32))


def check_counts(k, steps, d: int) -> int:
    _count("k", k, 1, d)
    steps = default_steps(k, d) if steps is None else _count("steps", steps, 1, d)
    if steps < k:
        raise ValueError(
            f"`steps` = {steps} Lanczos steps give at most {steps} eigenpairs, fewer than "
            f"`k` = {k}: pass `steps` ≥ k (about 3k, more for a flat spectrum)."
        )
    return steps


def top_eigenpairs(metric: AbstractMetric, x: Point, k: int, steps: int, key: PRNGKeyArray):
    """The top-k Ritz triples (values descending, vectors (d, k), residuals)."""
    op = metric.operator(x)
    k_start, k_restart = jr.split(key)
    tri = krylov.lanczos(op.mv, krylov.start_vector(k_start, x.shape[0], x.dtype), steps, k_restart)
    theta, s, residual = krylov.ritz(tri.alpha, tri.beta)
    top = slice(steps - 1, steps - k - 1 if steps > k else None, -1)  # descending
    vectors = tri.basis.T @ s[:, top]
    # A deterministic sign: the largest entry of each column positive.
    pivot = jnp.take_along_axis(vectors, jnp.argmax(jnp.abs(vectors), 0)[None], 0)
    return theta[top], vectors * jnp.where(pivot < 0, -1, 1).astype(x.dtype), residual[top]


def local_basis(
    metric: AbstractMetric,
    x: PointLike,
    k: int,
    *,
    key: PRNGKeyArray,
    steps: int | None = None,
) -> LocalBasis:
    """The k largest eigenvalues of the metric G(x) and their orthonormal eigenvectors,
    by Lanczos on `metric_operator` (full reorthogonalisation, restarts where the Krylov
    space closes), with G never formed: m = `steps` products G v, each one JVP and one
    VJP of a pullback's decoder, against d JVPs and an O(d³) eigendecomposition for
    `eigh(metric(x))`.

    After m steps the top eigenvalue's error falls like exp(−4m√gap) (Kuczyński &
    Woźniakowski 1992), with gap the relative gap (λ₁ − λ₂)/(λ₁ − λ_d): a decaying
    spectrum (trained networks; the `i^(−1/2)` singular values of `bench/wide.py`)
    converges in m ≈ 3k steps, a flat top (random weights, relative gaps ~0.3 % at
    d = 1,024) needs several times more. `residuals` say which pairs have converged.

    A metric singular by its shapes is accepted: the Fisher metric of a classifier head
    of C classes pulled back to a hidden layer has rank ≤ C − 1, and its local basis is
    the meaningful part of it (eigenvalues beyond the rank come out 0, with arbitrary
    orthonormal vectors of the null space).

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).
    - `k`: how many eigenpairs, 1 ≤ k ≤ d (static under `jax.jit`).
    - `key`: a JAX PRNG key for the random start (and restart) vectors.
    - `steps`: Lanczos steps m, k ≤ m ≤ d (default max(3k, 32), at most d; static).
      Memory (m + 1)·d, cost m products; with m = d the result is exact to rounding.

    **Returns:** a `LocalBasis` (`values` (k,), `vectors` (d, k), `residuals` (k,),
    `outputs` (D, k) for a pullback, else None) in `x`'s dtype.

    **Raises:** `ValueError` for a malformed point or `k`/`steps` out of range; a
    runtime error if the result is not finite (a non-finite decoder output).
    """
    x = metric_point(metric, x, full_rank=False)
    steps = check_counts(k, steps, x.shape[0])
    values, vectors, residuals = top_eigenpairs(metric, x, k, steps, key)
    outputs = metric.pushforward(x, vectors)
    if outputs is not None:
        norms = jnp.linalg.norm(outputs, axis=0)
        outputs = outputs / jnp.where(norms > 0, norms, 1)[None]
        outputs = finish(outputs, x, "local_basis")
    values, vectors, residuals = (finish(a, x, "local_basis") for a in (values, vectors, residuals))
    return LocalBasis(values, vectors, residuals, outputs)
