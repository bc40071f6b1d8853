"""Figures of a trained run (matplotlib, written as PNG without a display)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import diagnostics, likelihoods
from .._io import save_figure
from ..data import Dataset
from ..train import TrainConfig


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plane(codes: np.ndarray) -> np.ndarray:
    """2-D view of the codes: themselves for d = 2, else their first two principal axes."""
    if codes.shape[1] == 2:
        return codes
    centred = codes - codes.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def _grid(codes: np.ndarray, size: int):
    """A square-celled grid over the codes' bounding box (padded by 10 %), `size` cells
    along the longer side: axes and the (m, 2) grid points."""
    lo, hi = codes.min(0), codes.max(0)
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    step = np.max(hi - lo) / (size - 1)
    axes = [lo[i] + step * np.arange(int(np.ceil((hi[i] - lo[i]) / step)) + 1) for i in range(2)]
    mesh = np.stack(np.meshgrid(*axes), -1)
    return axes, mesh.reshape(-1, 2).astype(np.float32)


def _scatter_codes(ax, plane, data: Dataset, **kwargs):
    cmap = "tab10" if data.labels is not None else "viridis"
    return ax.scatter(plane[:, 0], plane[:, 1], c=data.color, s=4, cmap=cmap, **kwargs)


def _log_volume_field(metric, codes, size=80):
    """½ log det G on a grid over the codes: axes and values (rows along the second axis)."""
    axes, points = _grid(codes, size)
    field = jax.jit(diagnostics.log_volumes)(metric, jnp.asarray(points))
    return axes, 0.5 * np.asarray(field).reshape(len(axes[1]), len(axes[0]))


def _draw_field(ax, plt, field):
    image = ax.pcolormesh(*field[0], field[1], cmap="magma", shading="auto")
    plt.colorbar(image, ax=ax, label="½ log det G")


def draw_all(directory: Path, config: TrainConfig, data: Dataset, model, arrays: dict) -> list[str]:
    """Draw every figure that applies to the run; return their file names."""
    plt = _plt()
    directory.mkdir(parents=True, exist_ok=True)
    codes, pairs, curves = arrays["codes"], arrays["pairs"], arrays["curves"]
    metric = likelihoods.get(config.likelihood).latent_metric(model.decoder)
    written = []

    def save(fig, name):
        fig.tight_layout()
        save_figure(fig, directory / name)
        written.append(name)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    points = _scatter_codes(ax, _plane(codes), data)
    fig.colorbar(points, ax=ax, label="label" if data.labels is not None else "ground truth")
    ax.set_title(f"latent codes · {Path(config.data).name} · {config.regularizer}")
    save(fig, "latent.png")

    if codes.shape[1] == 2:
        field = _log_volume_field(metric, codes)
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        _draw_field(ax, plt, field)
        ax.scatter(codes[:, 0], codes[:, 1], s=1, c="w", alpha=0.3)
        kind = "Fisher–Rao pullback" if config.likelihood != "gaussian" else "pullback metric"
        ax.set_title(f"log-volume of the {kind}")
        save(fig, "log_volume.png")

        fig, ax = plt.subplots(figsize=(5, 5))
        _indicatrices(ax, metric, codes)
        _scatter_codes(ax, codes, data, alpha=0.25)
        ax.set_title("indicatrices {v : vᵀG v = c}")
        save(fig, "indicatrices.png")

        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        _draw_field(ax, plt, field)
        for k, (i, j) in enumerate(pairs):
            ax.plot(*codes[[i, j]].T, "--", c="c", lw=1, label="straight" if k == 0 else None)
            if np.all(np.isfinite(curves[k])):
                ax.plot(*curves[k].T, "-", c="w", lw=1.5, label="geodesic" if k == 0 else None)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title("geodesics against straight lines")
        save(fig, "geodesics.png")

    if data.image_shape is not None:
        save(
            _interpolation_figure(plt, model, codes, pairs[0], curves[0], data, config.likelihood),
            "interpolation.png",
        )
    return written


def _indicatrices(ax, metric, codes, size=12):
    from matplotlib.patches import Ellipse

    axes, points = _grid(codes, size)
    gs = np.asarray(jax.jit(jax.vmap(metric))(points), np.float64)
    lam, vecs = np.linalg.eigh(gs)
    radii = 1 / np.sqrt(np.maximum(lam, 1e-30))  # semi-axes of vᵀGv = 1
    cell = axes[0][1] - axes[0][0]
    scale = 0.45 * cell / np.median(radii[:, 0])  # one scale for all: sizes compare
    for p, r, u in zip(points, radii, vecs):
        angle = np.degrees(np.arctan2(u[1, 0], u[0, 0]))
        width, height = np.minimum(2 * scale * r, 3 * cell)
        ax.add_patch(Ellipse(p, width, height, angle=angle, fill=False, color="k", lw=0.8))
    ax.set_xlim(axes[0][0], axes[0][-1])
    ax.set_ylim(axes[1][0], axes[1][-1])
    ax.set_aspect("equal")


def _interpolation_figure(
    plt, model, codes, pair, curve, data: Dataset, likelihood: str, steps: int = 10
):
    """Decoded images along the geodesic and along the straight line between two codes."""
    t = np.linspace(0, 1, steps)[:, None]
    straight = (1 - t) * codes[pair[0]] + t * codes[pair[1]]
    rows = [("straight", straight)]
    if np.all(np.isfinite(curve)):
        # The curve is sampled at equal times of a constant-speed geodesic: equal arc length.
        s = np.linspace(0, 1, len(curve))
        geodesic = np.stack([np.interp(t[:, 0], s, curve[:, k]) for k in range(curve.shape[1])], -1)
        rows.insert(0, ("geodesic", geodesic))
    fig, axes = plt.subplots(len(rows), steps, figsize=(steps, 1.2 * len(rows)), squeeze=False)
    mean = likelihoods.get(likelihood).mean
    decode = jax.jit(jax.vmap(lambda z: mean(model.decode(z))))
    for r, (name, zs) in enumerate(rows):
        images = np.asarray(decode(jnp.asarray(zs, jnp.float32))).reshape(-1, *data.image_shape)
        for c, image in enumerate(images):
            if image.ndim == 3:  # colour (pixels scaled to [0, 1]) or the channels' mean
                image = np.clip(image, 0, 1) if image.shape[2] == 3 else image.mean(-1)
            axes[r, c].imshow(image, cmap="gray_r" if image.ndim == 2 else None)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    return fig
