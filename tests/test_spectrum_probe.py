"""`jgeo.dynamics.LocalSpectrum`: the top of a layer's local spectrum recorded over
training — the Fisher metric of a classifier head on its hidden layers, a decoder's
pullback on its latent — checked against `jgeo.representation.local_spectrum` called
directly on the same codes with the probe's key."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jgeo
from jgeo import dynamics
from jgeo.representation import local_spectrum

C, K, SEED = 4, 3, 0


class Net(eqx.Module):
    """10 → 12 → 8 → C: a classifier whose two hidden layers are recorded."""

    first: eqx.nn.Linear
    second: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jr.split(key, 3)
        self.first = eqx.nn.Linear(10, 12, key=k1)
        self.second = eqx.nn.Linear(12, 8, key=k2)
        self.out = eqx.nn.Linear(8, C, key=k3)

    def layers(self, x):
        hidden = jnp.tanh(self.first(x))
        return {"hidden": hidden, "features": jnp.tanh(self.second(hidden))}


def head_of_hidden(net, h):  # the logits from the first hidden layer's code
    return net.out(jnp.tanh(net.second(h)))


def head_of_features(net, h):
    return net.out(h)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((48, 10)), rng.integers(0, C, 48)


@eqx.filter_jit
def _fisher_spectrum(head, net, codes, key):
    metric = jgeo.FisherPullback(lambda h: head(net, h), "categorical")
    return local_spectrum(metric, codes, K, key=key)


def _recorded(tmp, data, params_by_step, probe, **recorder):
    x, labels = data
    with dynamics.Recorder(tmp, x, labels=labels, probes=[probe], samples=16,
                           random_samples=16, seed=SEED, **recorder) as rec:  # fmt: skip
        for step, params in params_by_step:
            rec(step, params)
    return dynamics.load(tmp)


@pytest.mark.slow
def test_a_classifier_head_on_each_hidden_layer(data, tmp_path):
    nets = [(1, Net(jr.key(1))), (2, Net(jr.key(2)))]
    heads = {"hidden": head_of_hidden, "features": head_of_features}
    probe = dynamics.LocalSpectrum(k=K, head=heads, samples=6)
    run = _recorded(tmp_path, data, nets, probe, encode=lambda net, x: net.layers(x))
    index = run.arrays["sample_index"][:6]
    for i, (step, net) in enumerate(nets):
        codes = jax.vmap(net.layers)(jnp.asarray(data[0][index]))
        key = jr.fold_in(jr.key(SEED), step)
        for layer, head in heads.items():
            direct = _fisher_spectrum(head, net, codes[layer], key)
            np.testing.assert_allclose(
                run.arrays[f"{layer}/spectrum_values"][i], direct.values, rtol=1e-8
            )
            row = run.rows[i]
            np.testing.assert_allclose(row[f"{layer}/spectrum_top"], direct.values[:, 0].mean())
            np.testing.assert_allclose(row[f"{layer}/spectrum_decay"], direct.decay.mean())
            directions = direct.effective_dimension.mean()
            np.testing.assert_allclose(row[f"{layer}/spectrum_directions"], directions)
            assert 1 <= directions <= C - 1  # the Fisher metric of C classes: rank ≤ C − 1
    # Declared for `jgeo dynamics`: its scalars in the geometry section.
    (declared,) = json.loads((tmp_path / "recorder.json").read_text())["probes"]
    assert declared["group"] == "geometry" and "spectrum_top" in declared["scalars"]
    assert declared["options"]["k"] == K


@pytest.mark.slow
def test_a_decoder_latent_and_layers_without_a_metric_are_skipped(data, tmp_path):
    key = jr.key(3)
    encoder, decoder = eqx.nn.MLP(10, 5, 16, 1, key=key), eqx.nn.MLP(5, 10, 16, 1, key=key)
    params = (encoder, decoder)
    probe = dynamics.LocalSpectrum(k=K, samples=None, steps=5)
    run = _recorded(tmp_path, data, [(1, params)], probe,
                    encode=lambda p, x: p[0](x), decode=lambda p, z: p[1](z))  # fmt: skip
    codes = jax.vmap(encoder)(jnp.asarray(data[0][run.arrays["sample_index"]]))
    direct = local_spectrum(jgeo.Pullback(decoder), codes, K, key=jr.fold_in(jr.key(SEED), 1),
                            steps=5)  # fmt: skip
    assert run.arrays["spectrum_values"].shape == (1, 16, K)  # all 16 samples
    np.testing.assert_allclose(run.arrays["spectrum_values"][0], direct.values, rtol=1e-8)
    np.testing.assert_allclose(run.arrays["spectrum_residuals"][0], direct.residuals, atol=1e-8)
    # Without a decoder or a head, the probe applies to no layer, and says so.
    with pytest.raises(ValueError, match="applies to no layer"):
        _recorded(tmp_path / "none", data, [(1, params)], probe, encode=lambda p, x: p[0](x))


def test_prepare_per_layer():
    layout = dict(samples=16, labels=None, num_classes=0, every=1, seed=0, rng=None,
                  sample_index=None, random_index=None)  # fmt: skip
    probe = dynamics.LocalSpectrum(k=4, head={"a": head_of_features}, samples=32, steps=40)
    ready = probe.prepare(dynamics.Layout(layer="a", dim=8, decoded=False, **layout))
    assert ready.head is head_of_features and ready.samples == 16 and ready.steps == 8
    assert probe.prepare(dynamics.Layout(layer="b", dim=8, decoded=False, **layout)) is None
    decoded = probe.prepare(dynamics.Layout(layer="b", dim=8, decoded=True, **layout))
    assert decoded.head is None  # the decoder's pullback
    with pytest.raises(ValueError, match="`k` = 4 exceeds the width 3"):
        probe.prepare(dynamics.Layout(layer="a", dim=3, decoded=False, **layout))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "`k` must be an integer ≥ 1"),
        ({"k": 4, "steps": 2}, "`steps` must be an integer ≥ 4"),
        ({"samples": 0}, "`samples`"),
        ({"likelihood": "normal"}, "`likelihood`"),
        ({"head": {"a": 3}}, "`head` must be a function"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dynamics.LocalSpectrum(**kwargs)
