"""The implementation of `jgeo.representation`, documented there."""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ._checks import finish, metric_point
from ._custom_types import Labels, Points
from ._labels import class_labels
from ._linalg import singular_values
from ._local_basis import check_counts, top_eigenpairs
from ._metrics import AbstractMetric


def _points(z, name: str = "z", least: int = 3) -> Array:
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[0] < least:
        raise ValueError(
            f"`{name}` must be a point cloud of shape (n ≥ {least}, d), got {z.shape}."
        )
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = z.astype(jnp.float32)
    return z


def _labels(labels, n: int, num_classes: int | None) -> tuple[Array, int]:
    labels, num_classes = class_labels(labels, n, num_classes)
    return jnp.asarray(labels), num_classes


def _distinct(z: Array) -> Bool[Array, " n"]:
    """True for one copy of each distinct point (its copy of smallest index).

    Copies are found exactly and in O(n log n): rows are sorted by two integer hashes of
    their bits (integer sums wrap, so a hash does not depend on the summation order, as a
    float projection would), which puts copies next to each other, and neighbours in that
    order are compared coordinate by coordinate.
    """
    n = len(z)
    z = jnp.where(z == 0, jnp.zeros_like(z), z)  # −0.0 and 0.0 are the same point
    if z.dtype.itemsize < 4:
        z = z.astype(jnp.float32)
    words = jax.lax.bitcast_convert_type(z, jnp.uint32).reshape(n, -1)
    constants = np.random.default_rng(0).integers(1, 2**32, (2, 2, words.shape[1]), np.uint32)

    def digest(a, b):
        mixed = words * jnp.asarray(a | 1)[None]
        mixed = (mixed ^ (mixed >> 15)) * jnp.asarray(b | 1)[None]
        return jnp.sum(mixed, axis=1, dtype=jnp.uint32)

    order = jnp.lexsort((jnp.arange(n), digest(*constants[1]), digest(*constants[0])))
    rows = z[order]
    first = jnp.concatenate([jnp.ones(1, bool), jnp.any(rows[1:] != rows[:-1], axis=1)])
    return jnp.zeros(n, bool).at[order].set(first)


def _neighbours(z: Array, k: int, candidates: Array | None = None) -> tuple[Array, Array]:
    """The k nearest other points of each point: distances (n, k), ascending, and indices.

    Only the points where `candidates` (n,) is True are neighbours; where fewer than k
    are, the missing distances are infinite. Candidates come from the Gram matrix (n × n
    memory, not n × n × D); their distances are then recomputed by subtraction, since
    ‖a‖² + ‖b‖² − 2a·b loses the small distances of near neighbours to rounding in
    float32.
    """
    centred = z - jnp.mean(z, 0, keepdims=True)
    norms = jnp.sum(centred**2, axis=1)
    squared = norms[:, None] + norms[None] - 2 * centred @ centred.T
    excluded = jnp.eye(len(z), dtype=bool)
    if candidates is not None:
        excluded = excluded | ~candidates[None]
    squared = jnp.where(excluded, jnp.inf, squared)
    negated, index = jax.lax.top_k(-squared, k)
    distances = jnp.linalg.norm(z[index] - z[:, None], axis=-1)
    distances = jnp.where(jnp.isfinite(negated), distances, jnp.inf)
    order = jnp.argsort(distances, axis=1)
    return jnp.take_along_axis(distances, order, 1), jnp.take_along_axis(index, order, 1)


def twonn_dimension(z: Points, discard: float = 0.1) -> Float[Array, ""]:
    """Intrinsic dimension by TwoNN (Facco et al. 2017): the ratios μ = r₂/r₁ of each
    point's second to first nearest-neighbour distance follow a Pareto law of exponent
    d, fitted as the slope through the origin of −log(1 − F(μ)) against log μ over the
    smallest `1 − discard` of the ratios (F: the empirical distribution, i/N for the
    i-th smallest) — the same estimator as scikit-dimension's `TwoNN`.

    Duplicate points are removed first: every distinct point counts once, so a cloud
    whose points all appear twice has the dimension of the cloud itself (as after
    DADApy's `remove_identical_points`; scikit-dimension 0.5 instead drops every point
    whose nearest neighbour is at distance 0, copies and original alike).

    **Arguments:**

    - `z`: the codes, shape (n, d), n ≥ 3.
    - `discard`: the fraction of largest ratios left out of the fit.

    **Returns:** a scalar, the estimated dimension; NaN where it is undefined: fewer than
    two ratios left to fit (e.g. fewer than three distinct points).

    **Raises:** `ValueError` for a `z` that is not (n ≥ 3, d) or `discard` outside (0, 1).
    """
    z = _points(z)
    if not 0 < discard < 1:
        raise ValueError(f"`discard` must be in (0, 1), got {discard}.")
    return _twonn(z, float(discard))


