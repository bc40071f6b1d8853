"""The decoder the bench scripts measure: a tanh MLP d → 256 → 256 → 784."""

import equinox as eqx
import jax.numpy as jnp


def decoder(key, d: int = 2, dtype=None) -> eqx.nn.MLP:
    """`dtype` None is equinox's default (float64 under x64, else float32)."""
    return eqx.nn.MLP(d, 784, 256, depth=2, activation=jnp.tanh, key=key, dtype=dtype)
