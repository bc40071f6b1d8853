"""The implementation of `jgeo.diagnostics`, documented there."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._custom_types import Points
from ._geodesics import curve_length
from ._log_map import ConnectingGeodesic, connecting_geodesic
from ._metrics import AbstractMetric


def _condition_numbers(gs):
    eig = jnp.linalg.eigvalsh(gs)
    return eig[:, -1] / eig[:, 0]


def _affine_invariant_spread(gs):
    """d²(G, Ḡ) = Σᵢ log² λᵢ(Ḡ⁻¹G) for each G, Ḡ the mean of `gs`."""
    factor = jnp.linalg.cholesky(jnp.mean(gs, axis=0))

    def one(g):  # eigenvalues of L⁻¹ G L⁻ᵀ are those of Ḡ⁻¹G
        a = jax.scipy.linalg.solve_triangular(factor, g, lower=True)
        a = jax.scipy.linalg.solve_triangular(factor, a.T, lower=True)
        return jnp.sum(jnp.log(jnp.linalg.eigvalsh(0.5 * (a + a.T))) ** 2)

    return jax.vmap(one)(gs)


def mean_condition_number(metric: AbstractMetric, zs: Points) -> Float[Array, ""]:
    """MCN: the mean over points of λ_max(G) / λ_min(G); 1 for a (scaled) isometry.

    **Arguments:**

        - `metric`: a jgeo metric on Rᵈ.
        - `zs`: latent points, shape (n, d).

    **Returns:** a scalar, ≥ 1.
    """
    return jnp.mean(_condition_numbers(jax.vmap(metric)(zs)))


def variance_of_riemannian_metric(metric: AbstractMetric, zs: Points) -> Float[Array, ""]:
    """VoR (Lee et al. 2022): E_z d²(G(z), Ḡ), Ḡ = E_z G(z), with the affine-invariant
    distance d²(A, B) = Σᵢ log² λᵢ(A⁻¹B). Zero iff G is constant over the points.

    **Arguments:**

        - `metric`: a jgeo metric on Rᵈ.
        - `zs`: latent points, shape (n, d).

    **Returns:** a scalar, ≥ 0.
    """
    return jnp.mean(_affine_invariant_spread(jax.vmap(metric)(zs)))


def log_volumes(metric: AbstractMetric, zs: Points) -> Float[Array, " n"]:
    """log det G at every point (twice `jgeo.log_volume`).

    **Arguments:**

        - `metric`: a jgeo metric on Rᵈ.
        - `zs`: latent points, shape (n, d).

    **Returns:** shape (n,).
    """
    return jnp.linalg.slogdet(jax.vmap(metric)(zs))[1]


def metric_summary(metric: AbstractMetric, zs: Points) -> dict[str, Float[Array, ""]]:
    """MCN, VoR, and the mean and variance of log det G, from one evaluation of G at
    every point: what `jgeo train` records each epoch.

    **Arguments:**

        - `metric`: a jgeo metric on Rᵈ.
        - `zs`: latent points, shape (n, d).

    **Returns:** a dict of scalars with keys `"mcn"`, `"vor"`, `"logdet_mean"` and
    `"logdet_var"`.
    """
    gs = jax.vmap(metric)(zs)
    logdets = jnp.linalg.slogdet(gs)[1]
    return {
        "mcn": jnp.mean(_condition_numbers(gs)),
        "vor": jnp.mean(_affine_invariant_spread(gs)),
        "logdet_mean": jnp.mean(logdets),
        "logdet_var": jnp.var(logdets),
    }


def straight_length(metric: AbstractMetric, x, y, num_points: int = 64) -> Float[Array, ""]:
    """Riemannian length of the straight latent segment from x to y.

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ.
    - `x`, `y`: the end points, shape (d,).
    - `num_points`: points of the polygon (`curve_length`) along the segment.

    **Returns:** a scalar.
    """
    t = jnp.linspace(0.0, 1.0, num_points, dtype=x.dtype)[:, None]
    return curve_length(metric, (1 - t) * x[None] + t * y[None])


def geodesic_ratios(
    metric: AbstractMetric, starts: Points, ends: Points, **kwargs
) -> tuple[Float[Array, " n"], ConnectingGeodesic]:
    """Geodesic length over the length of the straight latent segment for each pair, and
    the connecting geodesics themselves. ≤ 1 where the geodesic is minimising; 1 in a flat
    latent space.

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ.
    - `starts`, `ends`: the pairs, shape (n, d) each.
    - `**kwargs`: go to `connecting_geodesic` (whose `throw` is False here).

    **Returns:** the ratios, shape (n,) — NaN where a geodesic did not converge — and the
    batched `ConnectingGeodesic` (see its `.converged`).
    """

    def one(x, y):
        result = connecting_geodesic(metric, x, y, throw=False, **kwargs)
        return result.length / straight_length(metric, x, y), result

    return jax.vmap(one)(starts, ends)


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long 1-D arrays (ties by average rank).
    Runs on the host (SciPy), not under `jit`.

    **Arguments:**

    - `a`, `b`: array-likes of the same number of elements (flattened).

    **Returns:** a float in [−1, 1].

    **Raises:** `ValueError` if their shapes differ.
    """
    from scipy.stats import spearmanr

    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same length, got {a.shape} and {b.shape}.")
    return float(spearmanr(a, b).statistic)


def distance_spearman(codes, truth_distances) -> float:
    """Spearman correlation between Euclidean distances of latent `codes` and
    ground-truth geodesic distances over all pairs: 1 when the latent space orders
    distances as the data manifold does (Nazari et al. 2023).

    **Arguments:**

    - `codes`: latent codes, shape (m, d).
    - `truth_distances`: ground-truth distances between the same points, shape (m, m).

    **Returns:** a float in [−1, 1].
    """
    codes = np.asarray(codes, np.float64)
    latent = np.linalg.norm(codes[:, None] - codes[None], axis=-1)
    upper = np.triu_indices(len(codes), 1)
    return spearman(latent[upper], np.asarray(truth_distances)[upper])
