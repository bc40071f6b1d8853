"""Data sets for training: synthetic manifolds with ground truth, and scikit-learn's digits.

Everything is generated or ships with an installed package (nothing downloads at run
time) and is deterministic given the seed. Synthetic sets are centred and scaled
to unit variance over all coordinates, so one learning rate suits all of them; digits
keep their pixel scale [0, 1].
"""

from typing import NamedTuple

import numpy as np
from scipy.sparse.csgraph import shortest_path
from sklearn.neighbors import kneighbors_graph

from . import _data_file as data_file

__all__ = (
    "DATASETS",
    "IMAGE_DATASETS",
    "SPRITE_SHAPES",
    "Dataset",
    "class_pairs",
    "load",
    "sprites_images",
)

DATASETS = ("digits", "swissroll", "scurve", "sphere", "torus", "circles", "sprites")
# Image data sets and their (H, W): kept in [0, 1], not standardised.
_IMAGES = {"digits": (8, 8), "sprites": (32, 32)}
IMAGE_DATASETS = tuple(_IMAGES)


class Dataset(NamedTuple):
    """A data set as float32 numpy arrays.

    **Fields:**

    - `name`: its name on the command line.
    - `x`: data points, shape (N, D).
    - `color`: one number per point for plots: the label, or a ground-truth coordinate.
    - `labels`: integer class labels (N,), or None.
    - `truth`: ground-truth intrinsic coordinates (N, k), or None (for `sprites`, the
      generative factors (N, 4): scale, rotation, x, y).
    - `image_shape`: (H, W) (or (H, W, C) for several channels) when the points are
      images, else None.
    """

    name: str
    x: np.ndarray
    color: np.ndarray
    labels: np.ndarray | None
    truth: np.ndarray | None
    image_shape: tuple[int, int] | None

    @property
    def factors(self) -> np.ndarray | None:
        """The generative factors (N, 4) of `sprites` — scale, rotation, x, y in [0, 1] —
        else None."""
        return self.truth if self.name == "sprites" else None

    def geodesic_distances(self, index: np.ndarray) -> np.ndarray | None:
        """Ground-truth geodesic distances between the points `index`, (m, m): exact for
        the swiss roll, S-curve and sphere; shortest paths on a k-NN graph of the noise-free
        points for the torus. None where the data has none (digits, circles)."""
        if self.truth is None:
            return None
        t = self.truth[index].astype(np.float64)
        if self.name == "sphere":
            return np.arccos(np.clip(t @ t.T, -1.0, 1.0))
        if self.name == "torus":
            return _graph_distances(_torus_embedding(self.truth), index)
        if self.name == "sprites":
            return _factor_distances(t, self.labels[index])
        return np.linalg.norm(t[:, None] - t[None], axis=-1)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    return (x / x.std()).astype(np.float32)


def _spiral_arclength(t: np.ndarray) -> np.ndarray:
    # Arc length of the spiral (t cos t, t sin t) from 0: ½ (t √(1 + t²) + asinh t).
    return 0.5 * (t * np.sqrt(1 + t**2) + np.arcsinh(t))


def _torus_embedding(angles: np.ndarray, major: float = 2.0, minor: float = 1.0) -> np.ndarray:
    u, v = angles[:, 0], angles[:, 1]
    ring = major + minor * np.cos(v)
    return np.stack([ring * np.cos(u), ring * np.sin(u), minor * np.sin(v)], -1)


def _graph_distances(points: np.ndarray, index: np.ndarray, k: int = 10) -> np.ndarray:
    graph = kneighbors_graph(points, k, mode="distance")
    return shortest_path(graph, directed=False, indices=index)[:, index]


def _digits(rng, n, classes):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, labels = digits.data / 16.0, digits.target
    if classes is not None:
        keep = np.isin(labels, classes)
        x, labels = x[keep], labels[keep]
    if n is not None:
        pick = rng.permutation(len(x))[:n]
        x, labels = x[pick], labels[pick]
    return x, labels.astype(np.int32), labels.astype(np.int32), None


def _swissroll(rng, n):
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    height = 21 * rng.uniform(size=n)
    x = np.stack([t * np.cos(t), height, t * np.sin(t)], -1)
    return x, t, None, np.stack([_spiral_arclength(t), height], -1)


