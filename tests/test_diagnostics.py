"""Diagnostics on metrics whose answers are known."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jgeo
from jgeo import diagnostics as D


@pytest.fixture
def linear(key):
    a = jr.normal(key, (5, 2))
    return a, jgeo.Pullback(lambda z: a @ z), jr.normal(jr.fold_in(key, 1), (10, 2))


@pytest.mark.slow
def test_linear_decoder_is_flat_and_constant(linear):
    a, metric, zs = linear
    lam = jnp.linalg.eigvalsh(a.T @ a)
    assert jnp.allclose(D.mean_condition_number(metric, zs), lam[1] / lam[0])
    assert D.variance_of_riemannian_metric(metric, zs) == pytest.approx(0, abs=1e-20)
    assert jnp.allclose(D.log_volumes(metric, zs), jnp.linalg.slogdet(a.T @ a)[1])
    ratios, geodesics = jax.jit(D.geodesic_ratios)(metric, zs[:3], zs[3:6])
    assert jnp.all(geodesics.converged) and jnp.allclose(ratios, 1.0, rtol=1e-6)


def test_vor_is_the_mean_squared_affine_invariant_distance_to_the_mean():
    scales = jnp.array([1.0, 2.0, 4.0])
    metric = jgeo.MetricField(lambda z: jnp.diag(jnp.stack([jnp.exp(z[0]), 1.0 + 0 * z[0]])), dim=2)
    zs = jnp.stack([jnp.log(scales), jnp.zeros(3)], -1)
    mean = np.mean(scales)  # Ḡ = diag(mean, 1): d²(G, Ḡ) = log²(s / mean)
    expected = np.mean(np.log(np.asarray(scales) / mean) ** 2)
    assert D.variance_of_riemannian_metric(metric, zs) == pytest.approx(expected, rel=1e-10)
    assert D.mean_condition_number(metric, zs) == pytest.approx(np.mean([1, 2, 4]))


@pytest.mark.slow
def test_geodesics_are_shorter_than_straight_lines_on_a_sphere():
    metric = jgeo.StereographicSphere(2, 1.0)
    starts, ends = jnp.array([[-1.5, 0.3], [0.2, -1.0]]), jnp.array([[1.5, 0.3], [0.4, 1.2]])
    ratios, geodesics = D.geodesic_ratios(metric, starts, ends)
    assert jnp.all(geodesics.converged) and jnp.all(ratios < 1)
    assert geodesics.curve.shape == (2, 16, 2)


def test_spearman():
    a = np.arange(10.0)
    assert D.spearman(a, a**3) == pytest.approx(1) and D.spearman(a, -a) == pytest.approx(-1)
    with pytest.raises(ValueError, match="same length"):
        D.spearman(a, a[:3])
    codes = np.random.default_rng(0).normal(size=(20, 2))
    truth = 3 * np.linalg.norm(codes[:, None] - codes[None], axis=-1)
    assert D.distance_spearman(codes, truth) == pytest.approx(1)


def test_summary_agrees_with_the_single_measures(key):
    decoder = lambda z: jnp.stack([z[0], z[1], z[0] * z[1], jnp.sin(z[0])])  # noqa: E731
    metric, zs = jgeo.Pullback(decoder), jr.normal(key, (12, 2))
    summary = D.metric_summary(metric, zs)
    logdets = D.log_volumes(metric, zs)
    assert jnp.allclose(summary["mcn"], D.mean_condition_number(metric, zs))
    assert jnp.allclose(summary["vor"], D.variance_of_riemannian_metric(metric, zs))
    assert jnp.allclose(summary["logdet_var"], jnp.var(logdets))
    assert jnp.allclose(logdets, 2 * jax.vmap(lambda z: jgeo.log_volume(metric, z))(zs))
