"""A small convolutional encoder/decoder pair for images with sides divisible by 4."""

import jax
from flax import nnx

from ._mlp import ACTIVATIONS


def _check_shape(image_shape) -> tuple[int, int, int]:
    """(H, W, C) of an `image_shape` (H, W) or (H, W, C), H and W divisible by 4."""
    if len(image_shape) not in (2, 3) or any(s % 4 for s in image_shape[:2]):
        raise ValueError(
            f"`image_shape` must be (H, W) or (H, W, C) with H and W divisible by 4, got "
            f"{tuple(image_shape)}; use the MLP model (--model ae) for other sizes."
        )
    return (*image_shape[:2], image_shape[2] if len(image_shape) == 3 else 1)


class ConvEncoder(nnx.Module):
    """Flattened (H·W·C,) images → Rᵈ: two stride-2 3×3 convolutions and a linear layer.

    **Arguments:**

    - `image_shape`: (H, W) or (H, W, C), H and W divisible by 4.
    - `latent_dim`: d.
    - `channels`: channels of the two convolutions.
    - `activation`: a smooth activation by name.
    - `rngs`: `nnx.Rngs` for the initialisation.
    """

    def __init__(self, image_shape, latent_dim, *, channels=(16, 32), activation="silu", rngs):
        self.image_shape = _check_shape(image_shape)
        height, width, colours = self.image_shape
        c1, c2 = channels
        self.conv1 = nnx.Conv(colours, c1, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, (3, 3), strides=2, rngs=rngs)
        self.out = nnx.Linear(c2 * (height // 4) * (width // 4), latent_dim, rngs=rngs)
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch = x.shape[:-1]
        h = x.reshape(-1, *self.image_shape)
        h = act(self.conv2(act(self.conv1(h))))
        return self.out(h.reshape(h.shape[0], -1)).reshape(*batch, -1)


class ConvDecoder(nnx.Module):
    """Rᵈ → flattened (H·W·C,) images: a linear layer and two stride-2 transposed
    convolutions.

    **Arguments:**

    - `latent_dim`: d.
    - `image_shape`: (H, W) or (H, W, C), H and W divisible by 4.
    - `channels`: channels of the two transposed convolutions.
    - `activation`: a smooth activation by name.
    - `rngs`: `nnx.Rngs` for the initialisation.
    """

    def __init__(self, latent_dim, image_shape, *, channels=(32, 16), activation="silu", rngs):
        self.image_shape = _check_shape(image_shape)
        height, width, colours = self.image_shape
        c1, c2 = channels
        self.c1 = c1
        self.inp = nnx.Linear(latent_dim, c1 * (height // 4) * (width // 4), rngs=rngs)
        self.up1 = nnx.ConvTranspose(c1, c2, (3, 3), strides=(2, 2), rngs=rngs)
        self.up2 = nnx.ConvTranspose(c2, colours, (3, 3), strides=(2, 2), rngs=rngs)
        self.activation = activation

    def __call__(self, z: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        batch = z.shape[:-1]
        h, w = (s // 4 for s in self.image_shape[:2])
        x = act(self.inp(z)).reshape(-1, h, w, self.c1)
        x = self.up2(act(self.up1(x)))
        return x.reshape(*batch, -1)