@functools.partial(jax.jit, static_argnums=1)  # one program, also when called eagerly
def _twonn(z: Array, discard: float) -> Array:
    n = len(z)
    distinct = _distinct(z)
    r, _ = _neighbours(z, 2, distinct)
    used = distinct & (r[:, 0] > 0)
    count = jnp.sum(used)
    keep = jnp.asarray([int(m * (1 - discard)) for m in range(n + 1)])[count]
    mu = jnp.sort(jnp.where(used, r[:, 1] / jnp.where(used, r[:, 0], 1.0), jnp.inf))
    rank = jnp.arange(1, n + 1)
    fitted = rank <= keep
    x = jnp.log(jnp.where(fitted, mu, 1.0))
    y = -jnp.log1p(-jnp.where(fitted, rank, 0).astype(z.dtype) / jnp.maximum(count, 1))
    return jnp.where(keep >= 2, (x @ y) / (x @ x), jnp.nan)


def mle_dimension(z: Points, k: int = 20) -> Float[Array, ""]:
    """Intrinsic dimension by maximum likelihood (Levina & Bickel 2004) from each
    point's k nearest neighbours, T₁ ≤ … ≤ T_k: the per-point inverse estimates
    (1/(k−1)) Σⱼ<ₖ log(T_k / Tⱼ) are averaged before inverting (MacKay & Ghahramani
    2005), which removes the upward bias of averaging the dimensions themselves.

    Duplicate points are removed first, as for `twonn_dimension`: a neighbour at
    distance 0 would make log(T_k / T₁) infinite and the estimate 0.

    **Arguments:**

    - `z`: the codes, shape (n, d), n > k.
    - `k`: neighbours per point (static under `jit`).

    **Returns:** a scalar, the estimated dimension; NaN where it is undefined: k or
    fewer distinct points.

    **Raises:** `ValueError` for a `z` that is not (n ≥ 3, d) or `k` outside [2, n).
    """
    z = _points(z)
    if not 2 <= k < len(z):
        raise ValueError(f"`k` must be in [2, n) = [2, {len(z)}), got {k}.")
    return _mle(z, k)


@functools.partial(jax.jit, static_argnums=1)
def _mle(z: Array, k: int) -> Array:
    distinct = _distinct(z)
    t, _ = _neighbours(z, k, distinct)
    used = distinct & (t[:, 0] > 0)
    t = jnp.where(used[:, None] & jnp.isfinite(t), t, 1.0)
    inverse = jnp.where(used, jnp.mean(jnp.log(t[:, -1:] / t[:, :-1]), axis=1), 0.0)
    return jnp.where(jnp.sum(distinct) > k, jnp.sum(used) / jnp.sum(inverse), jnp.nan)


def _singular_values(z: Array) -> Array:
    return singular_values(z - jnp.mean(z, 0, keepdims=True))


def effective_rank(z: Points) -> Float[Array, ""]:
    """exp of the entropy of the normalised singular values of the centred codes (Roy &
    Vetterli 2007; RankMe): d for an isotropic cloud in d dimensions, 1 for a line.
    Centred, so an offset of the whole cloud does not count as a direction.

    **Arguments:**

    - `z`: the codes, shape (n, d).

    **Returns:** a scalar in [1, min(n, d)].
    """
    s = _singular_values(_points(z))
    p = s / jnp.sum(s)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def participation_ratio(z: Points) -> Float[Array, ""]:
    """(Σ λᵢ)² / Σ λᵢ² over the eigenvalues λ of the codes' covariance: the number of
    directions the variance is spread over (d if even, 1 if along one).

    **Arguments:**

    - `z`: the codes, shape (n, d).

    **Returns:** a scalar in [1, d].
    """
    variances = _singular_values(_points(z)) ** 2
    return jnp.sum(variances) ** 2 / jnp.sum(variances**2)


class ClassSeparation(NamedTuple):
    """Result of `class_separation`.

    **Fields:** `within`: Tr Σ_W, the mean squared distance of a point to its class
    mean; `between`: Tr Σ_B, the mean squared distance of the class means to the global
    mean; `nc1`: Tr(Σ_W Σ_B⁺) / C, NaN where undefined (fewer than two classes, or
    coinciding class means); `means` (num_classes, d), NaN for absent classes;
    `counts` (num_classes,).
    """

    within: Float[Array, ""]
    between: Float[Array, ""]
    nc1: Float[Array, ""]
    means: Float[Array, "c d"]
    counts: Int[Array, " c"]