def _scurve(rng, n):
    t = 3 * np.pi * (rng.uniform(size=n) - 0.5)
    height = 2 * rng.uniform(size=n)
    x = np.stack([np.sin(t), height, np.sign(t) * (np.cos(t) - 1)], -1)
    return x, t, None, np.stack([t, height], -1)  # unit-radius arcs: t is arc length


def _sphere(rng, n):
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=-1, keepdims=True)
    return p, p[:, 2], None, p


def _torus(rng, n):
    angles = rng.uniform(0, 2 * np.pi, size=(n, 2))
    return _torus_embedding(angles), angles[:, 0], None, angles


def _circles(rng, n):
    labels = (rng.uniform(size=n) < 0.5).astype(np.int32)
    angle = rng.uniform(0, 2 * np.pi, size=n)
    radius = np.where(labels == 1, 0.5, 1.0)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    return x, labels, labels, None


SPRITE_SHAPES = ("square", "ellipse", "triangle")
# Rotational symmetry of each shape: its rotation factor is an angle modulo 2π / this.
_SYMMETRY = np.array([4, 2, 3])


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) of a shape's own frame lie inside it (radius about 1)."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == 1:
        return u**2 + (v / 0.55) ** 2 <= 1.0
    r3 = np.sqrt(3.0)  # equilateral, circumradius 1, one vertex up
    return (v >= -0.5) & (r3 * u + v <= 1.0) & (-r3 * u + v <= 1.0)


def sprites_images(factors: np.ndarray, shapes: np.ndarray, side: int = 32, aa: int = 4):
    """Images of sprites at given factors: the half-size runs from 0.12 to 0.24 of the
    image, the rotation over the shape's symmetry period, the centre over [0.26, 0.74].
    Anti-aliased by averaging aa × aa sub-pixels.

    **Arguments:**

    - `factors`: shape (n, 4), (scale, rotation, x, y), each in [0, 1].
    - `shapes`: shape (n,), indices into `SPRITE_SHAPES`.
    - `side`: the image side in pixels; `aa`: sub-pixels per pixel and axis.

    **Returns:** float images in [0, 1], shape (n, side, side).
    """
    t = (np.arange(side * aa) + 0.5) / (side * aa)
    px, py = np.meshgrid(t, 1.0 - t)  # row 0 at the top
    images = np.empty((len(shapes), side, side), np.float32)
    for i, (shape, (scale, rotation, x, y)) in enumerate(zip(shapes, factors)):
        size = 0.12 + 0.12 * scale
        angle = 2 * np.pi * rotation / _SYMMETRY[shape]
        dx, dy = (px - (0.26 + 0.48 * x)) / size, (py - (0.26 + 0.48 * y)) / size
        u, v = np.cos(angle) * dx + np.sin(angle) * dy, -np.sin(angle) * dx + np.cos(angle) * dy
        fine = _inside(shape, u, v).astype(np.float32)
        images[i] = fine.reshape(side, aa, side, aa).mean((1, 3))
    return images


def _sprites(rng, n):
    shapes = rng.integers(len(SPRITE_SHAPES), size=n).astype(np.int32)
    factors = rng.uniform(size=(n, 4))
    images = sprites_images(factors, shapes)
    return images.reshape(n, -1), shapes, shapes, factors


