from collections.abc import Callable

import jax
from flax import nnx

ACTIVATIONS: dict[str, Callable] = {
    # Smooth activations only: curvature needs second derivatives of the decoder.
    "silu": jax.nn.silu,
    "tanh": jax.numpy.tanh,
    "softplus": jax.nn.softplus,
    "gelu": jax.nn.gelu,
}


class MLP(nnx.Module):
    """Multi-layer perceptron `in_dim → hidden… → out_dim` with a linear last layer.

    **Arguments:**

    - `in_dim`, `out_dim`: input and output sizes.
    - `hidden`: widths of the hidden layers, e.g. (256, 256).
    - `activation`: one of "silu" (default), "tanh", "softplus", "gelu" — smooth, so the
      pullback metric has the derivatives curvature needs.
    - `rngs`: `nnx.Rngs` for the initialisation.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        *,
        activation: str = "silu",
        rngs: nnx.Rngs,
        param_dtype=jax.numpy.float32,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {', '.join(ACTIVATIONS)}, got {activation!r}."
            )
        sizes = (in_dim, *hidden, out_dim)
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, rngs=rngs, param_dtype=param_dtype)
                for a, b in zip(sizes[:-1], sizes[1:])
            ]
        )
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)
