"""The top of the local spectrum of a layer's metric over training: the decoder's
pullback on its latent codes, or the Fisher metric a classifier head pulls back onto a
hidden layer."""

from collections.abc import Callable, Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .. import FisherPullback, likelihoods, representation
from ._geometry import as_likelihood, latent_metric
from ._probe import AbstractProbe, Layout, ProbeInputs, Scalar


def _count(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"LocalSpectrum: `{name}` must be an integer ≥ {least}, got {value!r}.")


class LocalSpectrum(AbstractProbe):
    """The top of the local spectrum of a layer's metric at the fixed samples' codes,
    matrix-free (`jgeo.representation.local_spectrum`: Lanczos on products G v, never a
    d × d matrix, so it runs on layers of thousands of units): the mean largest
    eigenvalue (`spectrum_top`), the mean power-law exponent α of the top k, λᵢ ≈ c·i^(−α)
    (`spectrum_decay`), and the mean effective number of directions (Σλ)²/Σλ² of the top
    k (`spectrum_directions`); per sample, the eigenvalues `spectrum_values` (n, k) and
    their Ritz residuals `spectrum_residuals` (n, k) go to `dynamics.npz`.

    Which metric, per layer:

    - with a `head` for the layer: the Fisher metric of the classifier's prediction
      pulled back onto the layer, `FisherPullback(lambda h: head(params, h),
      "categorical")` — which directions of the layer change the decision; its rank is at
      most C − 1 for C classes, so eigenvalues beyond it read 0 and `spectrum_directions`
      stays below C − 1;
    - else, for a layer with a decoder (`Recorder(decode=...)`): the decoder's pullback
      (`likelihood` as in `PullbackGeometry`);
    - else the layer is skipped (`prepare` returns None).

    **Arguments:**

    - `k`: how many eigenvalues (at most the layer's width).
    - `steps`: Lanczos steps per sample (default max(3k, 32), at most the width); a flat
      top (random weights) needs several times k, and the residuals say which
      eigenvalues have converged.
    - `head`: `head(params, h) -> logits` (C,) of one flattened code `h` (d,) of the layer
      under the loop's parameters; one function for a single representation, or a dict
      `{layer: head}` for the layers that have one. None: decoders only.
    - `likelihood`: the decoder's likelihood, a `jgeo.likelihoods` object or its name,
      as in `PullbackGeometry` (None: JᵀJ of the decoder's flattened output).
    - `samples`: how many of the fixed samples (the first n: maxmin landmarks, spread
      over the data), or None for all of them; the cost is `steps` products per sample.
    """

    k: int = 8
    steps: int | None = None
    head: Callable | Mapping[str, Callable] | None = None
    likelihood: likelihoods.AbstractLikelihood | None = eqx.field(
        default=None, converter=as_likelihood
    )
    samples: int | None = 32

    scalars = {
        "spectrum_top": Scalar("largest metric eigenvalue", log=True),
        "spectrum_decay": Scalar("decay of the top eigenvalues (α)"),
        "spectrum_directions": Scalar("effective number of directions"),
    }
    group = "geometry"

    def __check_init__(self):
        _count("k", self.k, 1)
        if self.steps is not None:
            _count("steps", self.steps, self.k)
        if self.samples is not None:
            _count("samples", self.samples, 1)
        heads = self.head.values() if isinstance(self.head, Mapping) else [self.head]
        if not all(h is None or callable(h) for h in heads):
            raise ValueError(
                "LocalSpectrum: `head` must be a function head(params, h) -> logits, a dict "
                f"{{layer: head}} of them, or None; got {self.head!r}."
            )

    def prepare(self, layout: Layout) -> "LocalSpectrum | None":
        head = self.head.get(layout.layer) if isinstance(self.head, Mapping) else self.head
        if head is None and not layout.decoded:
            return None
        if self.k > layout.dim:
            raise ValueError(
                f"LocalSpectrum: `k` = {self.k} exceeds the width {layout.dim} of layer "
                f"{layout.layer!r}; choose k ≤ {layout.dim}."
            )
        steps = None if self.steps is None else min(self.steps, layout.dim)
        samples = layout.samples if self.samples is None else min(self.samples, layout.samples)
        return LocalSpectrum(
            k=self.k, steps=steps, head=head, likelihood=self.likelihood, samples=samples
        )

    def metric(self, inputs: ProbeInputs):
        """The metric of this (prepared) probe's layer under `inputs.params`."""
        if self.head is not None:
            head, params = self.head, inputs.params
            return FisherPullback(lambda h: head(params, h), "categorical")
        return latent_metric(inputs.decode, self.likelihood)

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        codes = inputs.codes[: self.samples]
        spectrum = representation.local_spectrum(
            self.metric(inputs), codes, self.k, key=inputs.key, steps=self.steps
        )
        return {
            "spectrum_top": jnp.mean(spectrum.values[:, 0]),
            "spectrum_decay": jnp.mean(spectrum.decay),
            "spectrum_directions": jnp.mean(spectrum.effective_dimension),
            "spectrum_values": spectrum.values,
            "spectrum_residuals": spectrum.residuals,
        }
