"""`jgeo train` mechanics: outputs, exact resumption, divergence, bad input."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TINY_RUN

import jgeo
from jgeo import diagnostics, dynamics
from jgeo._io import remembered_interrupts
from jgeo.cli import main
from jgeo.experiment import run
from jgeo.report import _run as run_report
from jgeo.train import (
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    _loop,
    load_config,
    load_run,
    make_config,
    read_rows,
    train,
)

TINY = TINY_RUN


def rows_without_time(run: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k != "seconds"} for r in read_rows(run / "metrics.jsonl")
    ]


def test_the_default_run_is_digits_isometry_in_two_dimensions():
    config = TrainConfig()
    assert (config.data, config.regularizer, config.latent_dim) == ("digits", "isometry", 2)


def test_each_regularizer_has_its_own_default_weight_recorded_in_the_config():
    # From the sweep in bench/training.py: volume at isometry's 0.05 cost 1.6× the
    # reconstruction error on the swiss roll.
    volume = make_config({"regularizer": "volume"})
    assert (volume.weight, volume.warmup) == (0.002, 0.5)
    assert (TrainConfig().weight, TrainConfig().warmup) == (0.05, 0.1)
    assert make_config({"regularizer": "none"}).weight == 0.0
    assert make_config({"regularizer": "volume", "weight": 0.01}).weight == 0.01
    assert volume.to_dict()["weight"] == 0.002  # what config.json records
    assert make_config(volume.to_dict()) == volume


@pytest.mark.slow
def test_a_run_writes_metrics_checkpoints_report_and_figures(tmp_path):
    report = run(make_config(TINY), tmp_path, progress=False)
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ["loss", "recon_mse", "mcn", "vor", "logdet_var"]:
        assert all(np.isfinite(r[key]) for r in rows)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    for key in ["recon_mse", "mcn", "vor", "logdet_var", "spearman_geodesic", "geodesic_ratio"]:
        assert np.isfinite(report[key])
    assert -1 <= report["spearman_geodesic"] <= 1 and report["mcn"] >= 1
    for name in ["latent", "log_volume", "indicatrices", "geodesics"]:
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # Saves follow the clock (30 s by default): a run this short saves its last epoch.
    assert checkpoint_steps(tmp_path) == ["3"]


def checkpoint_steps(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.isdigit())


class FailsAt:
    """A callback that raises at one epoch, as a probe with a bug would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, step, params, *, epoch):
        if epoch == self.epoch:
            raise RuntimeError(f"callback failed at epoch {epoch}")


def test_checkpoints_follow_the_clock_and_a_stop_saves_the_last_completed_epoch(tmp_path):
    config = make_config({**TINY, "epochs": 4})
    # Every epoch (the last two kept).
    train(config, tmp_path / "every", progress=False, checkpoint_seconds=0)
    assert checkpoint_steps(tmp_path / "every") == ["3", "4"]
    # Never by the clock: an error in a callback during epoch 3 still keeps epoch 2 ...
    out = tmp_path / "clock"
    with pytest.raises(RuntimeError, match="epoch 3"):
        train(config, out, callbacks=[FailsAt(3)], progress=False,
              checkpoint_seconds=1e9)  # fmt: skip
    assert checkpoint_steps(out) == ["2"] and len(read_rows(out / "metrics.jsonl")) == 2
    # ... and the rerun resumes there and saves the last epoch.
    counting = Counting()
    train(config, out, callbacks=[counting], progress=False, checkpoint_seconds=1e9)
    assert [c[0] for c in counting.calls] == [3, 4] and checkpoint_steps(out) == ["2", "4"]
    with pytest.raises(ConfigError, match="checkpoint_seconds"):
        train(config, tmp_path / "bad", progress=False, checkpoint_seconds=-1)
    assert not (tmp_path / "bad").exists()
    # `keep_every`: the epochs divisible by it are saved whatever the clock, and kept.
    train(config, tmp_path / "kept", progress=False, checkpoint_seconds=1e9, keep_every=1)
    assert checkpoint_steps(tmp_path / "kept") == ["1", "2", "3", "4"]


