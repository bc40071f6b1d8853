"""What a probe measures: the geometry of the latent space at one moment of training,
on a probe set fixed for the whole run."""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import diagnostics, representation
from .._bvp import EnergyBVP
from .._fisher import FisherPullback
from .._pullback import Pullback
from ..data import class_pairs
from ._topology import topology


class ProbeSet(NamedTuple):
    """The fixed inputs of every probe of a run.

    **Fields:**

    - `index`: data indices of the fixed samples (S,), whose codes are tracked: maxmin
      landmarks of the data, evenly spread over it, so that gaps in the sample are not
      mistaken for gaps in the data by the topology.
    - `pairs`: (P, 2) positions in `index` of the pairs whose geodesic is measured (of
      different classes where the data is labelled).
    - `planes`: (2, S, d) tangent vectors u, v per sample, spanning the 2-plane of its
      sectional curvature: random for d > 2; for d = 2 the coordinate basis, whose
      sectional curvature is the Gaussian curvature.
    - `grid`: side of the latent grid of the fields (d = 2 only; 0 for none).
    - `random`: data indices of a uniform random sample (R,), for the statistics of the
      whole cloud (intrinsic dimension, effective rank, class separation): the maxmin
      samples are spread too evenly for nearest-neighbour statistics, and their classes
      are not in the data's proportions.
    - `labels`: the classes of the data (N,), or None.
    """

    index: np.ndarray
    pairs: np.ndarray
    planes: np.ndarray
    grid: int
    random: np.ndarray
    labels: np.ndarray | None = None


# Farthest-point sampling visits every candidate once per sample: on larger data sets it
# runs on a fixed random subset of this many points.
LANDMARK_CANDIDATES = 20_000


def probe_set(
    x,
    latent_dim: int | None,
    *,
    labels=None,
    samples: int,
    pairs: int,
    grid: int,
    seed: int,
    random_samples: int = 512,
) -> ProbeSet:
    """The probe set of a run, a deterministic function of its arguments: the samples
    (farthest-point sampling of the data), the fixed pairs, a uniform random sample for the
    nearest-neighbour statistics, and one random 2-plane per sample for the sectional
    curvature.

    **Arguments:**

    - `x`: the data (N, ...), flattened per point for the landmarks.
    - `latent_dim`: d, or None to leave the planes empty until it is known
      (`sectional_planes`).
    - `labels`: integer classes (N,), or None (pairs then ignore classes).
    - `samples`, `pairs`, `grid`: how many samples and pairs, and the side of the d = 2 grid.
    - `seed`: the seed of every random choice.
    - `random_samples`: size of the uniform random sample.

    **Returns:** a `ProbeSet`.
    """
    rng = np.random.default_rng([seed, 3])
    x = np.asarray(x).reshape(len(x), -1)
    candidates = np.arange(len(x))
    if len(x) > LANDMARK_CANDIDATES:
        candidates = np.sort(rng.choice(len(x), LANDMARK_CANDIDATES, replace=False))
    first = int(rng.integers(len(candidates)))
    chosen = maxmin_landmarks(x[candidates], min(samples, len(candidates)), first)
    index = np.sort(candidates[chosen])
    sample_labels = None if labels is None else np.asarray(labels)[index]
    random = np.sort(np.random.default_rng([seed, 5]).permutation(len(x))[:random_samples])
    return ProbeSet(
        index=index,
        pairs=class_pairs(len(index), sample_labels, pairs, rng)
        if pairs
        else np.zeros((0, 2), int),
        planes=(
            np.zeros((2, len(index), 0), np.float32)
            if latent_dim is None
            else sectional_planes(latent_dim, len(index), seed)
        ),
        grid=grid if latent_dim in (None, 2) else 0,
        random=random,
        labels=None if labels is None else np.asarray(labels),
    )


def sectional_planes(latent_dim: int, samples: int, seed: int) -> np.ndarray:
    """The (2, S, d) tangent vectors spanning each sample's plane of sectional curvature."""
    if latent_dim == 2:
        return np.broadcast_to(np.eye(2, dtype=np.float32)[:, None], (2, samples, 2))
    rng = np.random.default_rng([seed, 4])
    return rng.standard_normal((2, samples, latent_dim)).astype(np.float32)


def maxmin_landmarks(x, count: int, first: int = 0) -> np.ndarray:
    """Indices of `count` points of `x` (n, D) chosen by farthest-point sampling from
    `first`: each next point is the one farthest from those chosen (de Silva & Carlsson
    2004), so the landmarks cover the data at a nearly uniform spacing."""
    x = np.asarray(x, np.float64)
    chosen = [first]
    distance = np.linalg.norm(x - x[first], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(x - x[chosen[-1]], axis=1))
    return np.array(chosen)


