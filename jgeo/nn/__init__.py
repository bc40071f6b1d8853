"""Flax NNX models whose decoders plug straight into `jgeo.Pullback`.

Every model maps one point to one point (batch dimensions are allowed, not required),
so `jgeo.Pullback(model.decoder)` is the latent metric of a trained model.
"""

from ._autoencoder import (
    MODELS as MODELS,
    VAE as VAE,
    Autoencoder as Autoencoder,
    make_model as make_model,
)
from ._conv import ConvDecoder as ConvDecoder, ConvEncoder as ConvEncoder
from ._gaussian import (
    GaussianDecoder as GaussianDecoder,
    RBFVariance as RBFVariance,
    fit_rbf_variance as fit_rbf_variance,
)
from ._mlp import ACTIVATIONS as ACTIVATIONS, MLP as MLP