def _class_means(z: Array, labels: Array, num_classes: int) -> tuple[Array, Array]:
    onehot = jax.nn.one_hot(labels, num_classes, dtype=z.dtype)  # (n, C)
    counts = jnp.sum(onehot, 0)
    means = (onehot.T @ z) / jnp.maximum(counts, 1)[:, None]
    return jnp.where(counts[:, None] > 0, means, jnp.nan), counts.astype(jnp.int32)


def class_separation(z: Points, labels: Labels, num_classes: int | None = None) -> ClassSeparation:
    """Within- and between-class scatter of the codes and the neural-collapse measure
    NC1 = Tr(Σ_W Σ_B⁺) / C (Papyan et al. 2020): 0 when every class has collapsed to its
    mean, large when the classes overlap.

    Σ_W = (1/n) Σᵢ (zᵢ − μ_yᵢ)(zᵢ − μ_yᵢ)ᵀ; Σ_B = (1/C) Σ_c (μ_c − μ)(μ_c − μ)ᵀ over the C
    classes present, μ the mean of all points. Σ_B has rank at most C − 1: its
    pseudo-inverse is taken on its C − 1 leading eigen-directions only (and those above
    rounding), since inverting the rounding noise in the other directions — what a
    default `pinv` cutoff does in float32 — makes NC1 meaningless.

    **Arguments:**

    - `z`: the codes, shape (n, d).
    - `labels`: integer classes, shape (n,), in [0, num_classes).
    - `num_classes`: static; required under `jit` (default `max(labels) + 1`).

    **Returns:** a `ClassSeparation`. Its `nc1` is NaN where NC1 is undefined: with
    fewer than two classes present, or class means that coincide (to rounding), Σ_B = 0
    and Tr(Σ_W Σ_B⁺) would read 0, perfect collapse, for classes that do not separate at
    all. NaN rather than an error, so that a probe under `jit` reports it.

    **Raises:** `ValueError` for `labels` of the wrong shape or dtype, or outside
    [0, num_classes), naming the bad values and how many points carry them (e.g.
    "`labels` must be in [0, num_classes = 3): found 7 (1 point)."); labels beyond int32
    are refused before any conversion could truncate them. Under `jit` (labels traced) a
    label outside the range raises `eqx.EquinoxRuntimeError` at run time instead of
    being dropped. There is no "unlabelled" label: −1 is refused like any other.
    """
    z = _points(z)
    labels, num_classes = _labels(labels, len(z), num_classes)
    means, counts = _class_means(z, labels, num_classes)
    present = counts > 0
    classes = jnp.sum(present)
    centred = z - jnp.where(present[labels][:, None], means[labels], 0.0)
    sigma_w = centred.T @ centred / len(z)
    offsets = jnp.where(present[:, None], means - jnp.mean(z, 0, keepdims=True), 0.0)
    sigma_b = offsets.T @ offsets / classes
    values, vectors = jnp.linalg.eigh(sigma_b)  # ascending
    values, vectors = values[::-1], vectors[:, ::-1]
    rank = jnp.arange(len(values)) < classes - 1
    usable = rank & (values > values[0] * len(values) * jnp.finfo(z.dtype).eps)
    inverse = jnp.where(usable, 1.0 / jnp.where(usable, values, 1.0), 0.0)
    pinv = (vectors * inverse[None]) @ vectors.T
    within, between = jnp.trace(sigma_w), jnp.trace(sigma_b)
    # One class, or class means that coincide (to rounding): Σ_B = 0, and its
    # pseudo-inverse 0 would make NC1 = 0, "perfect collapse", for overlapping classes.
    defined = (classes >= 2) & (values[0] > jnp.finfo(z.dtype).eps * (within + between))
    nc1 = jnp.where(defined, jnp.trace(sigma_w @ pinv) / classes, jnp.nan)
    return ClassSeparation(within, between, nc1, means, counts)


