"""Likelihood objects: the loss is the negative log-likelihood up to constants, the mean
is the decoded distribution's, and the latent metric is the Fisher–Rao pullback."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jgeo
from jgeo import likelihoods

RNG = np.random.default_rng(0)
X_UNIT = RNG.uniform(0.05, 0.95, size=(4, 6))  # intensities
X_COUNTS = RNG.poisson(3.0, size=(4, 6)).astype(float)
X_ONE_HOT = np.eye(6)[RNG.integers(0, 6, size=4)]
X_REAL = RNG.normal(size=(4, 6))


def scipy_nll(name, output, x):
    """-log p(x | output) from scipy.stats, per coordinate (per row for categorical)."""
    if name == "gaussian":
        return -stats.norm.logpdf(x, loc=output)
    if name == "gaussian-mean-std":
        return -stats.norm.logpdf(x, loc=output[0], scale=output[1])
    if name == "bernoulli":  # the cross-entropy of a soft target: E_x[-log Bernoulli]
        p = 1 / (1 + np.exp(-output))
        return -(x * np.log(p) + (1 - x) * np.log1p(-p))
    if name == "categorical":
        p = np.exp(output) / np.exp(output).sum(-1, keepdims=True)
        return -np.sum(x * np.log(p), axis=-1)
    if name == "poisson":
        return -stats.poisson.logpmf(x, np.exp(output))
    raise AssertionError(name)


CASES = [  # (likelihood, output, data, the factor between nll and mean(-log p))
    (likelihoods.Gaussian(), RNG.normal(size=(4, 6)), X_REAL, 2.0),  # the MSE: 2 × ½‖·‖²
    (likelihoods.GaussianMeanStd(), (RNG.normal(size=(4, 6)), RNG.uniform(0.5, 2, (4, 6))),
     X_REAL, 1.0),
    (likelihoods.Bernoulli(), RNG.normal(size=(4, 6)), X_UNIT, 1.0),
    (likelihoods.Categorical(), RNG.normal(size=(4, 6)), X_ONE_HOT, 1.0),
    (likelihoods.Poisson(), RNG.normal(size=(4, 6)), X_COUNTS, 1.0),
]  # fmt: skip


@pytest.mark.parametrize(
    "likelihood, output, x, factor", CASES, ids=lambda c: getattr(c, "name", "")
)
def test_the_loss_is_the_negative_log_likelihood_up_to_constants(likelihood, output, x, factor):
    def nll_of(out):
        return float(likelihood.nll(jax.tree.map(jnp.asarray, out), jnp.asarray(x)))

    def reference(out):
        return float(np.mean(scipy_nll(likelihood.name, out, x)))

    # The same up to a constant (in the output) and a factor: compare differences.
    other = jax.tree.map(lambda a: a + 0.3 * RNG.normal(size=np.shape(a)), output)
    if likelihood.name == "gaussian-mean-std":
        other = (other[0], np.abs(other[1]) + 0.5)
    measured = nll_of(output) - nll_of(other)
    expected = reference(output) - reference(other)
    if likelihood.name == "gaussian":  # (x − μ)² against ½ (x − μ)²
        expected *= factor
    np.testing.assert_allclose(measured, expected, rtol=1e-10)


def test_means_of_the_decoded_distributions():
    logits = jnp.asarray(RNG.normal(size=(3, 5)))
    np.testing.assert_allclose(likelihoods.Bernoulli().mean(logits), 1 / (1 + np.exp(-logits)))
    np.testing.assert_allclose(likelihoods.Categorical().mean(logits).sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(likelihoods.Poisson().mean(logits), np.exp(logits))
    assert likelihoods.GaussianMeanStd().mean((logits, logits**2)) is logits


def test_latent_metrics_are_the_fisher_rao_pullbacks():
    w = jnp.asarray(RNG.normal(size=(6, 3)))

    def decoder(z):
        return jnp.tanh(w @ z)

    z = jnp.asarray([0.3, -0.2, 0.5])
    for likelihood in [likelihoods.Bernoulli(), likelihoods.Categorical(), likelihoods.Poisson()]:
        expected = jgeo.FisherPullback(decoder, likelihood.name)(z)
        np.testing.assert_allclose(likelihood.latent_metric(decoder)(z), expected, rtol=1e-12)
    np.testing.assert_allclose(
        likelihoods.Gaussian().latent_metric(decoder)(z), jgeo.Pullback(decoder)(z), rtol=1e-12
    )
    # A decoder of images: the unit Gaussian's metric is JᵀJ of the flattened output.
    image = likelihoods.Gaussian().latent_metric(lambda z: decoder(z).reshape(2, 3))
    np.testing.assert_allclose(image(z), jgeo.Pullback(decoder)(z), rtol=1e-12)


def test_names_and_errors():
    assert likelihoods.names() == (
        "gaussian", "gaussian-mean-std", "bernoulli", "categorical", "poisson"
    )  # fmt: skip
    assert isinstance(likelihoods.get("bernoulli"), likelihoods.Bernoulli)
    poisson = likelihoods.Poisson()
    assert likelihoods.get(poisson) is poisson
    with pytest.raises(ValueError, match="`likelihood` must be a jgeo.likelihoods object"):
        likelihoods.get("laplace")
    with pytest.raises(ValueError, match="`likelihood` must be"):
        jgeo.dynamics.PullbackGeometry(likelihood="gauss")
