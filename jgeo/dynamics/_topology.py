"""Topology of a point cloud of latent codes: persistent homology (ripser) and Betti
numbers of the features that persist."""

from typing import NamedTuple

import numpy as np


class Topology(NamedTuple):
    """Persistent homology of a point cloud, scaled to unit diameter.

    **Fields:**

    - `betti0`: connected components at the threshold scale (the Rips complex's Betti-0
      there) that hold at least `min_component` of the points: a few outlying codes
      are not counted as clusters.
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


def topology(points, threshold: float = 0.1, min_component: float = 0.05) -> Topology:
    """Vietoris–Rips persistent homology (dimensions 0 and 1, ripser) of `points` after
    scaling them to unit diameter, so that `threshold` — the lifetime a feature must exceed
    to count in the Betti numbers — is a fraction of the cloud's size and independent of
    how the latent space is scaled.

    **Arguments:**

    - `points`: shape (n, d).
    - `threshold`: the lifetime, relative to the diameter, a feature must exceed.
    - `min_component`: components holding fewer than this fraction of the points are left
      out of Betti-0.

    **Returns:** a `Topology`: Betti numbers, the longest lifetimes and the diagrams.
    """
    from ripser import ripser
    from scipy.sparse.csgraph import connected_components

    points = np.asarray(points, np.float64)
    if points.ndim != 2 or len(points) < 3:
        raise ValueError(f"`points` must be an (n ≥ 3, d) array, got shape {points.shape}.")
    if not np.all(np.isfinite(points)):
        raise ValueError("`points` contains NaN or infinity: the codes have diverged.")
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    diameter = distances.max()
    if diameter == 0:
        raise ValueError("`points` are all equal: the codes have collapsed to one point.")
    distances /= diameter
    h0, h1 = ripser(distances, maxdim=1, distance_matrix=True)["dgms"]
    h0 = h0[np.isfinite(h0[:, 1])]
    life0, life1 = h0[:, 1] - h0[:, 0], h1[:, 1] - h1[:, 0]
    # H0 bars die when components join at that edge length: the components at the
    # threshold scale are those of the graph of edges up to it.
    _, labels = connected_components(distances <= threshold, directed=False)
    sizes = np.bincount(labels)
    return Topology(
        betti0=int(np.sum(sizes >= max(2, min_component * len(points)))),
        betti1=int(np.sum(life1 > threshold)),
        h0_persistence=float(life0.max(initial=0.0)),
        h1_persistence=float(life1.max(initial=0.0)),
        h0=h0,
        h1=h1,
    )
