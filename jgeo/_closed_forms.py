"""Closed-form geodesics of the space forms: the Poincaré ball (and through an isometry
the upper half-space) and the round sphere in stereographic coordinates.

Pure functions of one point, used by the analytic metrics' `exp_map`, `log_map`,
`distance` and `parallel_transport`. They are written to stay accurate where the
geodesic ODE loses the point in float32: distances come from `asinh` of a chord rather
than `arccosh`/`artanh` of a number near 1, and every division by a norm is guarded so
that gradients exist at coincident points. Where the dtype cannot hold the answer the
exp maps return NaN rather than a nearby point: a velocity that is not finite, a ball
geodesic that ends closer to the unit sphere than a point can be kept from it (tanh
saturates: the end would round onto the ideal boundary, which is no point of the ball),
a great circle wound so many times that its angle has lost half its digits.

References: Ungar, "Analytic hyperbolic geometry" (2005) for Möbius addition and
gyrations; Ganea, Bécigneul & Hofmann, "Hyperbolic neural networks" (2018), eqs. (8)–(9)
and Lemma 2 for exp, log and transport on the ball.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array

# How far inside the unit sphere a ball point is kept, in units of the dtype's machine
# epsilon: enough that 1 − ‖x‖², summed over the coordinates in that dtype, stays > 0.
_BALL_MARGIN = 32


def _ball_limit(dtype) -> float:
    """The largest norm a ball point is given: 1 − `_BALL_MARGIN` ε."""
    return 1 - _BALL_MARGIN * float(jnp.finfo(dtype).eps)


def _finite(v: Array) -> Array:
    return jnp.all(jnp.isfinite(v))


def safe_norm(v: Array) -> tuple[Array, Array]:
    """‖v‖ and whether it is > 0, with a finite gradient at v = 0 (the double-where trick)."""
    sq = v @ v
    nonzero = sq > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0), nonzero


def _unit(v: Array) -> Array:
    norm, nonzero = safe_norm(v)
    return jnp.where(nonzero, v / jnp.where(nonzero, norm, 1.0), 0.0)


# The Poincaré ball, curvature −1: g = λ(x)² I with λ(x) = 2 / (1 − ‖x‖²).


def project_to_ball(x: Array) -> Array:
    """`x` scaled back inside the sphere of radius 1 − margin if it reached or passed it."""
    limit = _ball_limit(x.dtype)
    norm, _ = safe_norm(x)
    return jnp.where(norm > limit, x * (limit / jnp.maximum(norm, limit)), x)


def mobius_add(x: Array, y: Array) -> Array:
    """Möbius addition x ⊕ y = ((1 + 2⟨x,y⟩ + ‖y‖²) x + (1 − ‖x‖²) y) / (1 + 2⟨x,y⟩ + ‖x‖²‖y‖²)."""
    xy, xx, yy = x @ y, x @ x, y @ y
    return ((1 + 2 * xy + yy) * x + (1 - xx) * y) / (1 + 2 * xy + xx * yy)


def gyration(u: Array, v: Array, w: Array) -> Array:
    """gyr[u, v] w = ⊖(u ⊕ v) ⊕ (u ⊕ (v ⊕ w)), written as the linear map it is in w:
    w + 2 (A u + B v) / D with A = −⟨u,w⟩‖v‖² + ⟨v,w⟩ + 2⟨u,v⟩⟨v,w⟩,
    B = −⟨v,w⟩‖u‖² − ⟨u,w⟩, D = 1 + 2⟨u,v⟩ + ‖u‖²‖v‖² (an orthogonal map)."""
    uv, uu, vv, uw, vw = u @ v, u @ u, v @ v, u @ w, v @ w
    a = -uw * vv + vw + 2 * uv * vw
    b = -vw * uu - uw
    return w + 2 * (a * u + b * v) / (1 + 2 * uv + uu * vv)


def _one_minus_sq(x: Array) -> Array:
    # 1 − ‖x‖² as (1 − ‖x‖)(1 + ‖x‖): no cancellation between 1 and ‖x‖² near the sphere.
    norm, _ = safe_norm(x)
    return (1 - norm) * (1 + norm)


def ball_distance(x: Array, y: Array) -> Array:
    """d(x, y) = 2 asinh(‖x − y‖ / √((1 − ‖x‖²)(1 − ‖y‖²)))  (= arccosh(1 + 2‖x−y‖²/(…)))."""
    chord, _ = safe_norm(x - y)
    return 2 * jnp.arcsinh(chord / jnp.sqrt(_one_minus_sq(x) * _one_minus_sq(y)))


def ball_exp(x: Array, v: Array) -> Array:
    """exp_x(v) = x ⊕ tanh(λ(x) ‖v‖ / 2) v / ‖v‖, kept strictly inside the ball.

    NaN where `x` or `v` is not finite, or where the end point lies closer to the unit
    sphere than `project_to_ball` keeps points (1 − ‖y‖ < 32ε, a distance of about 33
    from the origin in float64 and 13 in float32): there tanh(λ‖v‖/2) or the Möbius sum
    rounds onto the ideal boundary, and what is left is the boundary point the geodesic
    runs to, not its end. A point `x` already that close keeps it when the step moves no
    farther out."""
    norm, _ = safe_norm(v)
    size = jnp.tanh(norm / _one_minus_sq(x))
    y = mobius_add(x, project_to_ball(size * _unit(v)))
    limit = _ball_limit(x.dtype)
    beyond = safe_norm(y)[0] > jnp.maximum(limit, safe_norm(x)[0])
    lost = ~(_finite(x) & _finite(v)) | (size > limit) | beyond
    return jnp.where(lost, jnp.nan, project_to_ball(y))


def ball_log(x: Array, y: Array) -> Array:
    """log_x(y) = (2 / λ(x)) artanh(‖u‖) u / ‖u‖ with u = (−x) ⊕ y; artanh(‖u‖) is taken
    as d(x, y) / 2, which stays accurate where ‖u‖ rounds to 1."""
    return _one_minus_sq(x) * 0.5 * ball_distance(x, y) * _unit(mobius_add(-x, y))


def ball_transport(x: Array, v: Array, w: Array) -> Array:
    """Transport of w ∈ T_x along t ↦ exp_x(t v) to y = exp_x(v):
    (λ(x) / λ(y)) gyr[y, −x] w."""
    y = ball_exp(x, v)
    return _one_minus_sq(y) / _one_minus_sq(x) * gyration(y, -x, w)


# The upper half-space {x_d > 0}, g = I / x_d², is isometric to the ball through the
# inversion in the sphere of radius √2 about −e_d: an involution, so the same map goes
# both ways and its differential at φ(x) inverts the one at x.


def half_space_to_ball(x: Array) -> Array:
    """φ(x) = −e_d + 2 (x + e_d) / ‖x + e_d‖² (also the inverse map, ball → half-space)."""
    e = jnp.zeros_like(x).at[-1].set(1)
    shifted = x + e
    return -e + 2 * shifted / (shifted @ shifted)


def _push(x: Array, v: Array) -> tuple[Array, Array]:
    """φ(x) and dφ_x(v)."""
    return jax.jvp(half_space_to_ball, (x,), (v,))


def half_space_distance(x: Array, y: Array) -> Array:
    """d(x, y) = 2 asinh(‖x − y‖ / (2 √(x_d y_d)))  (= arccosh(1 + ‖x−y‖²/(2 x_d y_d)))."""
    chord, _ = safe_norm(x - y)
    return 2 * jnp.arcsinh(chord / (2 * jnp.sqrt(x[-1] * y[-1])))


def half_space_exp(x: Array, v: Array) -> Array:
    b, u = _push(x, v)
    return half_space_to_ball(ball_exp(b, u))


def half_space_log(x: Array, y: Array) -> Array:
    b = half_space_to_ball(x)
    return _push(b, ball_log(b, half_space_to_ball(y)))[1]


def half_space_transport(x: Array, v: Array, w: Array) -> Array:
    b, u = _push(x, v)
    z = _push(x, w)[1]
    return _push(ball_exp(b, u), ball_transport(b, u, z))[1]


# The sphere of radius r in stereographic coordinates (projection from the north pole
# onto the equatorial plane). The chart P: Rᵈ → S ⊂ Rᵈ⁺¹ is conformal, dPᵀdP = s(x)² I
# with s(x) = 2r² / (r² + ‖x‖²), so a tangent vector V of the sphere pulls back as
# dPᵀV / s².


def sphere_embed(x: Array, radius) -> Array:
    """P(x) = (2r² x, r (‖x‖² − r²)) / (‖x‖² + r²): x = 0 is the south pole."""
    r2, xx = radius**2, x @ x
    return jnp.concatenate([2 * r2 * x, (radius * (xx - r2))[None]]) / (xx + r2)


def sphere_chart(p: Array, radius) -> Array:
    """P⁻¹(p) = r p̲ / (r − p_{d+1}), written as p̲ (r + p_{d+1}) r / ‖p̲‖² on the northern
    half, where r − p_{d+1} would cancel. p̲ = p without its last coordinate."""
    flat, height = p[:-1], p[-1]
    south = height <= 0
    below = radius - height  # ≥ r on the southern half
    above = (radius + height) / jnp.maximum(flat @ flat, jnp.finfo(p.dtype).tiny)
    return radius * flat * jnp.where(south, 1 / jnp.where(south, below, 1.0), above)


def _pull(x: Array, tangent: Array, radius) -> Array:
    """The coordinates at x of a tangent vector of the sphere at P(x)."""
    _, pull = jax.vjp(lambda y: sphere_embed(y, radius), x)
    scale = 2 * radius**2 / (radius**2 + x @ x)
    return pull(tangent)[0] / scale**2


def sphere_distance(x: Array, y: Array, radius) -> Array:
    """d(x, y) = 2r asin(‖P(x) − P(y)‖ / 2r) with the chord
    ‖P(x) − P(y)‖ = 2r² ‖x − y‖ / √((r² + ‖x‖²)(r² + ‖y‖²))."""
    r2 = radius**2
    chord, _ = safe_norm(x - y)
    half = radius * chord / jnp.sqrt((r2 + x @ x) * (r2 + y @ y))
    return 2 * radius * jnp.arcsin(jnp.minimum(half, 1.0))


def _great_circle(p: Array, big_v: Array, radius) -> tuple[Array, Array]:
    """The end cos(θ) p + (sin θ / θ) V of the great circle from p with velocity V, and θ."""
    theta = safe_norm(big_v)[0] / radius
    return jnp.cos(theta) * p + jnp.sinc(theta / jnp.pi) * big_v, theta


def sphere_exp(x: Array, v: Array, radius) -> Array:
    """P⁻¹ of the great circle's end, with V = dP v and θ = ‖V‖ / r.

    NaN where `x` or `v` is not finite, or where θ > 1/√ε (6.7e7 in float64, 2.9e3 in
    float32): θ is rounded to within θε, so past that the end point keeps fewer than
    half the dtype's digits, and by θ ≈ 1/ε none."""
    p, big_v = jax.jvp(lambda y: sphere_embed(y, radius), (x,), (v,))
    end, theta = _great_circle(p, big_v, radius)
    wound = theta > 1 / jnp.sqrt(jnp.finfo(theta.dtype).eps)
    lost = ~(_finite(x) & _finite(v)) | wound
    return jnp.where(lost, jnp.nan, sphere_chart(end, radius))


