"""Curvature of the Levi-Civita connection, and the volume element."""

from typing import Literal

import jax.numpy as jnp
from jaxtyping import ArrayLike, PRNGKeyArray

from . import _autodiff
from ._checks import Method, as_tangent, choose, finish, metric_point
from ._custom_types import MetricMatrix, PointLike, RiemannArray, Scalar
from ._linalg import solve
from ._metrics import AbstractMetric
from ._slq import SLQ, as_estimator


def _riemann(metric: AbstractMetric, x, method: Method) -> RiemannArray:
    return choose(method, metric.riemann, lambda y: _autodiff.riemann(metric, y))(x)


def _ricci(metric: AbstractMetric, x, method: Method) -> MetricMatrix:
    return jnp.einsum("abad->bd", _riemann(metric, x, method))


def riemann(metric: AbstractMetric, x: PointLike, *, method: Method = "auto") -> RiemannArray:
    """The Riemann curvature tensor `R[a, b, c, d] = Rᵃ_bcd`, where

    `Rᵃ_bcd = ∂_c Γᵃ_db − ∂_d Γᵃ_cb + Γᵃ_ce Γᵉ_db − Γᵃ_de Γᵉ_cb`,

    i.e. R(∂_c, ∂_d) ∂_b = Rᵃ_bcd ∂_a with R(X, Y) = ∇_X∇_Y − ∇_Y∇_X − ∇_[X,Y].
    Antisymmetric in (c, d); lowered, R_abcd = g_ae Rᵉ_bcd is antisymmetric in (a, b)
    and symmetric under (ab) ↔ (cd).

    A pullback uses the Gauss equation R_abcd = ⟨II_ac, II_bd⟩ − ⟨II_ad, II_bc⟩ (second
    derivatives of the decoder only); `method="autodiff"` differentiates Γ (third).

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).
    - `method`: `"auto"` uses the metric's fast path (the Gauss equation for a pullback);
      `"autodiff"` differentiates the metric matrix (the reference).

    **Returns:** shape (d, d, d, d), the dtype of `x`.

    **Raises:** `ValueError`/`TypeError` for a malformed point; a runtime error if the
    metric is singular at `x` (see `jitter`).
    """
    x = metric_point(metric, x)
    return finish(_riemann(metric, x, method), x, "riemann")


def ricci(metric: AbstractMetric, x: PointLike, *, method: Method = "auto") -> MetricMatrix:
    """The Ricci tensor `R_bd = Rᵃ_bad` (a contraction of `riemann`); symmetric, and
    equal to g / r² on a sphere of radius r.

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).
    - `method`: `"auto"` uses the metric's fast path (through `riemann`'s); `"autodiff"`
      differentiates the metric matrix (the reference).

    **Returns:** shape (d, d), the dtype of `x`.

    **Raises:** `ValueError`/`TypeError` for a malformed point; a runtime error if the
    metric is singular at `x` (see `jitter`).
    """
    x = metric_point(metric, x)
    return finish(_ricci(metric, x, method), x, "ricci")


def scalar_curvature(metric: AbstractMetric, x: PointLike, *, method: Method = "auto") -> Scalar:
    """The scalar curvature `g^{bd} R_bd`: 2/r² on a 2-sphere of radius r, d(d−1)/r² on a
    d-sphere, −d(d−1) on hyperbolic space.

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).
    - `method`: `"auto"` uses the metric's fast path (through `riemann`'s); `"autodiff"`
      differentiates the metric matrix (the reference).

    **Returns:** a scalar of the dtype of `x`.

    **Raises:** `ValueError`/`TypeError` for a malformed point; a runtime error if the
    metric is singular at `x` (see `jitter`).
    """
    x = metric_point(metric, x)
    out = jnp.trace(solve(metric(x), _ricci(metric, x, method)))
    return finish(out, x, "scalar_curvature")


