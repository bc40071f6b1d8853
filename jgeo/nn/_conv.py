"""A small convolutional encoder/decoder pair for images with sides divisible by 4."""

import math

import jax
from flax import nnx

from ._mlp import ACTIVATIONS


def _check_shape(image_shape):
    if len(image_shape) != 2 or any(s % 4 for s in image_shape):
        raise ValueError(
            f"`image_shape` must be (H, W) with H and W divisible by 4, got {image_shape}."
        )


class ConvEncoder(nnx.Module):
    """Flattened (H·W,) images → Rᵈ: two stride-2 3×3 convolutions and a linear layer."""

    def __init__(self, image_shape, latent_dim, *, channels=(16, 32), activation="silu", rngs):
        _check_shape(image_shape)
        self.image_shape = tuple(image_shape)
        c1, c2 = channels
        self.conv1 = nnx.Conv(1, c1, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, (3, 3), strides=2, rngs=rngs)
        self.out = nnx.Linear(c2 * math.prod(s // 4 for s in image_shape), latent_dim, rngs=rngs)
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch = x.shape[:-1]
        h = x.reshape(-1, *self.image_shape, 1)
        h = act(self.conv2(act(self.conv1(h))))
        return self.out(h.reshape(h.shape[0], -1)).reshape(*batch, -1)


class ConvDecoder(nnx.Module):
    """Rᵈ → flattened (H·W,) images: a linear layer and two stride-2 transposed convolutions."""

    def __init__(self, latent_dim, image_shape, *, channels=(32, 16), activation="silu", rngs):
        _check_shape(image_shape)
        self.image_shape = tuple(image_shape)
        c1, c2 = channels
        self.c1 = c1
        self.inp = nnx.Linear(latent_dim, c1 * math.prod(s // 4 for s in image_shape), rngs=rngs)
        self.up1 = nnx.ConvTranspose(c1, c2, (3, 3), strides=(2, 2), rngs=rngs)
        self.up2 = nnx.ConvTranspose(c2, 1, (3, 3), strides=(2, 2), rngs=rngs)
        self.activation = activation

    def __call__(self, z: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch = z.shape[:-1]
        h, w = (s // 4 for s in self.image_shape)
        x = act(self.inp(z)).reshape(-1, h, w, self.c1)
        x = self.up2(act(self.up1(x)))
        return x.reshape(*batch, -1)