def nearest_centroid_accuracy(
    z: Points, labels: Labels, num_classes: int | None = None
) -> Float[Array, ""]:
    """Fraction of points whose nearest class mean (Euclidean) is their own class's
    (NC4 of Papyan et al. 2020, measured on the points the means come from).

    **Arguments:**

    - `z`, `labels`, `num_classes`: as for `class_separation`.

    **Returns:** a scalar in [0, 1].

    **Raises:** as `class_separation`, for the labels.
    """
    z = _points(z)
    labels, num_classes = _labels(labels, len(z), num_classes)
    means, counts = _class_means(z, labels, num_classes)
    distances = jnp.sum((z[:, None] - jnp.nan_to_num(means)[None]) ** 2, -1)
    distances = jnp.where(counts[None] > 0, distances, jnp.inf)
    return jnp.mean(jnp.argmin(distances, 1) == labels)


def knn_accuracy(
    z: Points, labels: Labels, k: int = 5, num_classes: int | None = None
) -> Float[Array, ""]:
    """Leave-one-out accuracy of the k-nearest-neighbour vote (Euclidean; ties go to
    the smaller label): how well the classes are separated locally.

    **Arguments:**

    - `z`, `labels`, `num_classes`: as for `class_separation`.
    - `k`: voting neighbours (static).

    **Returns:** a scalar in [0, 1].

    **Raises:** as `class_separation`, for the labels; `ValueError` for `k` outside [1, n).
    """
    z = _points(z)
    labels, num_classes = _labels(labels, len(z), num_classes)
    if not 1 <= k < len(z):
        raise ValueError(f"`k` must be in [1, n) = [1, {len(z)}), got {k}.")
    _, neighbours = _neighbours(z, k)
    votes = jnp.sum(jax.nn.one_hot(labels[neighbours], num_classes), axis=1)
    return jnp.mean(jnp.argmax(votes, 1) == labels)


def active_dimensions(decoder: Callable, z: Points, rtol: float = 1e-2) -> Int[Array, " n"]:
    """Per code zᵢ, how many singular values of the decoder's Jacobian exceed `rtol`
    times the largest: the local dimension of the decoded manifold there, and so how
    many latent directions the decoder uses (a 16-dimensional latent space whose
    decoder uses 3 gives 3). `decoder` maps a code (d,) to an output of any shape.

    **Arguments:**

    - `decoder`: maps a code (d,) to an output of any shape.
    - `z`: the codes, shape (n, d).
    - `rtol`: the threshold relative to the largest singular value.

    **Returns:** integers, shape (n,), in [1, d].
    """
    z = _points(z, least=1)

    def count(point):
        jacobian = jax.jacfwd(lambda p: jnp.ravel(decoder(p)))(point)
        s = singular_values(jacobian)
        return jnp.sum(s > rtol * s[0])

    return jax.vmap(count)(z)


class ClassGeodesics(NamedTuple):
    """Result of `class_geodesics`; rows and columns of the (C, C) matrices are classes,
    NaN for classes without points.

    **Fields:**

    - `means` (C, d): the class centres (Fréchet means under the metric, or coordinate
      means with `frechet_steps=0`); `euclidean_means` (C, d): coordinate means.
    - `distances` (C, C): geodesic distances between the centres; `euclidean` (C, C):
      Euclidean distances between the coordinate means.
    - `barrier` (C, C): the largest log-volume ½ log det G along each connecting geodesic
      — a wall the metric puts between two classes; `uncertainty` (C, C): for a
      `StochasticPullback`, the largest mean decoder σ along it (else NaN).
    - `spread` (C,): mean geodesic distance of a class's points to its centre;
      `euclidean_spread` (C,): mean Euclidean distance to its coordinate mean.
    - `ratio`: mean distance between centres over mean spread, under the metric;
      `euclidean_ratio`: the same in Euclidean coordinates. A metric that separates the
      classes more than the coordinates do has `ratio` > `euclidean_ratio`.
    - `converged`: every geodesic (and Fréchet mean) converged.
    """

    means: Float[Array, "c d"]
    euclidean_means: Float[Array, "c d"]
    distances: Float[Array, "c c"]
    euclidean: Float[Array, "c c"]
    barrier: Float[Array, "c c"]
    uncertainty: Float[Array, "c c"]
    spread: Float[Array, " c"]
    euclidean_spread: Float[Array, " c"]
    ratio: Float[Array, ""]
    euclidean_ratio: Float[Array, ""]
    converged: Bool[Array, ""]


