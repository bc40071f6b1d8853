"""The likelihood of a run's decoder: its training loss, its decoded mean, and the latent
metric that matches it.

A decoder trained under a likelihood p(x | θ(z)) defines the latent metric Jᵀ F(θ) J,
the pullback of the Fisher information of that likelihood (Arvanitidis et al. 2022):

- `"gaussian"`: θ = μ, unit variance, loss ½‖x − μ‖² (up to constants, the MSE); F = I,
  so the metric is JᵀJ (`jgeo.Pullback`);
- `"bernoulli"`: θ = logits ℓ, p = σ(ℓ), loss the binary cross-entropy (data in [0, 1],
  e.g. pixel intensities); the metric is `jgeo.FisherPullback(decoder, "bernoulli")`,
  the Euclidean pullback of 2 arcsin √σ(ℓ).
"""

import jax
import jax.numpy as jnp
import optax

from .._fisher import FisherPullback
from .._pullback import AbstractPullback, Pullback

LIKELIHOODS = ("gaussian", "bernoulli")

METRIC_NAMES = {
    "gaussian": "pullback JᵀJ (the Fisher metric of a unit-variance Gaussian decoder)",
    "bernoulli": "Fisher–Rao pullback of the Bernoulli decoder (JᵀJ of 2 arcsin √σ(logits))",
}


def reconstruction_loss(output: jax.Array, x: jax.Array, likelihood: str) -> jax.Array:
    """The mean over a batch and its coordinates of the negative log-likelihood of `x`
    under the decoder's `output` (up to constants): the MSE, or the cross-entropy."""
    if likelihood == "bernoulli":
        return jnp.mean(optax.sigmoid_binary_cross_entropy(output, x))
    return jnp.mean((output - x) ** 2)


def decoded_mean(output: jax.Array, likelihood: str) -> jax.Array:
    """The mean of the decoded distribution: the output itself, or σ(logits)."""
    return jax.nn.sigmoid(output) if likelihood == "bernoulli" else output


def latent_metric(decoder, likelihood: str) -> AbstractPullback:
    """The latent metric of a decoder trained under `likelihood`. Its `immersion` is the
    map whose Euclidean pullback it is, which the regularizers take as their decoder."""
    if likelihood == "bernoulli":
        return FisherPullback(decoder, "bernoulli")
    return Pullback(decoder)
