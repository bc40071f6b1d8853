"""Fisher–Rao pullbacks (`jgeo.FisherPullback`): closed forms of each family, the fast
paths against nested autodiff, and saturated logits in float32.

Conventions taught here: a Bernoulli / categorical / Poisson decoder outputs logits or
log-rates (not probabilities), and its Fisher metric is the Euclidean pullback of a
chart (2 arcsin √p, 2 √p, 2 √λ); a Gaussian decoder outputs a pair (mean, std) and pulls
back the hyperbolic metric (dμ² + 2 dσ²)/σ² as an `ambient` metric.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from helpers import KERNELS, mlp_decoder, tree_allclose

import jgeo

METHODS = ["auto", "autodiff"]


def softmax_decoder(z):
    return jnp.array([z[0], z[1], 0.0])


@pytest.mark.slow
def test_categorical_simplex_is_a_sphere_of_radius_two():
    # z ↦ softmax(z₁, z₂, 0) covers the open 2-simplex; 2√p lands on the sphere of radius 2.
    metric = jgeo.FisherPullback(softmax_decoder, "categorical")
    points = jnp.array([[0.3, -0.2], [2.0, 1.0], [-3.0, 4.0], [0.0, 0.0]])
    both = lambda z: jnp.stack([jgeo.gaussian_curvature(metric, z, method=m) for m in METHODS])  # noqa: E731
    assert tree_allclose(jax.jit(jax.vmap(both))(points), jnp.full((4, 2), 0.25))
    # the metric is Σ dpᵢ²/pᵢ pulled back through softmax
    z = points[0]
    p, jac = (
        jax.nn.softmax(softmax_decoder(z)),
        jax.jacfwd(lambda y: jax.nn.softmax(softmax_decoder(y)))(z),
    )
    assert tree_allclose(metric(z), jnp.einsum("mi,m,mj->ij", jac, 1 / p, jac))
    # distance: 2 arccos Σ √(pᵢ qᵢ) (the Bhattacharyya angle)
    x, y = jnp.array([0.3, -0.2]), jnp.array([-1.0, 1.5])
    p, q = jax.nn.softmax(softmax_decoder(x)), jax.nn.softmax(softmax_decoder(y))
    expected = 2 * jnp.arccos(jnp.sum(jnp.sqrt(p * q)))
    assert tree_allclose(jax.jit(jgeo.distance)(metric, x, y), expected, rtol=1e-7)


def test_bernoulli_line_distance():
    # in one dimension the geodesic is the segment: its length is the distance
    metric = jgeo.FisherPullback(lambda z: z, "bernoulli")
    a, b = jnp.array([-2.0]), jnp.array([3.0])
    angle = lambda z: jnp.arcsin(jnp.sqrt(jax.nn.sigmoid(z[0])))  # noqa: E731
    segment = jnp.linspace(a, b, 2001)
    length = jax.jit(jgeo.curve_length)(metric, segment)
    assert tree_allclose(length, 2 * jnp.abs(angle(b) - angle(a)), rtol=1e-7)
    # Fisher information of a logit: σ(1 − σ)
    assert tree_allclose(metric(a), (jax.nn.sigmoid(a) * jax.nn.sigmoid(-a))[None])


def test_poisson_metric_is_the_rate():
    # log-rate η: Fisher information λ = e^η per output
    metric = jgeo.FisherPullback(lambda z: jnp.stack([z[0], z[0] + 2 * z[1]]), "poisson")
    z = jnp.array([0.4, -0.3])
    jac = jnp.array([[1.0, 0.0], [1.0, 2.0]])
    rates = jnp.exp(jnp.array([z[0], z[0] + 2 * z[1]]))
    assert tree_allclose(metric(z), jac.T @ jnp.diag(rates) @ jac)


@pytest.mark.slow
def test_gaussian_is_the_hyperbolic_fisher_metric():
    # (μ, σ) = (z₁, e^{z₂}): g = diag(e^{−2 z₂}, 2), scalar curvature −1 (K = −1/2)
    metric = jgeo.FisherPullback(lambda z: (z[:1], jnp.exp(z[1:])), "gaussian")
    points = jnp.array([[0.4, -0.3], [-2.0, 1.5]])
    g, scalar = jax.jit(jax.vmap(lambda z: (metric(z), jgeo.scalar_curvature(metric, z))))(points)
    expected = jax.vmap(lambda z: jnp.diag(jnp.array([jnp.exp(-2 * z[1]), 2.0])))(points)
    assert tree_allclose(g, expected) and tree_allclose(scalar, jnp.full(2, -1.0))
    # (μ, σ) = (√2 u, s): √2 × the distance of the upper half-plane in (u, s)
    x, y = jnp.array([-1.0, 0.2]), jnp.array([1.5, -0.4])
    (u1, s1), (u2, s2) = (x[0] / jnp.sqrt(2), jnp.exp(x[1])), (y[0] / jnp.sqrt(2), jnp.exp(y[1]))
    expected = jnp.sqrt(2) * jnp.arccosh(1 + ((u1 - u2) ** 2 + (s1 - s2) ** 2) / (2 * s1 * s2))
    # (the energy of the discrete curve under this metric, not of its decoded chords in
    # (μ, σ), which are not Fisher lengths; within its discretisation error)
    solver = jgeo.EnergyBVP()
    energy = jax.jit(lambda a, b: jgeo.distance(metric, a, b, solver=solver, rtol=1e-6))(x, y)
    assert tree_allclose(energy, expected, rtol=1e-3)
    # the same metric built from its parts, and the closed-form spray of the ambient
    ambient = jgeo.Pullback(
        lambda z: jnp.stack([z[0], jnp.exp(z[1])]), ambient=jgeo.GaussianFisher()
    )
    v = jnp.array([0.7, -0.4])
    for method in METHODS:
        assert tree_allclose(
            jgeo.geodesic_acceleration(metric, points[0], v, method=method),
            jgeo.geodesic_acceleration(ambient, points[0], v, method="autodiff"),
        )
    y, w = jnp.array([0.3, -1.0, 0.5, 2.0]), jnp.array([0.2, 0.9, -0.4, 0.1])
    fisher = jgeo.GaussianFisher(4)
    assert tree_allclose(
        fisher.geodesic_acceleration(y, w),
        jgeo.geodesic_acceleration(fisher, y, w, method="autodiff"),
    )


def _decoders(key, d=3, width=10):
    """A random tanh-MLP decoder per family (d → parameters of 4 outputs)."""
    keys = jr.split(key, 5)
    logits = mlp_decoder(keys[0], d, 6, width)
    mean, log_std = mlp_decoder(keys[1], d, 3, width), mlp_decoder(keys[2], d, 3, width)
    return {
        "bernoulli": lambda z: logits(z).reshape(2, 3),
        "categorical": lambda z: logits(z).reshape(2, 3),
        "poisson": logits,
        "gaussian": lambda z: (mean(z), jnp.exp(0.5 * log_std(z))),
    }


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bernoulli", "categorical", "poisson", "gaussian"])
def test_fast_paths_match_autodiff(family, key):
    metric = jgeo.FisherPullback(_decoders(key)[family], family)
    x = jnp.array([0.2, -0.4, 0.3])

    @jax.jit
    def every_kernel(metric, x):  # one compilation for both paths
        field = jgeo.MetricField(metric, dim=3)  # nothing but autodiff of G
        return [(kernel(metric, x), kernel(field, x)) for kernel in KERNELS.values()]

    for name, (fast, slow) in zip(KERNELS, every_kernel(metric, x)):
        assert tree_allclose(fast, slow, rtol=1e-7, atol=1e-9), name


@pytest.mark.slow
def test_saturated_logits_stay_finite_in_float32(key):
    # Logits of ±30 and beyond (p = σ(30) rounds to 1 in float32): the charts saturate
    # instead of dividing by a vanishing √(p(1 − p)).
    keys = jr.split(key, 2)
    base = mlp_decoder(keys[0], 2, 6, 8, dtype=jnp.float32)
    x = jnp.array([0.3, -0.2], jnp.float32)
    u, v = jnp.eye(2, dtype=jnp.float32)
    offsets = jnp.array([30.0, -30.0, 45.0, 0.0, 1.0, -2.0], jnp.float32)

    def measurements(scale, family):
        decoder = lambda z: scale * base(z) + offsets  # noqa: E731
        if family == "categorical":
            decoder = lambda z: (scale * base(z) + offsets).reshape(2, 3)  # noqa: E731
        metric = jgeo.FisherPullback(decoder, family)
        return jnp.stack([
            jnp.sum(metric(x)),
            jnp.sum(metric.geodesic_acceleration(x, u + v)),
            metric.sectional_curvature(x, u, v),
            metric.log_volume(x),
        ])  # fmt: skip

    for family in ["bernoulli", "categorical", "poisson"]:
        total = lambda s: jnp.sum(measurements(s, family))  # noqa: B023, E731
        values, grad = jax.jit(lambda s: (measurements(s, family), jax.grad(total)(s)))(  # noqa: B023
            jnp.float32(1.0)
        )
        assert values.dtype == jnp.float32
        assert np.all(np.isfinite(values)) and np.isfinite(grad), family
    # each chart itself, and its first two derivatives, far into saturation
    logits = jnp.array([-200.0, -30.0, 0.0, 30.0, 200.0], jnp.float32)
    for chart in [jgeo._fisher.bernoulli_chart, jgeo._fisher.categorical_chart]:
        total = lambda t: jnp.sum(chart(t * logits))  # noqa: B023, E731
        derivatives = jax.jit(
            lambda t: (chart(logits), jax.grad(total)(t), jax.grad(jax.grad(total))(t))
        )  # noqa: B023
        assert all(np.all(np.isfinite(d)) for d in derivatives(jnp.float32(1.0)))


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="family"):
        jgeo.FisherPullback(lambda z: z, "beta")
    x = jnp.zeros(2)
    with pytest.raises(ValueError, match=r"pair \(mean, std\)"):
        jgeo.christoffel(jgeo.FisherPullback(lambda z: z, "gaussian"), x)
    with pytest.raises(ValueError, match="mean has shape"):
        jgeo.christoffel(jgeo.FisherPullback(lambda z: (z, z[:1]), "gaussian"), x)
    with pytest.raises(ValueError, match="at least 2"):
        jgeo.christoffel(jgeo.FisherPullback(lambda z: z[:, None], "categorical"), x)
    with pytest.raises(ValueError, match="singular everywhere"):
        jgeo.christoffel(jgeo.FisherPullback(lambda z: z, "categorical"), x)  # K − 1 = 1 < 2
    with pytest.raises(TypeError, match="ambient"):
        jgeo.Pullback(lambda z: z, ambient=jnp.eye(2))
    with pytest.raises(ValueError, match="output dimension"):
        jgeo.christoffel(
            jgeo.Pullback(lambda z: jnp.concatenate([z, z]), ambient=jgeo.GaussianFisher(2)), x
        )