def class_geodesics(
    metric,
    codes: Points,
    labels: Labels,
    num_classes: int | None = None,
    *,
    frechet_steps: int = 50,
    num_points: int = 16,
    **log_map_kwargs,
) -> ClassGeodesics:
    """The geometry between classes under `metric`: class centres, the geodesics
    between them with the largest log-volume (and decoder σ) along each, the spread of
    each class, and how far apart the classes are relative to their spread — under the
    metric and in Euclidean coordinates (Arvanitidis et al. 2018 show an expected metric
    putting a wall of uncertainty between classes that coordinates place side by side).

    **Arguments:**

    - `metric`: e.g. `Pullback(decoder)` or `StochasticPullback(mean, std)`;
      `codes` (n, d), `labels` (n,), `num_classes` as for `class_separation`.
    - `frechet_steps`: steps of the Fréchet-mean iteration of each class centre
      (`jgeo.stats.frechet_mean`); 0 takes the coordinate means as centres, which costs
      no log maps beyond the distances (what a probe during training uses).
    - `num_points`: points of each connecting geodesic; further keyword arguments go to
      `connecting_geodesic` (e.g. `solver=jgeo.EnergyBVP()`, `rtol`).

    Cost: C(C − 1)/2 geodesics between centres, n from points to their centres, and
    `frechet_steps` × C × n log maps for the means; all with `throw=False`.

    **Returns:** a `ClassGeodesics`.

    **Raises:** as `class_separation`, for the labels.
    """
    from ._log_map import connecting_geodesic
    from ._pullback import StochasticPullback
    from .stats import frechet_mean

    z = _points(codes, "codes", 2)
    labels, num_classes = _labels(labels, len(z), num_classes)
    euclidean_means, counts = _class_means(z, labels, num_classes)
    present = counts > 0
    onehot = jax.nn.one_hot(labels, num_classes, dtype=z.dtype)
    solve = functools.partial(
        connecting_geodesic, metric, throw=False, num_points=num_points, **log_map_kwargs
    )
    if frechet_steps:
        weights = jnp.where(present[:, None], onehot.T, 1.0)  # absent classes: masked below

        def centre(w, init):
            kwargs = dict(num_points=num_points, **log_map_kwargs)
            return frechet_mean(metric, z, w, init=init, max_steps=frechet_steps, **kwargs)

        fm = jax.vmap(centre)(weights, jnp.nan_to_num(euclidean_means))
        means = jnp.where(present[:, None], fm.mean, jnp.nan)
        means_converged = jnp.all(fm.converged | ~present)
    else:
        means, means_converged = euclidean_means, jnp.array(True)

    i, j = np.triu_indices(num_classes, 1)
    safe = jnp.nan_to_num(means)
    between = jax.vmap(solve)(safe[i], safe[j])
    pair_ok = present[i] & present[j]
    log_volumes = jax.vmap(jax.vmap(metric.log_volume))(between.curve)
    if isinstance(metric, StochasticPullback):
        sigma = jax.vmap(jax.vmap(lambda p: jnp.mean(metric.std(p))))(between.curve)
        uncertainty_pairs = jnp.max(sigma, 1)
    else:
        uncertainty_pairs = jnp.full(len(i), jnp.nan, z.dtype)

    def matrix(values, diagonal):
        values = jnp.where(pair_ok, values, jnp.nan)
        out = jnp.full((num_classes, num_classes), jnp.nan, z.dtype)
        out = out.at[i, j].set(values).at[j, i].set(values)
        return out.at[np.diag_indices(num_classes)].set(jnp.where(present, diagonal, jnp.nan))

    members = jax.vmap(solve)(safe[labels], z)
    solved = onehot * members.converged[:, None]  # a failed solve is left out, and reported
    spread = (solved.T @ jnp.nan_to_num(members.length)) / jnp.maximum(jnp.sum(solved, 0), 1)
    coordinates = jnp.nan_to_num(euclidean_means)
    offsets = jnp.linalg.norm(z - coordinates[labels], axis=1)
    euclidean_spread = (onehot.T @ offsets) / jnp.maximum(counts, 1)
    euclidean_pairs = jnp.linalg.norm(coordinates[i] - coordinates[j], axis=1)

    def ratio(pairs, spreads):
        inter = jnp.sum(jnp.where(pair_ok, pairs, 0.0)) / jnp.maximum(jnp.sum(pair_ok), 1)
        intra = jnp.sum(jnp.where(present, spreads, 0.0)) / jnp.maximum(jnp.sum(present), 1)
        return inter / intra

    converged = means_converged & jnp.all(between.converged | ~pair_ok) & jnp.all(members.converged)
    nan_c = jnp.full(num_classes, jnp.nan, z.dtype)
    return ClassGeodesics(
        means=means,
        euclidean_means=euclidean_means,
        distances=matrix(between.length, jnp.zeros(num_classes, z.dtype)),
        euclidean=matrix(euclidean_pairs, jnp.zeros(num_classes, z.dtype)),
        barrier=matrix(jnp.max(log_volumes, 1), nan_c),
        uncertainty=matrix(uncertainty_pairs, nan_c),
        spread=jnp.where(present, spread, jnp.nan),
        euclidean_spread=jnp.where(present, euclidean_spread, jnp.nan),
        ratio=ratio(between.length, spread),
        euclidean_ratio=ratio(euclidean_pairs, euclidean_spread),
        converged=converged,
    )


