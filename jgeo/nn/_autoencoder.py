import jax
import jax.numpy as jnp
from flax import nnx

from ._conv import ConvDecoder, ConvEncoder
from ._mlp import MLP

MODELS = ("ae", "vae", "conv")


class Autoencoder(nnx.Module):
    """Deterministic autoencoder: `decoder(encoder(x))`.

    **Arguments:** `encoder` (Rᴰ → Rᵈ) and `decoder` (Rᵈ → Rᴰ), any NNX modules.
    """

    def __init__(self, encoder: nnx.Module, decoder: nnx.Module):
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.encoder(x))


class VAE(nnx.Module):
    """Variational autoencoder with a diagonal Gaussian posterior (Kingma & Welling 2014).

    The encoder outputs 2d numbers: the posterior mean and log-variance. `encode` gives
    the mean, which is the latent code used for geometry.

    **Arguments:**

    - `encoder`: an NNX module Rᴰ → R²ᵈ (mean and log-variance).
    - `decoder`: an NNX module Rᵈ → Rᴰ.
    """

    def __init__(self, encoder: nnx.Module, decoder: nnx.Module):
        self.encoder = encoder
        self.decoder = decoder

    def posterior(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Mean and log-variance of q(z | x)."""
        mean, log_var = jnp.split(self.encoder(x), 2, axis=-1)
        return mean, log_var

    def encode(self, x: jax.Array) -> jax.Array:
        return self.posterior(x)[0]

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.encode(x))


def make_model(
    kind: str,
    data_dim: int,
    latent_dim: int,
    *,
    hidden: tuple[int, ...] = (256, 256),
    activation: str = "silu",
    image_shape: tuple[int, int] | None = None,
    seed: int = 0,
) -> Autoencoder | VAE:
    """An autoencoder by name.

    **Arguments:**

    - `kind`: `"ae"` (MLP autoencoder), `"vae"` (MLP VAE) or `"conv"` (convolutional
      autoencoder for images of `image_shape`).
    - `data_dim`: D, the flattened size of one data point.
    - `latent_dim`: d.
    - `hidden`: widths of the MLPs' hidden layers (the decoder mirrors the encoder).
    - `activation`: a smooth activation: `"silu"`, `"tanh"`, `"softplus"` or `"gelu"`
      (curvature needs second derivatives).
    - `image_shape`: (H, W) or (H, W, C), for `"conv"` (H and W divisible by 4).
    - `seed`: the initialisation seed.

    **Returns:** an `Autoencoder` or a `VAE`.

    **Raises:** `ValueError` for an unknown kind, or `"conv"` without `image_shape`.
    """
    rngs = nnx.Rngs(seed)
    if kind == "ae":
        encoder = MLP(data_dim, latent_dim, hidden, activation=activation, rngs=rngs)
        decoder = MLP(latent_dim, data_dim, hidden[::-1], activation=activation, rngs=rngs)
        return Autoencoder(encoder, decoder)
    if kind == "vae":
        encoder = MLP(data_dim, 2 * latent_dim, hidden, activation=activation, rngs=rngs)
        decoder = MLP(latent_dim, data_dim, hidden[::-1], activation=activation, rngs=rngs)
        return VAE(encoder, decoder)
    if kind == "conv":
        if image_shape is None:
            raise ValueError('model "conv" needs image data (e.g. --data digits).')
        return Autoencoder(
            ConvEncoder(image_shape, latent_dim, activation=activation, rngs=rngs),
            ConvDecoder(latent_dim, image_shape, activation=activation, rngs=rngs),
        )
    raise ValueError(f"`model` must be one of {', '.join(MODELS)}, got {kind!r}.")
