"""Argument validation at the public boundary: clear errors instead of XLA tracebacks."""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._metrics import AbstractMetric, check_point

Method = Literal["auto", "autodiff"]

_NONFINITE = (
    "{kernel}: the result is not finite. Either the metric is singular here (a decoder "
    "with a rank-deficient Jacobian: build it with `jitter=1e-6`, e.g. "
    "`jgeo.Pullback(f, jitter=1e-6)`), the point lies outside the metric's domain (the "
    "boundary of a Poincaré model), or the inputs are not finite.{hint} Set the "
    "environment variable EQX_ON_ERROR=nan to get NaNs instead of this error."
)


_OUTSIDE = (
    "`{name}` lies outside the domain of {metric}, {domain}, where its formulas do not "
    "define a metric. Pass points of the domain; with `throw=False` the geodesic "
    "functions report such a point as a failure (NaN) instead. Set the environment "
    "variable EQX_ON_ERROR=nan to get NaNs instead of this error."
)
SUPPORTED_DTYPES = (jnp.dtype("float32"), jnp.dtype("float64"))


def check_dtype(dtype, name: str) -> None:
    """Floating point of a precision the solvers support: float32 or float64."""
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must have a floating-point dtype, got {dtype}; "
            f"pass e.g. `jnp.asarray({name}, dtype=float)`."
        )
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"`{name}` has dtype {dtype}, but jgeo computes in float32 or float64 (its "
            f"linear solves and ODE tolerances are not defined below single precision); "
            f"pass `{name}.astype(jnp.float32)` and cast the result back if needed."
        )


def as_point(x: ArrayLike, name: str = "x") -> Array:
    """Validate one point (or tangent vector) of shape (d,), float32 or float64."""
    x = jnp.asarray(x)
    check_dtype(x.dtype, name)
    if x.ndim != 1:
        raise ValueError(
            f"`{name}` must be a single point of shape (d,), got shape {x.shape}; "
            "kernels take one point, use `jax.vmap` to map them over a batch."
        )
    return x


def has_domain(metric: AbstractMetric) -> bool:
    """Whether the metric is defined on part of Rᵈ only (it overrides `contains`)."""
    return type(metric).contains is not AbstractMetric.contains


def curve_in_domain(metric: AbstractMetric, curve: Array) -> Array:
    """Whether every point of `curve` (n, d) lies in the metric's domain (always, for a
    metric on all of Rᵈ). NaN points count as inside: a solve that produced them reports
    its own failure."""
    if not has_domain(metric):
        return jnp.array(True)
    return jnp.all(jax.vmap(metric.contains)(jnp.nan_to_num(curve, nan=0.0)))


def points_of(metric: AbstractMetric, points: Array) -> Array:
    """Which of `points` (n, d) are points of the metric, shape (n,): finite and in its
    domain (`metric.contains`). Unlike `curve_in_domain`, NaN is not one."""
    return jax.vmap(metric.contains)(points) & jnp.all(jnp.isfinite(points), -1)


def metric_point(
    metric: AbstractMetric,
    x: ArrayLike,
    name: str = "x",
    *,
    throw: bool = True,
    full_rank: bool = True,
) -> Array:
    """Validate `metric` and a point `x` of it: its shape and dtype now, and (with
    `throw`) that it lies in the metric's domain when the computation runs, also under
    jit and vmap. Without `throw` the caller reports `metric.contains(x)` itself.
    Without `full_rank`, a metric singular by its shapes (a decoder with fewer outputs
    than latent coordinates) is accepted."""
    if not isinstance(metric, AbstractMetric):
        raise TypeError(
            f"`metric` must be a jgeo metric such as `jgeo.Pullback(decoder)`, got "
            f"{type(metric).__name__}; wrap a function x ↦ g(x) as `jgeo.MetricField(fn)`."
        )
    x = as_point(x, name)
    check_point(metric, x, name, full_rank)
    if throw and has_domain(metric):
        message = _OUTSIDE.format(name=name, metric=type(metric).__name__, domain=metric.domain)
        x = eqx.error_if(x, ~metric.contains(x), message)
    return x


def as_tangent(x: Array, v: ArrayLike, name: str) -> Array:
    """Validate a tangent vector at `x`: same shape as `x`, cast to `x`'s dtype."""
    v = as_point(v, name)
    if v.shape != x.shape:
        raise ValueError(
            f"`{name}` must be a tangent vector of shape {x.shape} like `x`, got {v.shape}."
        )
    return v.astype(x.dtype)


def check_values(x: Array, bad, message: str) -> Array:
    """Raise `ValueError(message)` now if `bad` is concretely true; under a transform,
    where the values are not known yet, raise when the computation runs."""
    if isinstance(bad, jax.core.Tracer) or isinstance(x, jax.core.Tracer):
        return eqx.error_if(x, bad, message)
    if bool(bad):
        raise ValueError(message)
    return x


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