def sectional_curvature(
    metric: AbstractMetric,
    x: PointLike,
    u: ArrayLike,
    v: ArrayLike,
    *,
    method: Method = "auto",
) -> Scalar:
    """Sectional curvature of the plane spanned by `u` and `v` at `x`:

    `K(u, v) = R_abcd uᵃ vᵇ uᶜ vᵈ / (g(u,u) g(v,v) − g(u,v)²)`, R_abcd = g_ae Rᵉ_bcd.

    A pullback needs only three second-order JVPs (Gauss equation on the plane), not
    the full tensor.

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,); `u`, `v`: two tangent vectors at `x`, shape (d,),
      not parallel (any scale: K depends only on the plane).
    - `method`: `"auto"` uses the metric's fast path; `"autodiff"` contracts the full
      tensor from autodiff of the metric (the reference).

    **Returns:** a scalar of the dtype of `x`.

    **Raises:** `ValueError`/`TypeError` for a malformed point or vector; a runtime
    error if `u` and `v` are parallel (no plane) or the metric is singular at `x`.
    """
    x = metric_point(metric, x)
    u, v = as_tangent(x, u, "u"), as_tangent(x, v, "v")
    generic = lambda *args: _autodiff.sectional_curvature(metric, *args)  # noqa: E731
    out = choose(method, metric.sectional_curvature, generic)(x, u, v)
    return finish(out, x, "sectional_curvature", hint=" Or `u` and `v` are parallel.")


def gaussian_curvature(metric: AbstractMetric, x: PointLike, *, method: Method = "auto") -> Scalar:
    """The Gaussian curvature of a 2-dimensional metric: scalar curvature / 2
    (1/r² on a sphere of radius r).

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).
    - `method`: `"auto"` uses the metric's fast path; `"autodiff"` differentiates
      the metric matrix (the reference).

    **Returns:** a scalar of the dtype of `x`.

    **Raises:** `ValueError` if the metric is not 2-dimensional (use
    `scalar_curvature` or `sectional_curvature`); otherwise as `scalar_curvature`.
    """
    x = metric_point(metric, x)
    if x.shape[0] != 2:
        raise ValueError(
            f"gaussian_curvature is defined for 2-dimensional metrics, but `x` has "
            f"{x.shape[0]} coordinates; use `scalar_curvature` or `sectional_curvature`."
        )
    return scalar_curvature(metric, x, method=method) / 2


def log_volume(
    metric: AbstractMetric,
    x: PointLike,
    *,
    method: Method | Literal["slq"] | SLQ = "auto",
    key: PRNGKeyArray | None = None,
) -> Scalar:
    """The log volume element `½ log det g(x)` (log of the Riemannian volume density).

    For a pullback, log |det R| of the QR factorisation of J, which avoids squaring J's
    condition number; otherwise from the Cholesky factor of g. Both form the d × d
    metric (d JVPs of a decoder) and factor it in O(d³); for wide latent spaces and
    hidden layers (d in the hundreds to thousands) `method="slq"` estimates it by
    stochastic Lanczos quadrature on `metric_operator` instead, from products G v only
    (`SLQ`: its probes and steps, error and gradients).

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).
    - `method`: `"auto"` uses the metric's fast path (QR of J for a pullback);
      `"autodiff"` differentiates the metric matrix (the reference); `"slq"` or an
      `SLQ(probes=..., steps=...)` estimates it matrix-free.
    - `key`: a JAX PRNG key for the probes of `"slq"` (required there, unused
      otherwise).

    **Returns:** a scalar of the dtype of `x`.

    **Raises:** `ValueError`/`TypeError` for a malformed point, an unknown `method` or
    a missing `key`; a runtime error if the metric is singular at `x` (see `jitter`).
    """
    estimator = as_estimator(method)
    if estimator is None:
        if method not in ("auto", "autodiff"):
            raise ValueError(
                f'`method` must be "auto", "autodiff", "slq" or a `jgeo.SLQ(...)`, got {method!r}.'
            )
        x = metric_point(metric, x)
        out = choose(method, metric.log_volume, lambda y: _autodiff.log_volume(metric, y))(x)
        return finish(out, x, "log_volume")
    return estimator.log_volume(metric, x, key)  # it names a missing `key`