def test_callbacks_are_callback_objects_or_plain_functions():
    class Legacy:  # the protocol before `Callback`: its `start` would never be called
        def start(self, step, params): ...

        def __call__(self, step, params, *, epoch): ...

    with pytest.raises(TypeError, match="subclass jgeo.train.Callback"):
        train(make_config(TINY), "unused", callbacks=[Legacy()])
    with pytest.raises(TypeError, match="`callbacks` must hold"):
        train(make_config(TINY), "unused", callbacks=[3])


class SwallowsCtrlC:
    """A callback in which Ctrl-C arrives and is dropped, as in a garbage-collector
    callback (jax registers one), where Python prints the exception and goes on."""

    def __call__(self, step, params, *, epoch):
        if epoch == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler runs here, between bytecodes
            except KeyboardInterrupt:
                pass


def test_a_ctrl_c_dropped_by_a_callback_still_stops_the_run_at_the_epochs_end(tmp_path):
    config = make_config({**TINY, "epochs": 6})
    out = tmp_path / "run"
    handler = signal.getsignal(signal.SIGINT)  # SIG_IGN in an xdist worker
    with pytest.raises(TrainingInterrupted, match="during epoch 3 of 6"):
        train(config, out, callbacks=[SwallowsCtrlC()], progress=False)
    assert checkpoint_steps(out) == ["2"] and len(read_rows(out / "metrics.jsonl")) == 2
    assert signal.getsignal(signal.SIGINT) == handler  # restored


