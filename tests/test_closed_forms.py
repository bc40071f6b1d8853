"""Closed forms: every kernel on manifolds whose geometry is known exactly.

Both paths (the metric's fast path, "auto", and nested autodiff, "autodiff") must hit
the textbook values.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from helpers import (
    lower,
    random_points,
    space_form_riemann_lower,
    sphere_embedding,
    sphere_metric_matrix,
    torus_embedding,
    tree_allclose,
)

import jgeo

METHODS = ["auto", "autodiff"]


def sphere_metrics(radius):
    return {
        "pullback": jgeo.Pullback(sphere_embedding(radius)),
        "field": jgeo.MetricField(sphere_metric_matrix(radius), dim=2),
    }


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["pullback", "field"])
@pytest.mark.parametrize("radius", [0.5, 2.0])
def test_sphere_in_spherical_coordinates(kind, radius, method):
    metric = sphere_metrics(radius)[kind]
    theta, phi = 0.7, -1.3
    x = jnp.array([theta, phi])
    s, c = jnp.sin(theta), jnp.cos(theta)

    # Γ^θ_φφ = −sin θ cos θ, Γ^φ_θφ = Γ^φ_φθ = cot θ, all others vanish.
    expected_gamma = jnp.zeros((2, 2, 2)).at[0, 1, 1].set(-s * c)
    expected_gamma = expected_gamma.at[1, 0, 1].set(c / s).at[1, 1, 0].set(c / s)
    assert tree_allclose(jgeo.christoffel(metric, x, method=method), expected_gamma)

    g = jnp.diag(jnp.array([radius**2, (radius * s) ** 2]))
    assert tree_allclose(metric(x), g)
    k = 1 / radius**2
    riemann = jgeo.riemann(metric, x, method=method)
    assert tree_allclose(lower(g, riemann), space_form_riemann_lower(g, k))
    assert tree_allclose(riemann[0, 1, 0, 1], jnp.asarray(s**2))  # R^θ_φθφ = sin² θ
    assert tree_allclose(jgeo.ricci(metric, x, method=method), g / radius**2)
    assert tree_allclose(jgeo.scalar_curvature(metric, x, method=method), jnp.asarray(2 * k))
    assert tree_allclose(jgeo.gaussian_curvature(metric, x, method=method), jnp.asarray(k))
    u, v = jnp.array([0.3, 1.1]), jnp.array([-0.8, 0.4])
    assert tree_allclose(jgeo.sectional_curvature(metric, x, u, v, method=method), jnp.asarray(k))
    # √det g = r² sin θ
    assert tree_allclose(jgeo.log_volume(metric, x, method=method), jnp.log(radius**2 * s))


@pytest.mark.parametrize("method", METHODS)
def test_torus_gaussian_curvature(method):
    big, small = 2.0, 0.7
    metric = jgeo.Pullback(torus_embedding(big, small))
    for theta in [0.0, 1.0, 2.5, 3.14]:
        x = jnp.array([theta, 0.4])
        expected = jnp.cos(theta) / (small * (big + small * jnp.cos(theta)))
        assert tree_allclose(jgeo.gaussian_curvature(metric, x, method=method), expected)


SPACE_FORMS = [
    (jgeo.PoincareBall(3), -1.0, 0.4),
    (jgeo.PoincareBall(4), -1.0, 0.3),
    (jgeo.PoincareHalfSpace(3), -1.0, None),
    (jgeo.StereographicSphere(3, radius=2.0), 0.25, 1.5),
    (jgeo.StereographicSphere(2, radius=0.5), 4.0, 0.5),
]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("metric, curvature, scale", SPACE_FORMS)
def test_space_forms(metric, curvature, scale, method, key):
    d = metric.dim
    kx, ku, kv = jr.split(key, 3)
    if scale is None:  # half-space: last coordinate positive
        x = jr.uniform(kx, (d,), minval=0.2, maxval=2.0)
    else:
        x = random_points(kx, 1, d, scale=scale / jnp.sqrt(d))[0]
    g = metric(x)
    riemann = jgeo.riemann(metric, x, method=method)
    assert tree_allclose(lower(g, riemann), space_form_riemann_lower(g, curvature))
    assert tree_allclose(jgeo.ricci(metric, x, method=method), curvature * (d - 1) * g)
    expected_scalar = jnp.asarray(curvature * d * (d - 1))
    assert tree_allclose(jgeo.scalar_curvature(metric, x, method=method), expected_scalar)
    u, v = jr.normal(ku, (d,)), jr.normal(kv, (d,))
    sectional = jgeo.sectional_curvature(metric, x, u, v, method=method)
    assert tree_allclose(sectional, jnp.asarray(curvature))


def test_analytic_metric_matrices():
    x = jnp.array([0.1, -0.2, 0.3])
    sq = x @ x
    assert tree_allclose(jgeo.Euclidean(3)(x), jnp.eye(3))
    assert tree_allclose(jgeo.PoincareBall(3)(x), (2 / (1 - sq)) ** 2 * jnp.eye(3))
    assert tree_allclose(jgeo.PoincareHalfSpace(3)(x), jnp.eye(3) / 0.3**2)
    expected = (2 * 4.0 / (4.0 + sq)) ** 2 * jnp.eye(3)
    assert tree_allclose(jgeo.StereographicSphere(3, radius=2.0)(x), expected)


@pytest.mark.parametrize("method", METHODS)
def test_euclidean_is_flat(method):
    metric, x = jgeo.Euclidean(3), jnp.array([0.1, 2.0, -3.0])
    assert tree_allclose(jgeo.christoffel(metric, x, method=method), jnp.zeros((3, 3, 3)))
    assert tree_allclose(jgeo.riemann(metric, x, method=method), jnp.zeros((3,) * 4))
    assert tree_allclose(jgeo.log_volume(metric, x, method=method), jnp.asarray(0.0))


@pytest.mark.parametrize("method", METHODS)
def test_linear_decoder_is_flat(method, key):
    ka, kb, kx, kv = jr.split(key, 4)
    a, b = jr.normal(ka, (7, 3)), jr.normal(kb, (7,))
    metric = jgeo.Pullback(lambda z: a @ z + b)
    x, v = jr.normal(kx, (3,)), jr.normal(kv, (3,))
    assert tree_allclose(metric(x), a.T @ a)
    zeros = dict(atol=1e-9)
    assert tree_allclose(jgeo.christoffel(metric, x, method=method), jnp.zeros((3,) * 3), **zeros)
    assert tree_allclose(jgeo.geodesic_acceleration(metric, x, v), jnp.zeros(3), **zeros)
    assert tree_allclose(jgeo.riemann(metric, x, method=method), jnp.zeros((3,) * 4), **zeros)
    assert tree_allclose(jgeo.scalar_curvature(metric, x, method=method), jnp.asarray(0.0), **zeros)
    expected = 0.5 * jnp.linalg.slogdet(a.T @ a)[1]  # log √det AᵀA
    assert tree_allclose(jgeo.log_volume(metric, x, method=method), expected)


@pytest.mark.parametrize("method", METHODS)
def test_product_of_sphere_and_hyperbolic_plane(method):
    metric = jgeo.Product(jgeo.StereographicSphere(2, radius=2.0), jgeo.PoincareBall(2))
    x = jnp.array([0.3, -0.5, 0.2, 0.1])
    g = metric(x)
    assert tree_allclose(g[:2, 2:], jnp.zeros((2, 2)))
    assert tree_allclose(jgeo.scalar_curvature(metric, x, method=method), jnp.asarray(0.5 - 2.0))
    e = jnp.eye(4)
    planes = [(e[0], e[1], 0.25), (e[2], e[3], -1.0), (e[0], e[2], 0.0), (e[1], e[3], 0.0)]
    for u, v, k in planes:
        assert tree_allclose(
            jgeo.sectional_curvature(metric, x, u, v, method=method), jnp.asarray(k), atol=1e-9
        )
    volume = jgeo.log_volume(metric, x, method=method)
    assert tree_allclose(volume, 0.5 * jnp.linalg.slogdet(g)[1])


def test_stochastic_pullback_is_expected_metric(key):
    km, ks, kx = jr.split(key, 3)
    wm, ws = jr.normal(km, (6, 3)), jr.normal(ks, (6, 3))
    mean = lambda z: jnp.tanh(wm @ z)  # noqa: E731
    std = lambda z: jnp.exp(0.3 * ws @ z)  # noqa: E731
    metric = jgeo.StochasticPullback(mean, std)
    x = jr.normal(kx, (3,))
    jm, js = jax.jacfwd(mean)(x), jax.jacfwd(std)(x)
    assert tree_allclose(metric(x), jm.T @ jm + js.T @ js)
    # A constant std adds nothing: the expected metric is the mean's pullback.
    constant = jgeo.StochasticPullback(mean, lambda z: jnp.ones(6) + 0.0 * jnp.sum(z))
    assert tree_allclose(constant(x), jgeo.Pullback(mean)(x))
    assert tree_allclose(jgeo.riemann(constant, x), jgeo.riemann(jgeo.Pullback(mean), x), atol=1e-9)