def grid_points(codes, side: int, pad: float = 0.1):
    """A side × side grid over the bounding box of `codes`, widened by `pad` of its size
    on each side. The grid follows the codes, so fields at different epochs compare the same
    region of the representation, not the same coordinates.

    **Arguments:**

    - `codes`: shape (n, 2).
    - `side`: points per axis; `pad`: the widening, a fraction of the box's size.

    **Returns:** the points (side², 2) and the extent (x_min, x_max, y_min, y_max).
    """
    lo, hi = jnp.min(codes, 0), jnp.max(codes, 0)
    lo, hi = lo - pad * (hi - lo), hi + pad * (hi - lo)
    t = jnp.linspace(0.0, 1.0, side, dtype=codes.dtype)
    xs, ys = lo[0] + t * (hi[0] - lo[0]), lo[1] + t * (hi[1] - lo[1])
    gx, gy = jnp.meshgrid(xs, ys)  # row i is y = ys[i], as imshow(origin="lower") draws
    return jnp.stack([gx.ravel(), gy.ravel()], -1), jnp.stack([lo[0], hi[0], lo[1], hi[1]])


def measure_geometry(
    encode: Callable,
    decode: Callable | None,
    x,
    probes: ProbeSet,
    *,
    x_random=None,
    class_geodesics: bool = False,
    geodesic_points: int = 8,
    geodesic_rtol: float = 1e-3,
    likelihood: str | None = None,
) -> dict:
    """The jit-compatible part of a probe: the codes of the samples `x` (S, ...) under
    `encode` (one point → a vector (d,)); with `x_random` (the inputs of
    `probes.random`), the intrinsic dimension (TwoNN, MLE), effective rank and
    participation ratio of their codes and, with labels, NC1 and the nearest-centroid
    accuracy; with a decoder `decode` (a vector (d,) → one point), also the metric
    summary of its pullback (JᵀJ, or with `likelihood` the Fisher–Rao pullback of the
    distribution `decode` parametrises) at the codes (MCN, VoR, mean and variance of log det G), the
    decoder's active dimensions and curvature at the codes, geodesic/straight length
    ratios on the fixed pairs and, for d = 2, log-volume and Gaussian-curvature fields
    on the grid. With `class_geodesics` (and labels), `representation.class_geodesics`
    of the samples' codes around their class coordinate means: the (C, C) geodesic and
    Euclidean distance matrices, the log-volume barrier, and both ratios of distance
    between classes to spread within them.

    The geodesics are minimal-energy curves of `geodesic_points` points solved to
    `geodesic_rtol`: coarse, since a probe runs every epoch — on a trained digits
    decoder their ratios agree with 12 points at 1e-4 to 2e-4, at a third of the cost.

    **Arguments:**

    - `encode`, `decode`: as for `Recorder`, closed over the parameters; `decode` may be
      None.
    - `x`: the samples' inputs (S, ...); `probes`: the run's `ProbeSet`.
    - `x_random`: the inputs of `probes.random`, or None.
    - `class_geodesics`, `geodesic_points`, `geodesic_rtol`, `likelihood`: as above.

    **Returns:** a dict of arrays (codes, scalars, fields), ready for `summarise`.
    """
    codes = jax.vmap(encode)(x)
    out = {"codes": codes}
    if x_random is not None:
        out.update(cloud_statistics(jax.vmap(encode)(x_random), probes))
    if decode is None:
        return out
    if likelihood is None:
        metric = Pullback(lambda z: jnp.ravel(decode(z)))
    else:  # the Fisher–Rao pullback of the distribution `decode` parametrises
        metric = FisherPullback(decode, likelihood)
    out.update(diagnostics.metric_summary(metric, codes))
    active = representation.active_dimensions(metric.immersion, codes)
    out["active_dims"] = jnp.mean(active)
    if class_geodesics and probes.labels is not None:
        between = representation.class_geodesics(
            metric, codes, jnp.asarray(probes.labels[probes.index]),
            int(probes.labels.max()) + 1, frechet_steps=0, num_points=geodesic_points,
            solver=EnergyBVP(), rtol=geodesic_rtol,
        )  # fmt: skip
        out.update(class_distances=between.distances, class_distances_euclidean=between.euclidean,
                   class_barrier=between.barrier, class_ratio=between.ratio,
                   class_ratio_euclidean=between.euclidean_ratio)  # fmt: skip
    pairs = jnp.asarray(probes.pairs)
    out["ratios"] = jnp.zeros(0, codes.dtype)  # no pairs (`pairs=0`): no geodesics
    if len(pairs):
        out["ratios"], _ = diagnostics.geodesic_ratios(
            metric, codes[pairs[:, 0]], codes[pairs[:, 1]], solver=EnergyBVP(),
            num_points=geodesic_points, rtol=geodesic_rtol,
        )  # fmt: skip
    # The metric's own kernels (not the checked public functions): a probe reports NaN
    # where the metric is singular, e.g. on a fold of the decoder, instead of raising.
    u, v = jnp.asarray(probes.planes, codes.dtype)
    out["curvature"] = jax.vmap(metric.sectional_curvature)(codes, u, v)
    if probes.grid:
        grid, out["extent"] = grid_points(codes, probes.grid)
        shape = (probes.grid, probes.grid)
        e1, e2 = jnp.eye(2, dtype=codes.dtype)
        curvature = jax.vmap(lambda z: metric.sectional_curvature(z, e1, e2))(grid)
        out["gaussian_curvature"] = curvature.reshape(shape)
        out["log_volume"] = jax.vmap(metric.log_volume)(grid).reshape(shape)
    return out


