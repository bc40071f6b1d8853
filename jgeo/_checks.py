"""Argument validation at the public boundary: clear errors instead of XLA tracebacks."""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._metrics import AbstractMetric

Method = Literal["auto", "autodiff"]

_NONFINITE = (
    "{kernel}: the result is not finite. Either the metric is singular here (a decoder "
    "with a rank-deficient Jacobian: build it with `jitter=1e-6`, e.g. "
    "`jgeo.Pullback(f, jitter=1e-6)`), the point lies outside the metric's domain (the "
    "boundary of a Poincaré model), or the inputs are not finite.{hint} Set the "
    "environment variable EQX_ON_ERROR=nan to get NaNs instead of this error."
)


def as_point(x: ArrayLike, name: str = "x") -> Array:
    """Validate one point (or tangent vector) of shape (d,) with a floating dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must have a floating-point dtype, got {x.dtype}; "
            f"pass e.g. `jnp.asarray({name}, dtype=float)`."
        )
    if x.ndim != 1:
        raise ValueError(
            f"`{name}` must be a single point of shape (d,), got shape {x.shape}; "
            "kernels take one point, use `jax.vmap` to map them over a batch."
        )
    return x


def metric_point(metric: AbstractMetric, x: ArrayLike) -> Array:
    """Validate `metric` and a point `x` of it."""
    if not isinstance(metric, AbstractMetric):
        raise TypeError(
            f"`metric` must be a jgeo metric such as `jgeo.Pullback(decoder)`, got "
            f"{type(metric).__name__}; wrap a function x ↦ g(x) as `jgeo.MetricField(fn)`."
        )
    x = as_point(x, "x")
    metric.check_point(x, "x")
    return x


def as_tangent(x: Array, v: ArrayLike, name: str) -> Array:
    """Validate a tangent vector at `x`: same shape as `x`, cast to `x`'s dtype."""
    v = as_point(v, name)
    if v.shape != x.shape:
        raise ValueError(
            f"`{name}` must be a tangent vector of shape {x.shape} like `x`, got {v.shape}."
        )
    return v.astype(x.dtype)


def choose(method: Method, fast: Callable, generic: Callable) -> Callable:
    """The kernel path for `method`: the metric's own ("auto") or nested autodiff."""
    if method == "auto":
        return fast
    if method == "autodiff":
        return generic
    raise ValueError(f'`method` must be "auto" or "autodiff", got {method!r}.')


def finish(out: Array, like: Array, kernel: str, hint: str = "") -> Array:
    """Cast to the input's dtype and raise (also under jit/vmap) on NaN or infinity."""
    out = out.astype(like.dtype)
    message = _NONFINITE.format(kernel=kernel, hint=hint)
    return eqx.error_if(out, ~jnp.all(jnp.isfinite(out)), message)
