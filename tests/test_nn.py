"""Flax NNX models plug into the kernels; the Gaussian decoder's variance grows off the data."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from flax import nnx

import jgeo
from jgeo.nn import MLP, VAE, Autoencoder, fit_rbf_variance, make_model


@pytest.mark.parametrize("kind", ["ae", "vae", "conv"])
def test_models_map_points_and_batches(kind):
    model = make_model(kind, 64, 3, hidden=(32, 32), image_shape=(8, 8))
    x = jnp.linspace(0, 1, 64, dtype=jnp.float32)
    assert model(x).shape == (64,) and model.encode(x).shape == (3,)
    batch = jnp.stack([x, 1 - x])
    assert np.allclose(model(batch)[1], model(1 - x), atol=1e-6)
    assert isinstance(model, VAE if kind == "vae" else Autoencoder)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ae", "conv"])
def test_decoders_are_metrics_with_fast_paths(kind):
    model = make_model(kind, 64, 2, hidden=(32, 32), image_shape=(8, 8))
    metric = jgeo.Pullback(model.decoder)
    z = jnp.array([0.2, -0.4], jnp.float32)
    fast = jgeo.gaussian_curvature(metric, z)
    reference = jgeo.gaussian_curvature(metric, z, method="autodiff")
    assert fast.dtype == jnp.float32
    assert np.allclose(fast, reference, rtol=2e-2, atol=1e-3 * abs(reference) + 1e-6)
    jac = jax.jacfwd(model.decoder)(z)
    assert np.allclose(metric(z), jac.T @ jac, rtol=1e-5)


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="`activation` must be one of"):
        MLP(2, 3, activation="relu", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`model` must be one of"):
        make_model("gan", 4, 2)
    with pytest.raises(ValueError, match='model "conv" needs image data'):
        make_model("conv", 4, 2)


@pytest.mark.slow
def test_rbf_variance_fits_noise_and_grows_off_the_data():
    mean = make_model("ae", 3, 2, hidden=(16,)).decoder
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(400, 2)).astype(np.float32)
    data = np.asarray(jax.vmap(mean)(codes)) + 0.1 * rng.normal(size=(400, 3))
    decoder = fit_rbf_variance(mean, codes, data, num_centers=10, steps=300)
    near = decoder.std(jnp.zeros(2, jnp.float32))
    far = decoder.std(jnp.full(2, 8.0, jnp.float32))
    assert np.allclose(near, 0.1, rtol=0.2)
    assert np.allclose(far, decoder.std.floor**-0.5, rtol=1e-3)
    # Where σ climbs from the noise level to the floor (the data's edge) its Jacobian
    # adds to the metric: a wall of volume; at the centre the mean's metric dominates.
    expected = jgeo.StochasticPullback(decoder.mean, decoder.std)
    mean_only = jgeo.Pullback(decoder.mean)
    ray = jnp.linspace(0, 6, 61, dtype=jnp.float32)[:, None] * jnp.array([[0.9, 0.45]], jnp.float32)
    gap = jax.vmap(lambda z: jgeo.log_volume(expected, z) - jgeo.log_volume(mean_only, z))(ray)
    assert gap[0] < 0.05 and gap.max() > 2
    # Fitted by maximum likelihood: better than the initial constant precision.
    assert jnp.mean(decoder.log_likelihood(jnp.asarray(codes), jnp.asarray(data))) > 0


def test_fit_rbf_variance_names_bad_shapes():
    mean = make_model("ae", 3, 2, hidden=(8,)).decoder
    with pytest.raises(ValueError, match="same N"):
        fit_rbf_variance(mean, np.zeros((5, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`num_centers` must be in"):
        fit_rbf_variance(mean, np.zeros((5, 2)), np.zeros((5, 3)), num_centers=6)


@pytest.mark.slow
def test_gradients_reach_nnx_decoder_parameters():
    model = make_model("ae", 5, 2, hidden=(8,))
    z = jr.normal(jr.key(0), (4, 2), jnp.float32)

    def loss(decoder):
        return jnp.var(jax.vmap(lambda p: jgeo.log_volume(jgeo.Pullback(decoder), p))(z))

    grads = nnx.grad(loss)(model.decoder)
    leaves = jax.tree_util.tree_leaves(nnx.to_pure_dict(grads))
    assert leaves and all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.any(g != 0) for g in leaves)
