"""The geometry a decoder gives a layer: the pullback metric at the codes, its
curvature, its geodesics and, for a 2-D layer, its fields on a grid over the codes."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .. import AbstractPullback, EnergyBVP, diagnostics, likelihoods, representation
from ..data import class_pairs
from ._probe import AbstractProbe, Layout, ProbeInputs, Scalar


def as_likelihood(likelihood) -> likelihoods.AbstractLikelihood | None:
    """A probe's `likelihood` argument: None, a `jgeo.likelihoods` object, or its name."""
    return None if likelihood is None else likelihoods.get(likelihood)


def latent_metric(
    decode: Callable, likelihood: likelihoods.AbstractLikelihood | None
) -> AbstractPullback:
    """The latent metric of `decode` under `likelihood`; None: JᵀJ of its (flattened)
    output, as `likelihoods.Gaussian()`."""
    return (likelihood or likelihoods.Gaussian()).latent_metric(decode)


def sectional_planes(dim: int, samples: int, seed: int) -> np.ndarray:
    """The (2, S, d) tangent vectors spanning each sample's plane of sectional curvature:
    the coordinate basis for d = 2 (its sectional curvature is the Gaussian curvature),
    else random, fixed by the seed."""
    if dim == 2:
        return np.broadcast_to(np.eye(2, dtype=np.float32)[:, None], (2, samples, 2))
    rng = np.random.default_rng([seed, 4])
    return rng.standard_normal((2, samples, dim)).astype(np.float32)


def grid_points(codes, side: int, pad: float = 0.1):
    """A side × side grid over the bounding box of `codes`, widened by `pad` of its size
    on each side. The grid follows the codes, so fields at different steps compare the
    same region of the representation, not the same coordinates.

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


def _finite_mean(values: Array) -> Array:
    """The mean of the finite entries; NaN if there are none."""
    finite = jnp.isfinite(values)
    total = jnp.sum(jnp.where(finite, values, 0))
    return jnp.where(finite.any(), total / jnp.maximum(finite.sum(), 1), jnp.nan)


class PullbackGeometry(AbstractProbe):
    """The metric a decoder pulls back onto its layer, at the fixed samples' codes: the
    mean and variance of the log-volume ½ log det G, the mean condition number and VoR
    (`logvol_mean`, `logvol_var`, `mcn`, `vor`, `jgeo.diagnostics.metric_summary`); the
    decoder's active dimensions (`active_dims`); the sectional curvature of one 2-plane
    per sample, fixed for the run (`curvature_mean`, `curvature_abs_mean`; the Gaussian
    curvature for d = 2); geodesic over straight-line length on fixed pairs of samples,
    of different classes where labelled (`geodesic_ratio`, `geodesics_converged`, and
    `ratios` per pair); and for d = 2 the log-volume and Gaussian-curvature fields on a
    grid over the codes (`log_volume`, `gaussian_curvature`, `extent`). The metric's own
    kernels are used, so a singular point (a fold of the decoder) reads NaN, not an error.

    The geodesics are minimal-energy curves of `geodesic_points` points solved to
    `geodesic_rtol`: coarse, since a probe runs often — on a trained digits decoder their
    ratios agree with 12 points at 1e-4 to 2e-4, at a third of the cost.

    **Arguments:**

    - `likelihood`: the decoder's likelihood, a `jgeo.likelihoods` object or its name
      (`Bernoulli()` / `"bernoulli"` for logits, `Categorical()`, `Poisson()`,
      `GaussianMeanStd()` for a pair (mean, std)), whose latent metric (the Fisher–Rao
      pullback) the probe measures; None (or `Gaussian()`): JᵀJ of the decoder's
      flattened output.
    - `pairs`: the number of geodesic pairs (0: none); `grid`: the grid's side for d = 2
      (0: no fields).
    - `geodesic_points`, `geodesic_rtol`: the geodesics' discretisation and tolerance.
    """

    likelihood: likelihoods.AbstractLikelihood | None = eqx.field(
        default=None, converter=as_likelihood
    )
    pairs: int = 4
    grid: int = 16
    geodesic_points: int = 8
    geodesic_rtol: float = 1e-3
    # Set by `prepare`: the sample pairs (P, 2) and the sectional planes (2, S, d).
    pair_index: np.ndarray | None = None
    planes: np.ndarray | None = None

    scalars = {
        "logvol_mean": Scalar("mean log-volume"),
        "logvol_var": Scalar("variance of log-volume"),
        "mcn": Scalar("mean condition number", log=True),
        "vor": Scalar("variance of the metric (VoR)"),
        "curvature_mean": Scalar("mean curvature"),
        "curvature_abs_mean": Scalar("mean |curvature|"),
        "geodesic_ratio": Scalar("geodesic / straight length"),
        "geodesics_converged": Scalar("geodesics converged", panel=False),
        "active_dims": Scalar("active decoder dimensions"),
    }
    group = "geometry"

    def __check_init__(self):
        for name, least in (("pairs", 0), ("grid", 0), ("geodesic_points", 3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise ValueError(f"`{name}` must be an integer ≥ {least}, got {value!r}.")
        if self.grid == 1:
            raise ValueError("`grid` must be 0 (no fields) or at least 2, got 1.")

    def prepare(self, layout: Layout) -> "PullbackGeometry | None":
        if not layout.decoded:
            return None
        pairs = class_pairs(layout.samples, layout.labels, self.pairs, layout.rng)
        return eqx.tree_at(
            lambda p: (p.pair_index, p.planes, p.grid),
            self,
            (pairs, sectional_planes(layout.dim, layout.samples, layout.seed),
             self.grid if layout.dim == 2 else 0),
            is_leaf=lambda x: x is None,
        )  # fmt: skip

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        codes = inputs.codes
        metric = latent_metric(inputs.decode, self.likelihood)
        summary = diagnostics.metric_summary(metric, codes)
        u, v = jnp.asarray(self.planes, codes.dtype)
        curvature = jax.vmap(metric.sectional_curvature)(codes, u, v)
        out = {
            "logvol_mean": summary["logdet_mean"] / 2,  # log-volume = ½ log det G
            "logvol_var": summary["logdet_var"] / 4,
            "mcn": summary["mcn"],
            "vor": summary["vor"],
            "curvature_mean": _finite_mean(curvature),
            "curvature_abs_mean": _finite_mean(jnp.abs(curvature)),
            "active_dims": jnp.mean(representation.active_dimensions(metric.immersion, codes)),
        }
        ratios = jnp.zeros(0, codes.dtype)
        if len(self.pair_index):
            pairs = jnp.asarray(self.pair_index)
            ratios, _ = diagnostics.geodesic_ratios(
                metric, codes[pairs[:, 0]], codes[pairs[:, 1]], solver=EnergyBVP(),
                num_points=self.geodesic_points, rtol=self.geodesic_rtol,
            )  # fmt: skip
        out.update(
            pairs=jnp.asarray(self.pair_index).reshape(-1, 2),
            ratios=ratios,
            geodesic_ratio=_finite_mean(ratios),
            geodesics_converged=jnp.sum(jnp.isfinite(ratios)),
        )
        if self.grid:
            grid, out["extent"] = grid_points(codes, self.grid)
            shape = (self.grid, self.grid)
            e1, e2 = jnp.eye(2, dtype=codes.dtype)
            curvature = jax.vmap(lambda z: metric.sectional_curvature(z, e1, e2))(grid)
            out["gaussian_curvature"] = curvature.reshape(shape)
            out["log_volume"] = jax.vmap(metric.log_volume)(grid).reshape(shape)
        return out