def _factor_distances(factors: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """Distances in factor space (scale, rotation, x, y ∈ [0, 1]); the rotation is an
    angle, so its difference wraps around (a full period of the shape's symmetry is 1)."""
    delta = np.abs(factors[:, None] - factors[None])
    delta[..., 1] = np.minimum(delta[..., 1], 1.0 - delta[..., 1])
    return np.linalg.norm(delta, axis=-1)


_MAKERS = {
    "swissroll": _swissroll,
    "scurve": _scurve,
    "sphere": _sphere,
    "torus": _torus,
    "circles": _circles,
    "sprites": _sprites,
}


def load(
    name: str,
    *,
    n: int | None = None,
    noise: float = 0.0,
    seed: int = 0,
    classes: tuple[int, ...] | None = None,
    scaling: tuple[float, float] | None = None,
) -> Dataset:
    """A data set by name.

    **Arguments:**

    - `name`: one of `digits` (scikit-learn's 1797 8×8 images), `swissroll`, `scurve`,
      `sphere`, `torus` (major radius 2, minor 1, in R³) or `circles` (two concentric
      circles of radii 1 and 0.5 in R²) or `sprites` (32×32 anti-aliased images of a
      square, an ellipse or a triangle — `labels` — at a continuous scale, rotation and
      x/y position: `truth` holds these four factors in [0, 1], and
      `geodesic_distances` are distances in factor space, rotation as an angle).
    - `n`: number of points (default 2000 for synthetic sets, all of digits).
    - `noise`: standard deviation of Gaussian noise added to the raw points (before
      standardising); the ground truth stays noise-free.
    - `seed`: the data are a deterministic function of it.
    - `classes`: digits only: keep these labels, e.g. (0, 1, 3, 6, 7).
    - `scaling`: for a data file, the (shift, scale) to apply (default: computed from
      the file, see `jgeo._data_file`).

    `name` may also be the path of a `.npz` / `.npy` file of your own (see
    `jgeo._data_file`): `n` then keeps a random subset of its points.

    **Returns:** a `Dataset`: `x` (N, D), `color`, `labels`, `truth`,
    `image_shape`, `factors`, and `geodesic_distances(index)` where the set has a ground
    truth.

    **Raises:** `ValueError` naming the argument for an unknown name or a bad size;
    `DataFileError` naming the file for an unusable data file.
    """
    if data_file.is_data_file(name):
        return _from_file(name, n=n, noise=noise, seed=seed, scaling=scaling)
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}: `name` must be one of {', '.join(DATASETS)}.")
    if n is not None and n < 2:
        raise ValueError(f"`n` must be at least 2, got {n}.")
    if classes is not None and name != "digits":
        raise ValueError(f"`classes` only applies to digits, not {name!r}.")
    if noise < 0:
        raise ValueError(f"`noise` must be non-negative, got {noise}.")
    rng = np.random.default_rng(seed)
    if name != "digits" and n is None:
        n = 2000
    if name == "digits":
        x, color, labels, truth = _digits(rng, n, classes)
    else:
        x, color, labels, truth = _MAKERS[name](rng, n)
    if noise > 0:
        x = x + noise * rng.normal(size=x.shape)
    return Dataset(
        name=name,
        x=x.astype(np.float32) if name in _IMAGES else _standardise(x),
        color=np.asarray(color, np.float32),
        labels=labels,
        truth=None if truth is None else truth.astype(np.float32),
        image_shape=_IMAGES.get(name),
    )


def _from_file(path, *, n, noise, seed, scaling) -> Dataset:
    arrays = data_file.read(path)
    x = arrays["x"].astype(np.float64)
    shape = data_file.image_shape(x)
    shift, scale = data_file.scaling(x) if scaling is None else scaling
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(x))[:n] if n is not None else np.arange(len(x))
    x = x[pick].reshape(len(pick), -1)
    if noise > 0:
        x = x + noise * rng.normal(size=x.shape)
    if scaling is not None:  # a recorded one: `read` checked the file's own
        data_file.check_scaling(x, shift, scale, f"data file {path}")
    # `read` checked the labels: class indices in [0, 2³¹ − 1), which int32 holds
    labels = arrays["labels"][pick].astype(np.int32) if "labels" in arrays else None
    if "color" in arrays:
        color = arrays["color"][pick]
    else:
        color = labels if labels is not None else np.zeros(len(pick))
    return Dataset(
        name=str(path),
        x=((x - shift) / scale).astype(np.float32),
        color=np.asarray(color, np.float32),
        labels=labels,
        truth=None,
        image_shape=shape,
    )


def class_pairs(n: int, labels: np.ndarray | None, count: int, rng: np.random.Generator):
    """Random pairs of distinct indices, of different labels where `labels` are given and
    hold two classes or more (the interpolations a researcher looks at).

    **Arguments:**

    - `n`: indices are below `n`.
    - `labels`: shape (n,), or None.
    - `count`: how many pairs.
    - `rng`: a NumPy `Generator`.

    **Returns:** integer indices, shape (count, 2).
    """
    if n < 2:
        raise ValueError(f"pairs need at least two points, got {n}.")
    if labels is not None and len(np.unique(labels)) < 2:
        labels = None  # data of one class: pairs of any two points
    pairs = []
    while len(pairs) < count:
        i, j = rng.integers(n, size=2)
        if i != j and (labels is None or labels[i] != labels[j]):
            pairs.append((i, j))
    return np.array(pairs, dtype=np.int64).reshape(count, 2)