class LocalSpectrum(NamedTuple):
    """The top of the metric's spectrum at each of n points (`local_spectrum`).

    **Fields:**

    - `values`: the k largest eigenvalues per point, descending, shape (n, k).
    - `residuals`: their Ritz residuals ‖G v − λ v‖, shape (n, k).
    - `decay`: the exponent α of a power law λᵢ ≈ c·i^(−α) fitted to each point's top k
      by least squares in log–log (eigenvalues below 1e-6·λ₁ left out), shape (n,):
      0 for a flat top, 1 for singular values falling like i^(−1/2).
    - `effective_dimension`: the participation ratio (Σᵢ λᵢ)² / Σᵢ λᵢ² of the top k,
      shape (n,): how many of the k directions carry the metric (k for a flat top, 1
      for one dominant direction; at most the rank, C − 1 for a C-class Fisher metric).
    """

    values: Float[Array, "n k"]
    residuals: Float[Array, "n k"]
    decay: Float[Array, " n"]
    effective_dimension: Float[Array, " n"]


def _decay(values: Array) -> Array:
    """The least-squares slope −α of log λᵢ on log i over the resolved eigenvalues."""
    i = jnp.log(jnp.arange(1, values.shape[0] + 1, dtype=values.dtype))
    used = values > 1e-6 * values[0]
    w = used.astype(values.dtype)
    logs = jnp.log(jnp.where(used, values, 1))
    mean_i, mean_l = (jnp.sum(w * a) / jnp.maximum(jnp.sum(w), 1) for a in (i, logs))
    cov = jnp.sum(w * (i - mean_i) * (logs - mean_l))
    var = jnp.sum(w * (i - mean_i) ** 2)
    return jnp.where(var > 0, -cov / jnp.where(var > 0, var, 1), 0)


def local_spectrum(
    metric: AbstractMetric,
    codes: Points,
    k: int,
    *,
    key: PRNGKeyArray,
    steps: int | None = None,
) -> LocalSpectrum:
    """The top of the local spectrum of a metric at each of n points: the k largest
    eigenvalues of G(z), how fast they fall, and how many directions carry the metric.

    A pure function (`jax.jit` with `k` and `steps` static; `jax.vmap` over a leading
    axis of its own) for probes that record, over training, the spectrum of a decoder's
    pullback on its latent codes or of a classifier head's Fisher metric on a hidden
    layer (`FisherPullback(head, "categorical")`): each point costs one `local_basis`
    (m = `steps` products G v), never a d × d matrix.

    **Arguments:**

    - `metric`: a jgeo metric on the codes' space (a pullback of the decoder or head).
    - `codes`: the points, shape (n, d).
    - `k`, `steps`: as for `local_basis`.
    - `key`: a JAX PRNG key, split over the points.

    **Returns:** a `LocalSpectrum`: `values` and `residuals` (n, k), `decay` and
    `effective_dimension` (n,).

    **Raises:** `ValueError` if `codes` is not (n, d) or `k`/`steps` are out of range.
    """
    codes = jnp.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"`codes` must be a batch of points of shape (n, d), got {codes.shape}.")
    metric_point(metric, codes[0], "codes", throw=False, full_rank=False)
    steps = check_counts(k, steps, codes.shape[1])

    def one(z, key):
        z = metric_point(metric, z, "codes", full_rank=False)
        values, _, residuals = top_eigenpairs(metric, z, k, steps, key)
        return finish(values, z, "local_spectrum"), residuals

    values, residuals = jax.vmap(one)(codes, jr.split(key, codes.shape[0]))
    clipped = jnp.maximum(values, 0)
    total = jnp.sum(clipped, axis=1)
    squares = jnp.sum(clipped**2, axis=1)
    effective = jnp.where(squares > 0, total**2 / jnp.where(squares > 0, squares, 1), 0)
    return LocalSpectrum(values, residuals, jax.vmap(_decay)(clipped), effective)
