"""Gaussian decoder with an RBF variance network (Arvanitidis, Hansen & Hauberg 2018,
"Latent Space Oddity: on the Curvature of Deep Generative Models").

The precision is β(z) = W v(z) + ζ with RBF features vₖ(z) = exp(−λₖ ‖z − cₖ‖²) centred
on k-means clusters of the training codes and W ≥ 0. Far from the data v → 0, so the
standard deviation rises to ζ^{-1/2}: the expected metric J_μᵀJ_μ + J_σᵀJ_σ grows there,
and geodesics bend around regions without data.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class RBFVariance(nnx.Module):
    """σ(z) = (W v(z) + ζ)^{-1/2}, one standard deviation per output dimension.

    **Arguments:**

    - `centers`: RBF centres (K, d), e.g. k-means centres of the training codes.
    - `bandwidths`: λₖ (K,).
    - `out_dim`: D.
    - `floor`: ζ, the precision far from the data (σ → ζ^{-1/2} there).
    """

    def __init__(self, centers, bandwidths, out_dim: int, *, floor: float = 1e-2):
        centers = jnp.asarray(centers, jnp.float32)
        # Fixed by the data, not trained: plain Variables, not Params.
        self.centers = nnx.Variable(centers)
        self.bandwidths = nnx.Variable(jnp.asarray(bandwidths, jnp.float32))
        self.log_weights = nnx.Param(jnp.zeros((centers.shape[0], out_dim), jnp.float32))
        self.floor = floor

    def precision(self, z: jax.Array) -> jax.Array:
        centers = self.centers[...].reshape((1,) * (z.ndim - 1) + self.centers[...].shape)
        sq = jnp.sum((z[..., None, :] - centers) ** 2, axis=-1)
        bandwidths = self.bandwidths[...].reshape((1,) * (sq.ndim - 1) + (-1,))
        features = jnp.exp(-bandwidths * sq)
        return features @ jnp.exp(self.log_weights[...]) + self.floor

    def __call__(self, z: jax.Array) -> jax.Array:
        return jax.lax.rsqrt(self.precision(z))


class GaussianDecoder(nnx.Module):
    """p(x | z) = N(μ(z), diag σ(z)²). Calling it returns the mean μ(z);
    `jgeo.StochasticPullback(decoder.mean, decoder.std)` is its expected metric.
    `fit_rbf_variance` builds one from a trained mean decoder.

    **Arguments:**

    - `mean`: an NNX module Rᵈ → Rᴰ, the mean μ.
    - `std`: an NNX module Rᵈ → Rᴰ, the standard deviation σ > 0 (e.g. an `RBFVariance`).
    """

    def __init__(self, mean: nnx.Module, std: nnx.Module):
        self.mean = mean
        self.std = std

    def __call__(self, z: jax.Array) -> jax.Array:
        return self.mean(z)

    def log_likelihood(self, z: jax.Array, x: jax.Array) -> jax.Array:
        """log p(x | z), summed over the D dimensions."""
        sigma = self.std(z)
        r = (x - self.mean(z)) / sigma
        return jnp.sum(-0.5 * r**2 - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def fit_rbf_variance(
    mean: nnx.Module,
    codes,
    data,
    *,
    num_centers: int = 32,
    scale: float = 1.5,
    floor: float = 1e-2,
    steps: int = 500,
    learning_rate: float = 5e-2,
    seed: int = 0,
) -> GaussianDecoder:
    """Fit the RBF variance of a trained mean decoder by maximum likelihood.

    **Arguments:**

    - `mean`: the trained decoder μ (kept fixed).
    - `codes`, `data`: latent codes (N, d) of the training data (N, D).
    - `num_centers`: K, the number of k-means centres.
    - `scale`: bandwidth factor a: λₖ = ½ (a · mean distance of cluster k to its centre)⁻².
    - `floor`: ζ; `steps`, `learning_rate`: Adam on the weights W; `seed` for k-means.

    **Returns:** a `GaussianDecoder(mean, RBFVariance)`.
    """
    from sklearn.cluster import KMeans

    codes, data = np.asarray(codes, np.float32), np.asarray(data, np.float32)
    if codes.ndim != 2 or data.ndim != 2 or len(codes) != len(data):
        raise ValueError(
            "`codes` (N, d) and `data` (N, D) must have the same N, got "
            f"{codes.shape} and {data.shape}."
        )
    if not 1 <= num_centers <= len(codes):
        raise ValueError(f"`num_centers` must be in [1, {len(codes)}], got {num_centers}.")
    kmeans = KMeans(num_centers, n_init=4, random_state=seed).fit(codes)
    spread = np.array(
        [
            np.mean(np.linalg.norm(codes[kmeans.labels_ == k] - c, axis=-1))
            for k, c in enumerate(kmeans.cluster_centers_)
        ]
    )
    spread = np.maximum(spread, 1e-3 * np.mean(spread) + 1e-6)
    bandwidths = 0.5 / (scale * spread) ** 2
    std = RBFVariance(kmeans.cluster_centers_, bandwidths, data.shape[1], floor=floor)
    squared = (data - np.asarray(jax.vmap(mean)(codes))) ** 2  # μ is fixed: residuals once
    # Start every weight at the overall precision: Adam then only adjusts log-scales.
    std.log_weights[...] = jnp.full_like(std.log_weights[...], -np.log(squared.mean() + 1e-12))
    decoder = GaussianDecoder(mean, std)

    graphdef, params, rest = nnx.split(decoder, nnx.All(nnx.Param, nnx.PathContains("std")), ...)
    tx = optax.adam(learning_rate)

    def loss(p):
        model = nnx.merge(graphdef, p, rest)
        precision = model.std.precision(codes)
        return -jnp.mean(0.5 * jnp.log(precision) - 0.5 * precision * squared)

    @jax.jit
    def fit(p):
        def step(carry, _):
            p, state = carry
            grads = jax.grad(loss)(p)
            updates, state = tx.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        return jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[0][0]

    nnx.update(decoder, fit(params))
    return decoder
