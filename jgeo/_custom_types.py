"""Array aliases shared by the kernels' signatures (jaxtyping string shapes)."""

from collections.abc import Callable

from jaxtyping import Array, ArrayLike, Float, Int

Point = Float[Array, " d"]
Tangent = Float[Array, " d"]
MetricMatrix = Float[Array, "d d"]
ChristoffelArray = Float[Array, "d d d"]
RiemannArray = Float[Array, "d d d d"]
Scalar = Float[Array, ""]
PointLike = Float[ArrayLike, " d"]
Points = Float[Array, "n d"]  # a batch of points (codes), one per row
Labels = Int[Array, " n"]  # integer classes, one per point
Fn = Callable[[Float[Array, " n"]], Float[Array, " m"]]  # a decoder or encoder of one point
Batch = Float[Array, "batch n"]  # a batch of inputs of `Fn`

__all__ = [
    "Array",
    "Batch",
    "Fn",
    "Labels",
    "Points",
    "ChristoffelArray",
    "MetricMatrix",
    "Point",
    "PointLike",
    "RiemannArray",
    "Scalar",
    "Tangent",
]
