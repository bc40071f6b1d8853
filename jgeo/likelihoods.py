"""Likelihoods of a decoder, as objects: what a decoder's output means.

A decoder z ↦ θ(z) trained under a likelihood p(x | θ) has three things that depend on
that likelihood, and each object holds all three:

- `nll(output, x)`: the training loss, the negative log-likelihood of the data (mean
  over the batch and the coordinates, up to constants);
- `mean(output)`: the mean of the decoded distribution (what a reconstruction is);
- `latent_metric(decoder)`: the latent metric the decoder defines, Jᵀ F(θ) J, the
  pullback of the likelihood's Fisher information (Arvanitidis et al. 2022).

| object | output θ | loss | latent metric |
|---|---|---|---|
| `Gaussian()` | mean μ (unit variance) | ½‖x − μ‖² (the MSE) | JᵀJ (`Pullback`) |
| `GaussianMeanStd()` | a pair (μ, σ) | −log N(x; μ, σ²) | `FisherPullback(f, "gaussian")` |
| `Bernoulli()` | logits, x in [0, 1] | binary cross-entropy | `FisherPullback(f, "bernoulli")` |
| `Categorical()` | logits, last axis | cross-entropy | `FisherPullback(f, "categorical")` |
| `Poisson()` | log-rates η, x ≥ 0 | e^η − x η | `FisherPullback(f, "poisson")` |

`jgeo train --likelihood NAME` and the probes that take a `likelihood`
(`jgeo.dynamics.PullbackGeometry`, `ClassGeodesics`) name them by `name`: `get(name)`
returns the object.
"""

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from ._fisher import FisherPullback
from ._pullback import AbstractPullback, Pullback

__all__ = (
    "AbstractLikelihood",
    "Bernoulli",
    "Categorical",
    "Gaussian",
    "GaussianMeanStd",
    "Poisson",
    "get",
    "names",
)


class AbstractLikelihood(eqx.Module):
    """A likelihood p(x | θ) of the parameters θ a decoder outputs.

    **Class attributes:** `name`, how commands and config files name it; `metric_name`,
    a one-line description of its latent metric (for reports).
    """

    name: ClassVar[str]
    metric_name: ClassVar[str]

    @abc.abstractmethod
    def nll(self, output, x: Array) -> Array:
        """The negative log-likelihood of the batch `x` under the decoder's `output`,
        averaged over the batch and its coordinates, up to constants."""

    @abc.abstractmethod
    def mean(self, output) -> Array:
        """The mean of the decoded distribution, of the shape of the data."""

    @abc.abstractmethod
    def latent_metric(self, decoder: Callable) -> AbstractPullback:
        """The pullback of this likelihood's Fisher information through `decoder` (a
        function of one latent point). Its `immersion` is the map whose Euclidean
        pullback it is, where there is one (the regularizers take it)."""


def _flattened_output(decoder: Callable, z: Array) -> Array:
    """The decoder's output, of any shape, as a vector (what `Pullback` takes)."""
    return jnp.ravel(decoder(z))


class Gaussian(AbstractLikelihood):
    """N(x; μ, I): the decoder outputs the mean (any shape); the loss is the mean
    squared error (½‖x − μ‖² up to constants and a factor); the metric JᵀJ of the
    flattened output (`Pullback`)."""

    name: ClassVar[str] = "gaussian"
    metric_name: ClassVar[str] = (
        "pullback JᵀJ (the Fisher metric of a unit-variance Gaussian decoder)"
    )

    def nll(self, output, x):
        return jnp.mean((output - x) ** 2)

    def mean(self, output):
        return output

    def latent_metric(self, decoder):
        # a Partial: a PyTree of the decoder's arrays, compared by identity (an
        # equinox Module wrapping a Flax one would compare its arrays under jit)
        return Pullback(jax.tree_util.Partial(_flattened_output, decoder))


class GaussianMeanStd(AbstractLikelihood):
    """N(x; μ, σ²) with a decoded standard deviation: the decoder outputs a pair
    `(mean, std)`, std > 0; the metric is the pullback of the Gaussian's hyperbolic
    Fisher metric, `FisherPullback(decoder, "gaussian")`."""

    name: ClassVar[str] = "gaussian-mean-std"
    metric_name: ClassVar[str] = "Fisher–Rao pullback of the (mean, std) Gaussian decoder"

    def nll(self, output, x):
        mean, std = output
        return jnp.mean(jnp.log(std) + 0.5 * ((x - mean) / std) ** 2)

    def mean(self, output):
        return output[0]

    def latent_metric(self, decoder):
        return FisherPullback(decoder, "gaussian")


class Bernoulli(AbstractLikelihood):
    """Bernoulli(σ(ℓ)) per coordinate, for data in [0, 1] (pixel intensities): the
    decoder outputs logits; the loss is the binary cross-entropy; the metric the
    Fisher–Rao pullback, JᵀJ of 2 arcsin √σ(ℓ)."""

    name: ClassVar[str] = "bernoulli"
    metric_name: ClassVar[str] = (
        "Fisher–Rao pullback of the Bernoulli decoder (JᵀJ of 2 arcsin √σ(logits))"
    )

    def nll(self, output, x):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(output, x))

    def mean(self, output):
        return jax.nn.sigmoid(output)

    def latent_metric(self, decoder):
        return FisherPullback(decoder, "bernoulli")


class Categorical(AbstractLikelihood):
    """softmax(ℓ) over the last axis, for data that are class probabilities (one-hot
    or soft) on that axis: the decoder outputs logits; the loss is the cross-entropy
    (mean over the other axes); the metric JᵀJ of 2 √softmax(ℓ)."""

    name: ClassVar[str] = "categorical"
    metric_name: ClassVar[str] = "Fisher–Rao pullback of the categorical decoder (JᵀJ of 2 √p)"

    def nll(self, output, x):
        return jnp.mean(optax.softmax_cross_entropy(output, x))

    def mean(self, output):
        return jax.nn.softmax(output, axis=-1)

    def latent_metric(self, decoder):
        return FisherPullback(decoder, "categorical")


class Poisson(AbstractLikelihood):
    """Poisson(e^η) per coordinate, for counts: the decoder outputs log-rates η; the
    loss is e^η − x η (the negative log-likelihood without log x!); the metric JᵀJ of
    2 √λ."""

    name: ClassVar[str] = "poisson"
    metric_name: ClassVar[str] = "Fisher–Rao pullback of the Poisson decoder (JᵀJ of 2 √λ)"

    def nll(self, output, x):
        return jnp.mean(jnp.exp(output) - x * output)

    def mean(self, output):
        return jnp.exp(output)

    def latent_metric(self, decoder):
        return FisherPullback(decoder, "poisson")


_BUILT_IN = {cls.name: cls for cls in (Gaussian, GaussianMeanStd, Bernoulli, Categorical, Poisson)}


def names() -> tuple[str, ...]:
    """The names of the built-in likelihoods."""
    return tuple(_BUILT_IN)


def get(likelihood: "str | AbstractLikelihood", name: str = "likelihood") -> AbstractLikelihood:
    """The likelihood object of a name (`"gaussian"`, `"bernoulli"`, ...), or
    `likelihood` itself if it is one.

    **Raises:** `ValueError` naming the argument `name` for anything else."""
    if isinstance(likelihood, AbstractLikelihood):
        return likelihood
    if isinstance(likelihood, str) and likelihood in _BUILT_IN:
        return _BUILT_IN[likelihood]()
    raise ValueError(
        f"`{name}` must be a jgeo.likelihoods object or one of {', '.join(_BUILT_IN)}, got "
        f"{likelihood!r}."
    )