def cloud_statistics(codes, probes: ProbeSet) -> dict:
    """Statistics of the codes (R, d) of the random sample: intrinsic dimension,
    effective rank, participation ratio and, with labels, NC1 and nearest-centroid
    accuracy (jit-compatible)."""
    out = {
        "id_twonn": representation.twonn_dimension(codes),
        "id_mle": representation.mle_dimension(codes, k=min(20, len(codes) - 1)),
        "effective_rank": representation.effective_rank(codes),
        "participation_ratio": representation.participation_ratio(codes),
    }
    if probes.labels is not None:
        labels = jnp.asarray(probes.labels[probes.random])
        classes = int(probes.labels.max()) + 1
        out["nc1"] = representation.class_separation(codes, labels, classes).nc1
        out["ncc_accuracy"] = representation.nearest_centroid_accuracy(codes, labels, classes)
    return out


# The scalars of `cloud_statistics` and the decoder's active dimensions, as rows carry them.
CLOUD_SCALARS = ("id_twonn", "id_mle", "effective_rank", "participation_ratio", "nc1",
                 "ncc_accuracy", "active_dims", "class_ratio", "class_ratio_euclidean")  # fmt: skip
CLASS_ARRAYS = ("class_distances", "class_distances_euclidean", "class_barrier")


def summarise(geometry: dict, previous_codes, *, threshold: float = 0.1) -> tuple[dict, dict]:
    """The host part of a probe, from `measure_geometry`'s output: topology of the codes,
    CKA to the previous probe's codes and, where a decoder was probed, the metric,
    curvature and geodesic scalars.

    **Arguments:**

    - `geometry`: the dict `measure_geometry` returned (device arrays are fetched).
    - `previous_codes`: the previous probe's codes (S, d), or None at the first probe.
    - `threshold`: the persistence threshold of `topology`.

    **Returns:** one row of scalars (a dict for `dynamics.jsonl`) and the arrays to keep
    (codes, ratios, fields, persistence diagrams).
    """
    g = {k: np.asarray(v) for k, v in geometry.items()}
    codes = g["codes"]
    row = {}
    if "ratios" in g:
        row.update(_metric_row(g))
    for name in CLOUD_SCALARS:
        if name in g:
            row[name] = float(g[name]) if np.isfinite(g[name]) else None
    topo = topology(codes, threshold)
    row.update(
        betti0=topo.betti0,
        betti1=topo.betti1,
        h0_persistence=topo.h0_persistence,
        h1_persistence=topo.h1_persistence,
        cka_previous=None
        if previous_codes is None
        else float(representation.linear_cka(previous_codes, codes)),
    )
    arrays = {"codes": codes, "h0": topo.h0, "h1": topo.h1}
    for name in ["ratios", "extent", "log_volume", "gaussian_curvature", *CLASS_ARRAYS]:
        if name in g:
            arrays[name] = g[name]
    return row, arrays


def _metric_row(g: dict) -> dict:
    curvature = g["curvature"][np.isfinite(g["curvature"])]
    ratios = g["ratios"]
    finite = np.isfinite(ratios)
    return {
        "logvol_mean": float(g["logdet_mean"]) / 2,  # log-volume = ½ log det G
        "logvol_var": float(g["logdet_var"]) / 4,
        "mcn": float(g["mcn"]),
        "vor": float(g["vor"]),
        "curvature_mean": float(np.mean(curvature)) if curvature.size else None,
        "curvature_abs_mean": float(np.mean(np.abs(curvature))) if curvature.size else None,
        "geodesic_ratio": float(np.mean(ratios[finite])) if finite.any() else None,
        "geodesics_converged": int(finite.sum()),
    }