class DropsCtrlC:
    """Ctrl-C sent from a `__del__`, where Python prints an exception raised and drops it
    (as in jax's garbage-collector callback, where Ctrl-C lands often)."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # its handler runs here, in the `__del__`


def test_a_ctrl_c_where_python_drops_exceptions_is_neither_printed_nor_lost(monkeypatch):
    unraisable = []  # what Python prints as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(KeyboardInterrupt), remembered_interrupts() as check:
        DropsCtrlC()
        time.sleep(0.5)  # sent again, it is raised here; else `check()` raises it
        check()
    assert unraisable == []


def test_a_ctrl_c_before_the_command_started_ends_it(capsys):
    # `_jgeo_command`, the console entry point, remembers one that came during the imports.
    assert main(["train", "--no-progress"], interrupted=lambda: True) == 130
    assert capsys.readouterr().err == "jgeo train: interrupted.\n"


def _drops_ctrl_c(function):
    """`function`, sending a Ctrl-C where Python drops exceptions first."""

    def wrapped(*args, **kwargs):
        DropsCtrlC()
        return function(*args, **kwargs)

    return wrapped


def _in_build(monkeypatch):
    monkeypatch.setattr(_loop, "build", _drops_ctrl_c(_loop.build))


def _in_an_epoch(monkeypatch):  # the diagnostics measured after each epoch's steps
    make = _loop.make_diagnose
    monkeypatch.setattr(_loop, "make_diagnose", lambda *a: _drops_ctrl_c(make(*a)))


def _in_the_report(monkeypatch):
    monkeypatch.setattr(run_report, "evaluate_run", _drops_ctrl_c(run_report.evaluate_run))


# (id, where Ctrl-C lands, what the one line on stderr says). It once went unnoticed in
# the report (exit code 0), and came with an "Exception ignored in ..." traceback.
CTRL_C_PHASES = [
    ("while-building-the-model", _in_build, "jgeo train: interrupted"),
    ("in-the-first-epoch", _in_an_epoch, "jgeo train: interrupted during epoch"),
    ("in-the-report", _in_the_report, "jgeo train: interrupted while writing the report; "
     "training is complete (its last checkpoint is kept in"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "where, message", [c[1:] for c in CTRL_C_PHASES], ids=[c[0] for c in CTRL_C_PHASES]
)
def test_a_ctrl_c_at_any_moment_ends_the_command_with_one_line(
    tmp_path, monkeypatch, capsys, where, message
):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    where(monkeypatch)
    config = tmp_path / "tiny.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    argv = ["train", "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 130
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(message) and unraisable == []


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    config = make_config({**TINY, "regularizer": "volume", "weight": 0.01, "probe_every": 1})
    run(config, tmp_path / "straight", progress=False, report=False)  # with the probes
    run(config, tmp_path / "resumed", progress=False, report=False, stop_after=1)
    assert len(read_rows(tmp_path / "resumed" / "metrics.jsonl")) == 1
    run(config, tmp_path / "resumed", progress=False, report=False)
    assert rows_without_time(tmp_path / "resumed") == rows_without_time(tmp_path / "straight")
    # The probes too: the resumed run's CKA to the previous probe comes from the stored codes.
    straight, resumed = dynamics.load(tmp_path / "straight"), dynamics.load(tmp_path / "resumed")
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop_time(resumed.rows) == drop_time(straight.rows)
    assert resumed.arrays.keys() == straight.arrays.keys()
    for name, value in straight.arrays.items():
        np.testing.assert_array_equal(resumed.arrays[name], value, err_msg=name)
    (_, _, a), (_, _, b) = load_run(tmp_path / "straight"), load_run(tmp_path / "resumed")
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(a(x), b(x))
    # A finished run is not trained again.
    before = (tmp_path / "resumed" / "metrics.jsonl").read_text()
    train(config, tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed" / "metrics.jsonl").read_text() == before


class Counting(jgeo.train.Callback):
    """A training callback that notes what it is called with."""

    def __init__(self):
        self.calls, self.starts, self.closed = [], [], 0

    def start(self, step, params):
        self.starts.append(step)

    def __call__(self, step, params, *, epoch):
        self.calls.append((epoch, step, sorted(params)))

    def close(self):
        self.closed += 1


@pytest.mark.slow
def test_callbacks_see_every_epoch_and_where_a_resumed_run_starts(tmp_path):
    config = make_config(TINY)
    steps = 256 // 64
    first, second = Counting(), Counting()
    train(config, tmp_path, callbacks=[first], progress=False, stop_after=2)
    train(config, tmp_path, callbacks=[second], progress=False)
    assert first.starts == [0] and second.starts == [2 * steps]
    assert [c[:2] for c in first.calls] == [(1, steps), (2, 2 * steps)]
    assert [c[:2] for c in second.calls] == [(3, 3 * steps)]
    assert first.calls[0][2] == ["decoder", "encoder"]  # the model's state, a pure dict
    assert first.closed == second.closed == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, regularizer", [("vae", "flat"), ("ae", "contractive"), ("ae", "curvature")]
)
def test_every_model_and_regularizer_trains(tmp_path, model, regularizer):
    config = make_config({**TINY, "epochs": 1, "model": model, "regularizer": regularizer})
    train(config, tmp_path, progress=False)
    (row,) = read_rows(tmp_path / "metrics.jsonl")
    assert np.isfinite(row["loss"]) and row["regularizer"] > 0


@pytest.mark.slow
def test_the_volume_regularizer_evens_out_log_volume(tmp_path):
    rows = {}
    for regularizer, weight in [("none", 0.0), ("volume", 1.0)]:
        config = make_config({**TINY, "epochs": 4, "regularizer": regularizer, "weight": weight})
        train(config, tmp_path / regularizer, progress=False)
        rows[regularizer] = read_rows(tmp_path / regularizer / "metrics.jsonl")[-1]
    assert rows["volume"]["logdet_var"] < 0.5 * rows["none"]["logdet_var"]


def test_a_directory_of_another_run_is_refused(tmp_path):
    train(make_config({**TINY, "epochs": 1}), tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"different configuration \(epochs: 1 → 2\)"):
        train(make_config({**TINY, "epochs": 2}), tmp_path, progress=False)


def test_a_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    make_epoch = _loop.make_epoch

    def poisoned(*args):
        epoch = make_epoch(*args)

        def run(params, opt_state, x, index):
            params, opt_state, (loss, mse, reg) = epoch(params, opt_state, x, index)
            if int(index) == 2:
                loss = loss.at[1].set(np.nan)
            return params, opt_state, (loss, mse, reg)

        return run

    monkeypatch.setattr(_loop, "make_epoch", poisoned)
    with pytest.raises(TrainingDiverged, match=r"at step 6 \(epoch 2\).*epoch 1"):
        train(make_config(TINY), tmp_path, progress=False)
    assert checkpoint_steps(tmp_path) == ["1"]  # saved when the loss diverged
    assert len(read_rows(tmp_path / "metrics.jsonl")) == 1


def test_config_files(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\ndata = "scurve"\nepochs = 5\nhidden = [16, 16]\nweight = 1\n')
    config = load_config(path, {"epochs": 7})
    assert (config.data, config.epochs, config.hidden, config.weight) == (
        "scurve",
        7,
        (16, 16),
        1.0,
    )
    cases = {
        "epochs = 'x'\n": "`epochs` must be an integer",
        "speed = 3\n": "unknown config key 'speed'",
        "data = [\n": "not valid TOML",
        "regularizer = 'sparse'\n": "unknown regularizer 'sparse'",
        "epochs = 0\n": "`epochs` must be positive",
        "warmup = 2\n": "`warmup` must be a fraction",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.slow
def test_cli_trains_digits_and_redraws_the_report(tmp_path, capsys):
    # The default model, as the main job (the conv model's run and report: test_data_file.py),
    # under a Bernoulli likelihood: the report, the diagnostics and the probes measure the
    # Fisher–Rao pullback of the decoder's logits, not JᵀJ.
    out = tmp_path / "digits"
    argv = [
        "train",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--likelihood",
        "bernoulli",
    ]
    assert main(argv) == 0
    assert "recon_mse" in capsys.readouterr().out
    config, data, model = load_run(out)
    report = json.loads((out / "report.json").read_text())
    assert config.likelihood == report["likelihood"] == "bernoulli"
    assert "Fisher" in report["latent_metric"]
    codes = jax.vmap(model.encode)(jnp.asarray(data.x[_loop.eval_index(config, len(data.x))]))
    summary = jax.jit(diagnostics.metric_summary)
    fisher = summary(jgeo.FisherPullback(model.decoder, "bernoulli"), codes)
    euclidean = summary(jgeo.Pullback(model.decoder), codes)
    assert np.isclose(report["logdet_mean"], fisher["logdet_mean"], rtol=1e-4)
    assert not np.isclose(report["logdet_mean"], euclidean["logdet_mean"], rtol=0.1)
    assert np.isclose(
        read_rows(out / "metrics.jsonl")[-1]["logdet_mean"], fisher["logdet_mean"], rtol=1e-4
    )
    probes = dynamics.load(out)
    (geometry,) = [p for p in probes.info["probes"] if p["probe"] == "PullbackGeometry"]
    assert geometry["options"]["likelihood"] == "bernoulli"  # the Fisher–Rao pullback
    last = jnp.asarray(probes.arrays["codes"][-1])
    logvol = jax.jit(jax.vmap(jgeo.FisherPullback(model.decoder, "bernoulli").log_volume))(last)
    assert np.isclose(probes.rows[-1]["logvol_mean"], float(jnp.mean(logvol)), rtol=1e-4)
    # the recon_mse is the squared error of the decoded mean σ(logits), in [0, 1]
    assert 0 < report["recon_mse"] < 0.25
    (out / "figures" / "interpolation.png").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "figures" / "interpolation.png").exists()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert main(["dynamics", str(out)]) == 0  # probes are on by default
    assert (out / "index.html").exists() and (out / "figures" / "dynamics_fields.gif").exists()
