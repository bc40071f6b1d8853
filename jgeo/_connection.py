"""The Levi-Civita connection: Christoffel symbols and the geodesic spray."""

from jaxtyping import ArrayLike

from . import _autodiff
from ._checks import Method, as_tangent, choose, finish, metric_point
from ._custom_types import ChristoffelArray, PointLike, Tangent
from ._metrics import AbstractMetric


def christoffel(
    metric: AbstractMetric, x: PointLike, *, method: Method = "auto"
) -> ChristoffelArray:
    r"""Christoffel symbols of the second kind of the Levi-Civita connection.

    `Γ[k, i, j] = Γᵏᵢⱼ = ½ gᵏˡ (∂ᵢ gₗⱼ + ∂ⱼ gₗᵢ − ∂ₗ gᵢⱼ)`, symmetric in (i, j), so that
    ∇_{∂ᵢ} ∂ⱼ = Γᵏᵢⱼ ∂ₖ and a geodesic solves ẍᵏ = −Γᵏᵢⱼ ẋⁱ ẋʲ.

    **Arguments:**

    - `metric`: a jgeo metric.
    - `x`: one point, shape (d,).
    - `method`: `"auto"` uses the metric's fast path (for a pullback, G⁻¹ Jᵀ H from the
      decoder's Hessian); `"autodiff"` differentiates the metric matrix.

    **Returns:** an array of shape (d, d, d) and the dtype of `x`.

    **Raises:** `ValueError`/`TypeError` for a malformed point; a runtime error if the
    metric is singular at `x` (see `jitter`).
    """
    x = metric_point(metric, x)
    out = choose(method, metric.christoffel, lambda y: _autodiff.christoffel(metric, y))(x)
    return finish(out, x, "christoffel")


def geodesic_acceleration(
    metric: AbstractMetric, x: PointLike, v: ArrayLike, *, method: Method = "auto"
) -> Tangent:
    """The geodesic spray: the acceleration `ẍᵏ = −Γᵏᵢⱼ vⁱ vʲ` of the geodesic through
    `x` with velocity `v`.

    Never forms Γ: a pullback uses its Jacobian and one second-order JVP of the decoder
    (−G⁻¹ Jᵀ D²f[v, v]); the generic path uses one JVP and one gradient of the metric.

    **Arguments:** `metric`; `x`, `v` of shape (d,); `method` as in `christoffel`.

    **Returns:** shape (d,), the dtype of `x`.
    """
    x = metric_point(metric, x)
    v = as_tangent(x, v, "v")
    generic = lambda y, w: _autodiff.geodesic_acceleration(metric, y, w)  # noqa: E731
    out = choose(method, metric.geodesic_acceleration, generic)(x, v)
    return finish(out, x, "geodesic_acceleration")
