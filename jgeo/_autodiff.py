"""The generic path: every kernel from automatic differentiation of the metric matrix.

It needs nothing but `metric(x) -> (d, d)`, so it holds for any metric, and it is the
reference against which the faster paths of particular metrics are tested.
Index conventions are those of `jgeo.christoffel` and `jgeo.riemann`.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ._custom_types import ChristoffelArray, MetricMatrix, Point, RiemannArray, Scalar, Tangent
from ._linalg import logdet, solve

MetricFn = Callable[[Point], MetricMatrix]


def frozen(tree):
    """`tree` with gradients stopped at its floating-point arrays (other leaves kept)."""
    return jax.tree.map(lambda a: jax.lax.stop_gradient(a) if eqx.is_inexact_array(a) else a,
                        tree)  # fmt: skip


def jacfwd_and_value(fn: Callable, x: Array) -> tuple[Array, Array]:
    """(∂fn(x), fn(x)) from one forward-mode pass, tracing `fn` once."""

    def twice(y):
        out = fn(y)
        return out, out

    return jax.jacfwd(twice, has_aux=True)(x)


def christoffel(metric: MetricFn, x: Point) -> ChristoffelArray:
    """Γᵏᵢⱼ = ½ gᵏˡ (∂ᵢ gₗⱼ + ∂ⱼ gₗᵢ − ∂ₗ gᵢⱼ), one forward-mode Jacobian of g."""
    dg, g = jacfwd_and_value(metric, x)
    # dg[i, j, l] = ∂ₗ gᵢⱼ
    lowered = 0.5 * (
        jnp.transpose(dg, (0, 2, 1)) + dg - jnp.transpose(dg, (2, 0, 1))
    )  # lowered[l, i, j] = ½ (∂ᵢ gₗⱼ + ∂ⱼ gₗᵢ − ∂ₗ gᵢⱼ)
    return solve(g, lowered)


def geodesic_acceleration(metric: MetricFn, x: Point, v: Tangent) -> Tangent:
    """−Γᵏᵢⱼ vⁱ vʲ from one JVP and one gradient of g, without forming Γ.

    Γₗᵢⱼ vⁱ vʲ = (∂ᵥ g)ₗⱼ vʲ − ½ ∂ₗ (vᵀ g v), so the cost is O(d²) beyond two derivative
    passes instead of the O(d³) entries of Γ.
    """
    g, dg_v = jax.jvp(metric, (x,), (v,))
    quad_grad = jax.grad(lambda y: v @ metric(y) @ v)(x)
    return -solve(g, dg_v @ v - 0.5 * quad_grad)


def riemann(metric: MetricFn, x: Point) -> RiemannArray:
    """Rᵃ_bcd = ∂_c Γᵃ_db − ∂_d Γᵃ_cb + Γᵃ_ce Γᵉ_db − Γᵃ_de Γᵉ_cb by nested autodiff."""
    dgamma, gamma = jacfwd_and_value(lambda y: christoffel(metric, y), x)
    # dgamma[a, d, b, c] = ∂_c Γᵃ_db; reorder to [a, b, c, d].
    half = jnp.transpose(dgamma, (0, 2, 3, 1)) + jnp.einsum("ace,edb->abcd", gamma, gamma)
    return half - jnp.swapaxes(half, 2, 3)


def sectional_curvature(metric: MetricFn, x: Point, u: Tangent, v: Tangent) -> Scalar:
    """Sectional curvature from the Riemann tensor of nested autodiff."""
    return sectional_from_riemann(metric(x), riemann(metric, x), u, v)


def sectional_from_riemann(
    g: MetricMatrix, riemann_tensor: RiemannArray, u: Tangent, v: Tangent
) -> Scalar:
    """R_abcd uᵃ vᵇ uᶜ vᵈ / (g(u,u) g(v,v) − g(u,v)²) with R_abcd = g_ae Rᵉ_bcd."""
    numerator = jnp.einsum("ae,ebcd,a,b,c,d->", g, riemann_tensor, u, v, u, v)
    return numerator / area_squared(g, u, v)


def log_volume(metric: MetricFn, x: Point) -> Scalar:
    """½ log det g."""
    return 0.5 * logdet(metric(x))


def area_squared(g: MetricMatrix, u: Tangent, v: Tangent) -> Scalar:
    """g(u,u) g(v,v) − g(u,v)²: the squared area of the parallelogram spanned by u, v."""
    guv = u @ g @ v
    return (u @ g @ u) * (v @ g @ v) - guv * guv
