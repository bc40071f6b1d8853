"""Regularizer estimators against their exact values and exact gradients."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import pytest
from helpers import mlp_decoder

from jgeo import _regularizers, regularizers as R

D_LATENT, D_DATA, BATCH = 3, 7, 6


@pytest.fixture
def setup(key):
    k1, k2 = jr.split(key)
    return mlp_decoder(k1, D_LATENT, D_DATA), jr.normal(k2, (BATCH, D_LATENT))


def metrics(decoder, z):
    jac = jax.vmap(jax.jacfwd(decoder))(z)
    return jnp.einsum("nai,naj->nij", jac, jac)


def exact_isometry(decoder, z):
    g = metrics(decoder, z)
    return jnp.mean(jnp.sum(g**2, axis=(1, 2))) / jnp.mean(jnp.trace(g, axis1=1, axis2=2)) ** 2


def exact_flat(decoder, z):
    g = metrics(decoder, z)
    c = jnp.mean(jnp.trace(g, axis1=1, axis2=2)) / z.shape[1]
    return jnp.mean(jnp.sum((g - c * jnp.eye(z.shape[1])[None]) ** 2, axis=(1, 2)))


def test_mixup_stays_on_segments_between_codes(key, setup):
    _, z = setup
    mixed = R.mixup(z, key, eta=0.0)
    # With eta = 0 every mixed point lies in the convex hull of two codes: inside the box.
    assert jnp.all(mixed >= z.min(0, keepdims=True) - 1e-12)
    assert jnp.all(mixed <= z.max(0, keepdims=True) + 1e-12)
    assert not jnp.allclose(mixed, z)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["isometry", "flat"])
def test_trace_estimators_match_exact_values(key, setup, name):
    decoder, z = setup
    fn, exact = (R.isometry, exact_isometry) if name == "isometry" else (R.flat, exact_flat)
    estimate = fn(decoder, z, key, probes=20000)
    key_mix, _ = jr.split(key)
    truth = exact(decoder, R.mixup(z, key_mix))
    assert abs(estimate - truth) < 0.03 * abs(truth)
    # One probe per point is noisy, but unbiased up to the ratio: same order of magnitude.
    assert 0.2 * truth < fn(decoder, z, key) < 5 * truth


def test_isometry_minimum_is_one_over_d_for_a_scaled_isometry(key):
    q, _ = jnp.linalg.qr(jr.normal(key, (D_DATA, D_LATENT)))
    z = jr.normal(key, (BATCH, D_LATENT))
    value = R.isometry(lambda x: 3.0 * q @ x, z, key, probes=50000)
    assert abs(value - 1 / D_LATENT) < 0.02 / D_LATENT
    assert R.flat(lambda x: 3.0 * q @ x, z, key) == pytest.approx(0.0, abs=1e-9)  # even one probe


@pytest.mark.slow
def test_volume_exact_and_stochastic(key, setup):
    decoder, z = setup
    logdets = jnp.linalg.slogdet(metrics(decoder, z))[1]
    assert jnp.allclose(R.volume(decoder, z, key), jnp.var(logdets), rtol=1e-10)
    stochastic = R.volume(decoder, z, key, probes=4000, steps=D_LATENT, exact_max_dim=0)
    assert abs(stochastic - jnp.var(logdets)) < 0.05 * jnp.var(logdets)


def test_lanczos_quadrature_is_exact_with_d_steps(key, setup):
    decoder, z = setup
    g = metrics(decoder, z)[0]
    lam, vecs = jnp.linalg.eigh(g)
    probe = jr.rademacher(key, (D_LATENT,), jnp.float64)
    expected = probe @ (vecs * jnp.log(lam)[None]) @ vecs.T @ probe
    assert jnp.allclose(
        _regularizers._logdet_lanczos(lambda u: g @ u, probe, D_LATENT), expected, rtol=1e-9
    )


def test_contractive_is_the_frobenius_norm_of_the_encoder_jacobian(key):
    encoder = mlp_decoder(key, D_DATA, D_LATENT)
    x = jr.normal(key, (BATCH, D_DATA))
    jac = jax.vmap(jax.jacfwd(encoder))(x)
    assert jnp.allclose(R.contractive(encoder, x), jnp.mean(jnp.sum(jac**2, axis=(1, 2))))


def exact_curvature(decoder, z):
    def one(z):
        ii = R.second_fundamental_form(decoder, z)
        mean_curv = jnp.einsum("aii->a", ii)
        return 2 * jnp.sum(ii**2) + jnp.sum(mean_curv**2)

    return jnp.mean(jax.vmap(one)(z))


def test_curvature_estimate_matches_the_second_fundamental_form(key, setup):
    decoder, z = setup
    estimate = R.curvature(decoder, z, key, probes=20000)
    truth = exact_curvature(decoder, z)
    assert abs(estimate - truth) < 0.03 * truth


def test_second_fundamental_form_of_a_sphere_and_a_plane(key):
    radius = 2.0

    def sphere(q):
        theta, phi = q
        return radius * jnp.stack(
            [jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)]
        )

    q = jnp.array([0.8, 0.3])
    ii = R.second_fundamental_form(sphere, q)
    normal = sphere(q) / radius
    # II = −(1/r) g n: the normal parts of the coordinate Hessian.
    g = jnp.diag(jnp.array([radius**2, (radius * jnp.sin(0.8)) ** 2]))
    assert jnp.allclose(ii, -jnp.einsum("a,ij->aij", normal, g) / radius, atol=1e-12)
    plane = jnp.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    assert R.curvature(lambda z: plane @ z, jr.normal(key, (4, 2)), key) == pytest.approx(
        0, abs=1e-20
    )


GRADIENT_CASES = {
    "isometry": (lambda f, z, k: R.isometry(f, z, k, probes=4000), exact_isometry),
    "flat": (lambda f, z, k: R.flat(f, z, k, probes=4000), exact_flat),
    "volume": (R.volume, lambda f, z: jnp.var(jnp.linalg.slogdet(metrics(f, z))[1])),
    "curvature": (lambda f, z, k: R.curvature(f, z, k, probes=4000), exact_curvature),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_in_decoder_weights_match_exact_gradients(key, setup, name):
    decoder, z = setup
    estimator, exact = GRADIENT_CASES[name]
    key_mix, _ = jr.split(key)
    points = R.mixup(z, key_mix) if name in ("isometry", "flat") else z
    grad_est = eqx.filter_grad(lambda f: estimator(f, z, key))(decoder)
    grad_true = eqx.filter_grad(lambda f: exact(f, points))(decoder)
    est, true = jax.flatten_util.ravel_pytree(eqx.filter((grad_est, grad_true), eqx.is_array))[
        0
    ].reshape(2, -1)
    assert jnp.linalg.norm(est - true) < 0.06 * jnp.linalg.norm(true)


def test_contractive_gradient_is_exact(key):
    encoder = mlp_decoder(key, D_DATA, D_LATENT)
    x = jr.normal(key, (BATCH, D_DATA))

    def exact(f):
        return jnp.mean(jnp.sum(jax.vmap(jax.jacfwd(f))(x) ** 2, axis=(1, 2)))

    grads = eqx.filter_grad(lambda f: R.contractive(f, x))(encoder)
    expected = eqx.filter_grad(exact)(encoder)
    leaves = jax.tree_util.tree_leaves(eqx.filter((grads, expected), eqx.is_array))
    half = len(leaves) // 2
    assert all(jnp.allclose(a, b, rtol=1e-9) for a, b in zip(leaves[:half], leaves[half:]))


@pytest.mark.parametrize("name", list(R.REGULARIZERS))
def test_a_single_point_is_rejected_with_the_fix(key, setup, name):
    decoder, z = setup
    with pytest.raises(ValueError, match="batch of shape"):
        R.REGULARIZERS[name](decoder, z[0], key)