def sphere_log(x: Array, y: Array, radius) -> Array:
    """log_P(Q) = r θ w / ‖w‖ with w = q̂ − ⟨p̂, q̂⟩ p̂ (p̂ = P / r), θ = the angle; NaN at the
    antipode, where every direction is a shortest geodesic."""
    p, q = sphere_embed(x, radius), sphere_embed(y, radius)
    cosine = (p @ q) / radius**2
    w = q / radius - cosine * p / radius
    sine, nonzero = safe_norm(w)
    theta = jnp.arctan2(sine, cosine)
    factor = jnp.where(nonzero, theta / jnp.where(nonzero, sine, 1.0), 1.0)
    antipodal = ~nonzero & (cosine < 0)
    return jnp.where(antipodal, jnp.nan, _pull(x, radius * factor * w, radius))


def sphere_transport(x: Array, v: Array, w: Array, radius) -> Array:
    """The component of W = dP w along the direction e of V = dP v turns with the
    geodesic, in the plane (e, p̂); the rest of W is unchanged."""
    p, big_v = jax.jvp(lambda y: sphere_embed(y, radius), (x,), (v,))
    big_w = jax.jvp(lambda y: sphere_embed(y, radius), (x,), (w,))[1]
    end, theta = _great_circle(p, big_v, radius)
    e = _unit(big_v)
    moved = big_w + (big_w @ e) * ((jnp.cos(theta) - 1) * e - jnp.sin(theta) * p / radius)
    return _pull(sphere_chart(end, radius), moved, radius)
