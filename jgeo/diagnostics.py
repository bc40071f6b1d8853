"""Measurements of a latent geometry: functions of a metric and a batch of latent points.

Used per epoch by `jgeo train` and for the final report; all are jit-compatible except
`spearman`, which ranks on the host.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._log_map import ConnectingGeodesic, connecting_geodesic
from ._metrics import AbstractMetric

Points = Float[Array, "n d"]


def metric_eigenvalues(metric: AbstractMetric, zs: Points) -> Float[Array, "n d"]:
    """Eigenvalues of G at every point, ascending."""
    return jax.vmap(lambda z: jnp.linalg.eigvalsh(metric(z)))(zs)


def mean_condition_number(metric: AbstractMetric, zs: Points) -> Float[Array, ""]:
    """MCN: the mean over points of λ_max(G) / λ_min(G); 1 for a (scaled) isometry."""
    eig = metric_eigenvalues(metric, zs)
    return jnp.mean(eig[:, -1] / eig[:, 0])


def variance_of_riemannian_metric(metric: AbstractMetric, zs: Points) -> Float[Array, ""]:
    """VoR (Lee et al. 2022): E_z d²(G(z), Ḡ), Ḡ = E_z G(z), with the affine-invariant
    distance d²(A, B) = Σᵢ log² λᵢ(A⁻¹B). Zero iff G is constant over the points."""
    gs = jax.vmap(metric)(zs)
    mean = jnp.mean(gs, axis=0)
    factor = jnp.linalg.cholesky(mean)

    def spread(g):  # eigenvalues of L⁻¹ G L⁻ᵀ = those of Ḡ⁻¹G
        a = jax.scipy.linalg.solve_triangular(factor, g, lower=True)
        a = jax.scipy.linalg.solve_triangular(factor, a.T, lower=True)
        return jnp.sum(jnp.log(jnp.linalg.eigvalsh(0.5 * (a + a.T))) ** 2)

    return jnp.mean(jax.vmap(spread)(gs))


def log_volumes(metric: AbstractMetric, zs: Points) -> Float[Array, " n"]:
    """log det G at every point (twice `jgeo.log_volume`)."""
    return jax.vmap(lambda z: jnp.linalg.slogdet(metric(z))[1])(zs)


def straight_length(metric: AbstractMetric, x, y, num_points: int = 64) -> Float[Array, ""]:
    """Riemannian length of the straight latent segment from x to y (midpoint rule)."""
    t = jnp.linspace(0.0, 1.0, num_points, dtype=x.dtype)[:, None]
    segment = (1 - t) * x[None] + t * y[None]
    steps, mids = segment[1:] - segment[:-1], 0.5 * (segment[1:] + segment[:-1])
    return jnp.sum(jax.vmap(lambda m, s: jnp.sqrt(s @ metric(m) @ s))(mids, steps))


def geodesic_ratios(
    metric: AbstractMetric, starts: Points, ends: Points, **kwargs
) -> tuple[Float[Array, " n"], ConnectingGeodesic]:
    """Geodesic length over the length of the straight latent segment for each pair, and
    the connecting geodesics themselves (ratios are NaN where one did not converge, see
    `.converged`). ≤ 1 where the geodesic is minimising; 1 in a flat latent space.
    Keyword arguments go to `connecting_geodesic` (whose `throw` is False here)."""

    def one(x, y):
        result = connecting_geodesic(metric, x, y, throw=False, **kwargs)
        return result.length / straight_length(metric, x, y), result

    return jax.vmap(one)(starts, ends)


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long 1-D arrays (ties by average rank)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same length, got {a.shape} and {b.shape}.")
    return float(spearmanr(a, b).statistic)


def distance_spearman(codes, truth_distances) -> float:
    """Spearman correlation between Euclidean distances of latent `codes` (m, d) and
    ground-truth geodesic distances (m, m) over all pairs: 1 when the latent space
    orders distances as the data manifold does (Nazari et al. 2023)."""
    codes = np.asarray(codes, np.float64)
    latent = np.linalg.norm(codes[:, None] - codes[None], axis=-1)
    upper = np.triu_indices(len(codes), 1)
    return spearman(latent[upper], np.asarray(truth_distances)[upper])
