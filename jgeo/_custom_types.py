"""Array aliases shared by the kernels' signatures (jaxtyping string shapes)."""

from jaxtyping import Array, ArrayLike, Float

Point = Float[Array, " d"]
Tangent = Float[Array, " d"]
MetricMatrix = Float[Array, "d d"]
ChristoffelArray = Float[Array, "d d d"]
RiemannArray = Float[Array, "d d d d"]
Scalar = Float[Array, ""]
PointLike = Float[ArrayLike, " d"]

__all__ = [
    "Array",
    "ChristoffelArray",
    "MetricMatrix",
    "Point",
    "PointLike",
    "RiemannArray",
    "Scalar",
    "Tangent",
]
