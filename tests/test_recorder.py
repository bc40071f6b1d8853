"""`jgeo.dynamics.Recorder` in your own training loop: an equinox classifier and a Flax
NNX VAE trained with plain optax loops, compiled once, resumed, drawn by `jgeo dynamics`."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jgeo import dynamics
from jgeo._io import RunLocked
from jgeo.cli import main
from jgeo.data import load
from jgeo.experiment import run
from jgeo.train import TrainConfig


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.mark.slow
def test_training_and_dynamics_do_not_import_each_other_nor_the_report():
    # The loop calls callbacks; the Recorder is one. Neither package needs the other, and
    # the report sits above both (DESIGN.md's layers).
    pairs = [("jgeo.train", "jgeo.dynamics"), ("jgeo.dynamics", "jgeo.train"),
             ("jgeo.train", "jgeo.report"), ("jgeo.dynamics", "jgeo.report")]  # fmt: skip
    for package, other in pairs:
        code = f"import sys, {package}; assert {other!r} not in sys.modules, {other!r}"
        subprocess.run([sys.executable, "-c", code], check=True)


class Classifier(eqx.Module):
    """An MLP whose penultimate layer is the representation we record."""

    features: eqx.nn.MLP
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.features = eqx.nn.MLP(64, 8, 32, 1, activation=jnp.tanh, key=k1)
        self.head = eqx.nn.Linear(8, 10, key=k2)

    def __call__(self, x):
        return self.head(jnp.tanh(self.features(x)))


def classifier_steps(digits, steps: int):
    """A plain optax loop training `Classifier` on digits: yields (step, model, loss)."""
    model = Classifier(jax.random.key(0))
    optimiser = optax.adam(3e-3)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
    x, y = jnp.asarray(digits.x), jnp.asarray(digits.labels)

    @eqx.filter_jit
    def update(model, opt_state, xb, yb):
        def loss(model):
            logits = jax.vmap(model)(xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, opt_state = optimiser.update(grads, opt_state)
        return eqx.apply_updates(model, updates), opt_state, value

    rng = np.random.default_rng(0)
    for step in range(1, steps + 1):
        batch = rng.choice(len(x), 128, replace=False)
        model, opt_state, loss = update(model, opt_state, x[batch], y[batch])
        yield step, model, loss


@pytest.mark.slow
def test_an_equinox_classifier_in_a_plain_optax_loop(digits, tmp_path):
    traces = []

    def encode(model, x):  # the penultimate layer of one image; params = the module itself
        traces.append(1)  # runs only while jax traces
        return jnp.tanh(model.features(x))

    out = tmp_path / "classifier"
    with dynamics.Recorder(out, digits, encode=encode, every=5, samples=64) as recorder:
        for step, model, _ in classifier_steps(digits, 100):
            row = recorder(step, model)
            assert (row is None) == (step % 5 != 0)
            if step == 5:
                traced = len(traces)
    # Compiled once: 19 more probes with new parameters traced nothing again.
    assert len(traces) == traced
    record = dynamics.load(out)
    assert record.arrays["steps"].tolist() == list(range(5, 101, 5))
    assert record.arrays["codes"].shape == (20, 64, 8) and "epochs" not in record.arrays
    assert "logvol_mean" not in record.rows[0] and "ratios" not in record.arrays  # no decoder
    np.testing.assert_array_equal(
        record.arrays["labels"], digits.labels[record.arrays["sample_index"]]
    )
    assert record.info["data_shape"] == [1797, 64]
    # The features settle as the classifier trains: CKA between probes rises towards 1.
    cka = record.series("cka_previous")
    assert np.isnan(cka[0]) and cka[-1] > 0.95 and cka[-1] > cka[1]
    assert main(["dynamics", str(out)]) == 0
    page = (out / "index.html").read_text()
    for name in ["scalars", "trajectories", "persistence"]:
        assert f"dynamics_{name}.png" in page
    assert "dynamics_fields" not in page and "<th>step</th>" in page


class MeanNorm(dynamics.AbstractProbe):
    """A probe written outside jgeo: the mean norm of the codes."""

    def __call__(self, inputs: dynamics.ProbeInputs) -> dict[str, jax.Array]:
        return {"mean_norm": jnp.linalg.norm(inputs.codes, axis=-1).mean()}


@pytest.mark.slow
def test_your_own_probe_on_every_layer_of_a_classifier_beside_the_built_ins(digits, tmp_path):
    traces = []

    def encode(model, x):  # two layers of one image
        traces.append(1)  # runs only while jax traces
        hidden = jnp.tanh(model.features.layers[0](x))
        return {"hidden": hidden, "penultimate": jnp.tanh(model.features(x))}

    probes = [MeanNorm(), dynamics.PersistentHomology(), dynamics.CKAToPrevious()]
    out = tmp_path / "layers"
    with dynamics.Recorder(out, digits, encode=encode, probes=probes, every=5,
                           samples=32) as recorder:  # fmt: skip
        for step, model, loss in classifier_steps(digits, 30):
            recorder(step, model, scalars={"loss": loss})
            if step == 5:
                traced = len(traces)
    assert len(traces) == traced  # one program for every probe of both layers
    record = dynamics.load(out)
    row = record.rows[-1]
    assert record.layers == ["hidden", "penultimate"]
    for layer in record.layers:  # each probe on each layer, keyed "<layer>/<name>"
        assert row[f"{layer}/mean_norm"] > 0 and row[f"{layer}/betti0"] >= 1
        assert 0 < row[f"{layer}/cka_previous"] <= 1 + 1e-6
        assert record.layer(layer).diagram(0, 5).shape[1] == 2
    assert row["loss"] == pytest.approx(float(loss))  # the loop's own number
    assert [p["probe"] for p in record.info["probes"]] == [
        "MeanNorm", "PersistentHomology", "CKAToPrevious"
    ]  # fmt: skip
    assert main(["dynamics", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "<th>hidden/mean_norm</th>" in page and "<th>penultimate/mean_norm</th>" in page
    assert "<th>loss</th>" in page


class VAE(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.encoder = nnx.Sequential(
            nnx.Linear(64, 64, rngs=rngs), jnp.tanh, nnx.Linear(64, 4, rngs=rngs)
        )
        self.decoder = nnx.Sequential(
            nnx.Linear(2, 64, rngs=rngs), jnp.tanh, nnx.Linear(64, 64, rngs=rngs)
        )

    def posterior(self, x):
        mean, log_var = jnp.split(self.encoder(x), 2, axis=-1)
        return mean, log_var


def _train_vae(digits, out, steps, recorder_kwargs, start=0, state=None):
    """A VAE trained by its own loop for `steps`, recorded into `out`; returns the state."""
    model = VAE(nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    optimiser = optax.adam(2e-3)
    params = params if state is None else state[0]
    opt_state = optimiser.init(params) if state is None else state[1]

    def encode(params, x):  # the posterior mean of one input
        return nnx.merge(graphdef, params).posterior(x)[0]

    def decode(params, z):
        return nnx.merge(graphdef, params).decoder(z)

    @jax.jit
    def update(params, opt_state, xb, key):
        def loss(params):
            vae = nnx.merge(graphdef, params)
            mean, log_var = vae.posterior(xb)
            z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
            kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1 - log_var, -1)
            return jnp.mean(jnp.sum((vae.decoder(z) - xb) ** 2, -1) + 0.1 * kl)

        grads = jax.grad(loss)(params)
        updates, opt_state = optimiser.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    x = jnp.asarray(digits.x)
    recorder = dynamics.Recorder(out, digits.x, encode=encode, decode=decode, labels=digits.labels,
                                 **recorder_kwargs)  # fmt: skip
    with recorder:
        for step in range(start + 1, start + steps + 1):
            key = jax.random.key(step)
            batch = jax.random.choice(key, len(x), (128,), replace=False)
            params, opt_state = update(params, opt_state, x[batch], key)
            recorder(step, params)
    return params, opt_state


@pytest.mark.slow
def test_a_flax_nnx_vae_recorded_with_its_decoder_and_resumed(digits, tmp_path):
    probes = [*dynamics.default_probes(decoder=False, labels=True),
              dynamics.PullbackGeometry(pairs=3, grid=8)]  # fmt: skip
    options = dict(every=20, samples=48, probes=probes)
    out = tmp_path / "vae"
    state = _train_vae(digits, out, 120, options)
    record = dynamics.load(out)
    assert record.arrays["steps"].tolist() == [20, 40, 60, 80, 100, 120]
    assert record.arrays["log_volume"].shape == (6, 8, 8) and record.arrays["ratios"].shape == (
        6,
        3,
    )
    row = record.rows[-1]
    assert np.isfinite(row["logvol_mean"]) and row["mcn"] >= 1 and row["geodesics_converged"] == 3
    labels = record.arrays["labels"]
    pairs = record.arrays["pairs"][-1]  # the same pairs at every probe
    assert np.all(record.arrays["pairs"] == pairs)
    assert np.all(labels[pairs[:, 0]] != labels[pairs[:, 1]])  # geodesics between classes

    # Resume as a loop does from a checkpoint at step 80: the probes after it are
    # recorded again, the ones before are kept as they were.
    before = dynamics.load(out)
    _train_vae(digits, out, 60, options, start=80, state=state)
    after = dynamics.load(out)
    assert after.arrays["steps"].tolist() == [20, 40, 60, 80, 100, 120, 140]
    np.testing.assert_array_equal(after.arrays["codes"][:4], before.arrays["codes"][:4])
    assert [r["step"] for r in after.rows] == after.arrays["steps"].tolist()
    assert set(after.arrays["h0"][:, 0]) == set(after.arrays["steps"])

    assert main(["dynamics", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "dynamics_fields.png" in page and page.count("<tr>") == 8

    with pytest.raises(dynamics.DynamicsError, match="another probe set"):
        dynamics.Recorder(out, digits.x, encode=lambda p, x: x[:2], samples=32)


def _encode(params, x):
    return jnp.tanh(params["w"] @ x)


@pytest.fixture
def params():
    return {"w": jax.random.normal(jax.random.key(0), (3, 64)) / 8}


def test_a_recorder_refuses_steps_that_go_back_and_use_after_close(digits, params, tmp_path):
    recorder = dynamics.Recorder(tmp_path, digits, encode=_encode, every=2, samples=16)
    assert recorder(1, params) is None and recorder(2, params)["step"] == 2
    with pytest.raises(dynamics.DynamicsError, match="steps must increase"):
        recorder(2, params)
    recorder.close()
    recorder.close()  # closing twice is harmless
    with pytest.raises(dynamics.DynamicsError, match="closed"):
        recorder(4, params)
    # A new recorder starting at step 2 again records it again (the loop resumed at 1).
    with dynamics.Recorder(tmp_path, digits, encode=_encode, every=2, samples=16) as again:
        again(2, {"w": 2 * params["w"]})
        again(4, params)
    assert dynamics.load(tmp_path).arrays["steps"].tolist() == [2, 4]


def test_a_second_writer_of_a_directory_in_this_process_is_refused(digits, params, tmp_path):
    # Two writers of one directory would each rewrite the other's probes: the second is
    # refused as another process's would be, and the first records on, unharmed.
    first = dynamics.Recorder(tmp_path, digits, encode=_encode, samples=16)
    first(1, params)
    holder = rf"in use by `jgeo.dynamics.Recorder\({tmp_path}\)` in this process"
    with pytest.raises(RunLocked, match=holder):
        dynamics.Recorder(tmp_path, digits, encode=_encode, samples=16)
    # Nor may a run take the directory its caller's Recorder writes (the run's own
    # probes would replace the caller's): refused before anything trains.
    with pytest.raises(RunLocked, match=holder):
        run(TrainConfig(epochs=1), tmp_path, callbacks=[first], progress=False)
    first(2, params)
    first.close()
    assert dynamics.load(tmp_path).arrays["steps"].tolist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock",
        "dynamics.jsonl",
        "dynamics.npz",
        "recorder.json",
    ]
    with dynamics.Recorder(tmp_path, digits, encode=_encode, samples=16) as again:  # freed
        again(3, params)


def test_parameters_of_another_code_size_are_named_and_the_recorder_records_on(
    digits, params, tmp_path
):
    # With `pairs=0` (no geodesics) a decoder's metric is still probed.
    decode = lambda p, z: p["w"].T @ z  # noqa: E731
    geometry = dynamics.PullbackGeometry(pairs=0, grid=0)
    with dynamics.Recorder(tmp_path, digits, encode=_encode, decode=decode, samples=16,
                           probes=[dynamics.Codes(), geometry]) as recorder:  # fmt: skip
        assert recorder(1, params)["geodesic_ratio"] is None
        wider = {"w": jnp.concatenate([params["w"], params["w"][:1]])}
        with pytest.raises(
            dynamics.DynamicsError, match=r"layers \{'': 3\}; `encode` now gives \{'': 4\}"
        ):
            recorder(2, wider)
        assert np.isfinite(recorder(3, params)["mcn"])
    assert dynamics.load(tmp_path).arrays["steps"].tolist() == [1, 3]


def _loss(params, batch):
    return jnp.mean(batch**2)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(encode=None), "`encode` must be a function"),
        (dict(decode=3), "`decode` must be a function"),
        (dict(every=0), "`every` must be an integer ≥ 1"),
        (dict(samples=4), "`samples` must be an integer ≥ 8"),
        (dict(data=np.zeros((5, 3))), r"`data` must be a numeric array \(N ≥ 8"),
        (dict(data=np.full((20, 3), np.nan)), "NaN or infinite"),
        (dict(labels=np.zeros(7, int)), r"`labels` must be integer classes of shape \(1797,\)"),
        (dict(labels=np.r_[-1, np.zeros(1796, int)]), r"found -1 \(1 point\); -1 does not mark"),
        (dict(labels=np.r_[2**32 + 1, np.zeros(1796, int)]), r"found 4294967297 \(1 point\)"),
        (dict(probes=[lambda inputs: {}]), "`probes` must be jgeo.dynamics.AbstractProbe"),
    ],
)
def test_bad_recorder_arguments_name_the_argument(digits, tmp_path, change, message):
    arguments = {"data": digits.x, "encode": _encode, "samples": 16, **change}
    with pytest.raises(ValueError, match=message):
        dynamics.Recorder(tmp_path / "probes", **arguments)
    assert not (tmp_path / "probes").exists()  # nothing written


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: dynamics.PullbackGeometry(grid=1), "`grid` must be 0"),
        (lambda: dynamics.PullbackGeometry(pairs=-1), "`pairs` must be an integer ≥ 0"),
        (
            lambda: dynamics.PullbackGeometry(likelihood="beta"),
            "`likelihood` must be a jgeo.likelihoods object or one of gaussian",
        ),
        (lambda: dynamics.LossLandscape(3, np.zeros(4)), "`loss` must be a function"),
        (lambda: dynamics.LossLandscape(_loss, np.zeros(4), probes=2), "`probes` must be"),
        (lambda: dynamics.Every(0, dynamics.Codes()), "`n` must be an integer ≥ 1"),
        (lambda: dynamics.Every(2, lambda inputs: {}), "`probe` must be a jgeo.dynamics"),
    ],
)
def test_bad_probe_arguments_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(probes=[dynamics.PullbackGeometry()]), "PullbackGeometry applies to no layer"),
        (dict(probes=[dynamics.ClassStructure()]), "ClassStructure needs class labels"),
        (
            dict(probes=[dynamics.Every(6, dynamics.Codes())], every=4),
            r"6 must be a multiple of the Recorder's `every` \(4\)",
        ),  # fmt: skip
        (dict(decode={"h": lambda p, z: z}), r"`decode` names layers \['h'\]"),
        (dict(encode=lambda p, x: {"a/b": _encode(p, x)}), "keys must be layer names"),
        (
            dict(encode=lambda p, x: {"a": _encode(p, x)}, decode=lambda p, z: z),
            "give `decode` as a dict",
        ),  # fmt: skip
    ],
)
def test_probes_that_do_not_fit_the_model_are_named_at_the_first_probe(
    digits, params, tmp_path, change, message
):
    arguments = {"data": digits.x, "encode": _encode, "samples": 16, **change}
    with dynamics.Recorder(tmp_path, **arguments) as recorder:
        with pytest.raises(ValueError, match=message):
            recorder(4, params)
    assert not (tmp_path / "dynamics.jsonl").exists()  # nothing recorded


def test_encode_that_does_not_fit_the_data_is_named(digits, params, tmp_path):
    recorder = dynamics.Recorder(tmp_path, digits.x, encode=lambda p, x: p["w"] @ x[:3], samples=16)
    with pytest.raises(
        ValueError, match=r"`encode\(params, x\)` fails on one input of shape \(64,\)"
    ):
        recorder(1, params)
    recorder.close()
    images = digits.x.reshape(-1, 8, 8)
    with dynamics.Recorder(tmp_path / "b", images, encode=lambda p, x: x, decode=lambda p, z: z,
                           samples=16) as recorder:  # fmt: skip
        with pytest.raises(ValueError, match="must return a vector"):
            recorder(1, params)


def test_in_the_background_a_recorder_records_the_same_probes(digits, params, tmp_path):
    rows = {}
    for background in (False, True):
        with dynamics.Recorder(tmp_path / str(background), digits, encode=_encode, samples=16,
                               background=background) as recorder:  # fmt: skip
            for step in range(1, 6):
                returned = recorder(step, {"w": params["w"] * step})
                assert (returned is None) == background  # the row is written, not returned
        record = dynamics.load(tmp_path / str(background))
        rows[background] = [{k: v for k, v in r.items() if k != "seconds"} for r in record.rows]
    assert rows[True] == rows[False] and len(rows[True]) == 5
    # A probe that fails in the background raises at the next call (or at close).
    recorder = dynamics.Recorder(
        tmp_path / "nan", digits, encode=_encode, samples=16, background=True
    )
    recorder(1, {"w": params["w"] * np.nan})
    with pytest.raises(ValueError, match="probe at step 1: .*NaN"):
        recorder(2, params)
    recorder.close()


@pytest.mark.slow
def test_class_geodesics_recorded_and_drawn(digits, tmp_path):
    keep = digits.labels < 3
    x, labels = digits.x[keep], digits.labels[keep]
    key1, key2 = jax.random.split(jax.random.key(0))
    params = {"enc": jax.random.normal(key1, (2, 64)) / 8, "dec": jax.random.normal(key2, (64, 2))}

    def encode(p, x):
        return jnp.tanh(p["enc"] @ x)

    def decode(p, z):
        return jnp.tanh(p["dec"] @ z)

    probes = [dynamics.Codes(), dynamics.PullbackGeometry(grid=4), dynamics.ClassGeodesics()]
    with dynamics.Recorder(tmp_path, x, encode=encode, decode=decode, labels=labels, samples=24,
                           probes=probes) as recorder:  # fmt: skip
        recorder(1, params)
        recorder(2, {"enc": 1.5 * params["enc"], "dec": params["dec"]})
    record = dynamics.load(tmp_path)
    distances = record.arrays["class_distances"]
    assert distances.shape == (2, 3, 3) and np.allclose(distances, np.swapaxes(distances, 1, 2))
    # The decoder stretches (‖J‖ ≫ 1): geodesic distances exceed the coordinate ones.
    assert np.all(distances[:, 0, 1:] > record.arrays["class_distances_euclidean"][:, 0, 1:])
    assert record.rows[0]["class_ratio"] > 0 and record.rows[0]["class_ratio_euclidean"] > 0
    assert main(["dynamics", str(tmp_path)]) == 0
    assert "dynamics_classes.png" in (tmp_path / "index.html").read_text()
    with dynamics.Recorder(tmp_path / "b", x, encode=encode, decode=decode,
                           probes=[dynamics.ClassGeodesics()]) as recorder:  # fmt: skip
        with pytest.raises(ValueError, match="ClassGeodesics needs class labels"):
            recorder(1, params)
