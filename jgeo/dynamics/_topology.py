"""Topology of a point cloud of latent codes: persistent homology (ripser) and Betti
numbers of the features that persist."""

from typing import Any, NamedTuple

import numpy as np
from jaxtyping import Array

from ._probe import AbstractProbe, ProbeInputs, Scalar


class Topology(NamedTuple):
    """Persistent homology of a point cloud, scaled to unit diameter.

    **Fields:**

    - `betti0`: the clusters that persist, ≥ 1 for any cloud: 1 for the component that
      never dies, plus the clusters whose lifetime exceeds the threshold. Clusters are
      read off the single-linkage merge tree, whose merge heights are exactly the deaths
      of ripser's H0 bars: a cluster is born when a component first holds
      max(2, `min_component` · n) points, and dies when it merges into a cluster born
      before it (the elder rule). A few outlying codes are not clusters; and a cloud
      whose points are all further apart than the threshold (a high-dimensional
      Gaussian) is one cluster, not none.
    - `betti1`: loops that persist longer than the threshold.
    - `h0_persistence`: the longest finite H0 lifetime (the widest gap between clusters).
    - `h1_persistence`: the longest H1 lifetime (the most pronounced loop), 0 without loops.
    - `h0`, `h1`: the diagrams, (k, 2) arrays of (birth, death); H0 without its infinite bar.
    """

    betti0: int
    betti1: int
    h0_persistence: float
    h1_persistence: float
    h0: np.ndarray
    h1: np.ndarray


def cluster_lifetimes(distances: np.ndarray, least: float) -> np.ndarray:
    """(birth, death) of each cluster of the single-linkage merge tree that dies, by the
    elder rule, with clusters born when a component first holds `least` points.

    **Arguments:**

    - `distances`: a symmetric (n, n) distance matrix.
    - `least`: the size at which a component becomes a cluster (≥ 2).

    **Returns:** a (k, 2) array; the cluster that never dies is not in it.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    n = len(distances)
    merges = linkage(squareform(distances, checks=False), method="single")
    birth = np.full(2 * n - 1, np.nan)  # NaN: a component not (yet) a cluster
    lifetimes = []
    for row, (a, b, height, size) in enumerate(merges):
        births = birth[int(a)], birth[int(b)]
        if np.isnan(births).all():
            birth[n + row] = height if size >= least else np.nan
        elif np.isnan(births).any():
            birth[n + row] = np.nanmin(births)
        else:  # two clusters meet: the younger dies, the elder lives on
            lifetimes.append((max(births), height))
            birth[n + row] = min(births)
    return np.asarray(lifetimes, np.float64).reshape(-1, 2)


def topology(points, threshold: float = 0.1, min_component: float = 0.05) -> Topology:
    """Vietoris–Rips persistent homology (dimensions 0 and 1, ripser) of `points` after
    scaling them to unit diameter, so that `threshold` — the lifetime a feature must exceed
    to count in the Betti numbers — is a fraction of the cloud's size and independent of
    how the latent space is scaled.

    **Arguments:**

    - `points`: shape (n, d).
    - `threshold`: the lifetime, relative to the diameter, a feature must exceed.
    - `min_component`: the fraction of the points (and at least 2) a component must hold
      to be a cluster that Betti-0 can count.

    **Returns:** a `Topology`: Betti numbers, the longest lifetimes and the diagrams.

    Codes collapsed to one point (a dead encoder, a posterior collapse) are one component
    and no loop: Betti numbers (1, 0), every lifetime 0 — recorded, not an error.

    **Raises:** `ValueError` for `points` that are not (n ≥ 3, d) or not finite, and for
    `threshold` or `min_component` outside [0, 1].
    """
    from ripser import ripser

    points = np.asarray(points, np.float64)
    if points.ndim != 2 or len(points) < 3:
        raise ValueError(f"`points` must be an (n ≥ 3, d) array, got shape {points.shape}.")
    if not np.all(np.isfinite(points)):
        raise ValueError("`points` contains NaN or infinity: the codes have diverged.")
    if not 0 <= threshold <= 1:
        raise ValueError(
            f"`threshold` must be in [0, 1] (a fraction of the diameter), got {threshold}."
        )
    if not 0 <= min_component <= 1:
        raise ValueError(
            f"`min_component` must be in [0, 1] (a fraction of the points), got {min_component}."
        )
    # Scaled to coordinates of order 1 before squaring, which would underflow (codes of
    # 1e-160) or overflow (1e200) in the distances.
    points = points - points.mean(0)
    points = points / (np.abs(points).max() or 1)
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    diameter = distances.max()
    if diameter == 0:  # collapsed codes: one component at every scale, born and dying at 0
        empty = np.zeros((0, 2))
        return Topology(1, 0, 0.0, 0.0, np.zeros((len(points) - 1, 2)), empty)
    distances /= diameter
    h0, h1 = ripser(distances, maxdim=1, distance_matrix=True)["dgms"]
    h0 = h0[np.isfinite(h0[:, 1])]
    life0, life1 = h0[:, 1] - h0[:, 0], h1[:, 1] - h1[:, 0]
    clusters = cluster_lifetimes(distances, max(2.0, min_component * len(points)))
    return Topology(
        betti0=1 + int(np.sum(clusters[:, 1] - clusters[:, 0] > threshold)),
        betti1=int(np.sum(life1 > threshold)),
        h0_persistence=float(life0.max(initial=0.0)),
        h1_persistence=float(life1.max(initial=0.0)),
        h0=h0,
        h1=h1,
    )


class PersistentHomology(AbstractProbe):
    """Vietoris–Rips persistent homology of the fixed samples' codes (`topology`, on the
    host: ripser), scaled to unit diameter: Betti numbers of the features that persist
    (`betti0`, `betti1`), the longest lifetimes (`h0_persistence`, `h1_persistence`) and
    the diagrams (`h0`, `h1`, ragged: (step, birth, death) rows).

    **Arguments:**

    - `threshold`: the lifetime, relative to the diameter, a feature must exceed.
    - `min_component`: the fraction of the samples a cluster must hold for Betti-0.
    """

    threshold: float = 0.1
    min_component: float = 0.05
    scalars = {
        "betti0": Scalar("Betti-0 (components)"),
        "betti1": Scalar("Betti-1 (loops)"),
        "h0_persistence": Scalar("largest H0 persistence"),
        "h1_persistence": Scalar("largest H1 persistence"),
    }
    group = "topology"
    ragged = frozenset({"h0", "h1"})

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        return {"points": inputs.codes}

    def host(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        topo = topology(outputs["points"], self.threshold, self.min_component)
        return {
            "betti0": topo.betti0,
            "betti1": topo.betti1,
            "h0_persistence": topo.h0_persistence,
            "h1_persistence": topo.h1_persistence,
            "h0": topo.h0,
            "h1": topo.h1,
        }
