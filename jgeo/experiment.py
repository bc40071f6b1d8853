"""A `jgeo train` run from Python: training (`jgeo.train`) with the learning-dynamics
probes its config asks for (`jgeo.dynamics`).

`jgeo.train.train` trains and calls callbacks; this module, above both packages,
attaches the `Recorder` that `config.probe_every`, `probe_samples`, `probe_pairs` and
`probe_grid` describe, and probes a finished run's kept checkpoints again
(`probe_checkpoints`). The command line runs `run` and `probe_checkpoints`.
"""

import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import jax.random as jr
from flax import nnx

from . import likelihoods
from ._io import RunError, run_lock
from .dynamics import (
    ClassGeodesics,
    Every,
    LearningRate,
    LossLandscape,
    PullbackGeometry,
    Recorder,
    default_probes,
    probe_directory,
)
from .report import write_run_report
from .train import (
    CHECKPOINT_SECONDS,
    Callback,
    CheckpointError,
    Checkpoints,
    ConfigError,
    TrainConfig,
    TrainingInterrupted,
    build,
    eval_index,
    learning_rate_schedule,
    load_run,
    loss_fn,
    make_config,
    steps_per_epoch,
    train,
    with_data_file,
)

__all__ = ("probe_checkpoints", "probe_recorder", "run")


def probe_recorder(config: TrainConfig, out: str | Path, *, background: bool = True) -> Recorder:
    """The `Recorder` of the run `config` in `out`: the model's encoder and decoder on
    the run's data, every `config.probe_every` epochs, finishing each probe in the
    background while the next epoch trains (unless `background` is False). Its probes
    are the defaults for labelled or unlabelled data with a decoder, the decoder's
    geometry under the metric its likelihood defines (`config.likelihood`) with
    `config.probe_pairs` geodesic pairs and a `config.probe_grid` grid; with
    `config.probe_class_geodesics` the geometry between classes; with
    `config.landscape_every`, every that many epochs, the loss landscape of the training
    objective (at the regularizer's full weight, one fixed key) on a fixed batch of the
    diagnostics' points, beside the learning rate in force.

    **Arguments:**

    - `config`: the run, with `probe_every` ≥ 1.
    - `out`: the run directory.
    - `background`: finish each probe in a background thread (`Recorder`'s option).

    **Returns:** a `jgeo.dynamics.Recorder`, a callback of `jgeo.train.train`.

    **Raises:** `ConfigError` for probe options the run's data cannot take.
    """
    data, model, _ = build(with_data_file(config))
    if config.probe_class_geodesics and data.labels is None:
        raise ConfigError(
            f"--class-geodesics needs labelled data, and {config.data} has no labels (a data "
            "file's `labels` array): leave the option out."
        )
    graphdef = nnx.graphdef(model)
    per_epoch = steps_per_epoch(config, len(data.x))
    likelihood = likelihoods.get(config.likelihood)  # its metric; a Gaussian's is JᵀJ
    probes = default_probes(decoder=False, labels=data.labels is not None)
    probes.append(PullbackGeometry(likelihood, pairs=config.probe_pairs, grid=config.probe_grid))
    if config.probe_class_geodesics:
        probes.append(ClassGeodesics(likelihood))
    if config.landscape_every:
        loss, key = loss_fn(graphdef, config), jr.key(config.seed + 2)
        batch = data.x[eval_index(config, len(data.x))[: config.batch_size]]
        schedule = learning_rate_schedule(config, len(data.x))
        landscape = LossLandscape(lambda p, x: loss(p, x, key)[0], batch)
        probes += [Every(config.landscape_every * per_epoch, landscape), LearningRate(schedule)]

    def encode(params, x):
        return nnx.merge(graphdef, params).encode(x)

    def decode(params, z):
        return nnx.merge(graphdef, params).decoder(z)

    return Recorder(
        out,
        data,
        encode=encode,
        decode=decode,
        probes=probes,
        every=config.probe_every * per_epoch,
        samples=config.probe_samples,
        seed=config.seed,
        background=background,  # a probe's host part overlaps the next epoch
    )


class _RunProbes(Callback):
    """The run's Recorder as a training callback, opened when training starts: after
    `train` has checked the config, the data and the directory."""

    def __init__(self, config: TrainConfig, out: str | Path):
        self.config, self.out, self.recorder = config, out, None

    def start(self, step: int, params) -> None:
        try:
            self.recorder = probe_recorder(self.config, self.out)
        except ValueError as error:  # probe options this run's data cannot take
            if isinstance(error, RunError):
                raise
            raise ConfigError(f"the run's probes: {error}") from None
        self.recorder.start(step, params)

    def __call__(self, step: int, params, *, epoch: int) -> None:
        self.recorder(step, params, epoch=epoch)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()


def run(
    config: TrainConfig,
    out: str | Path,
    *,
    callbacks: Sequence = (),
    progress: bool = True,
    stop_after: int | None = None,
    report: bool = True,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    keep_every: int = 0,
) -> dict:
    """Train the run `config` in `out` as `jgeo train` does: `jgeo.train.train` with the
    probes of `probe_recorder` (unless `config.probe_every` is 0) before `callbacks`,
    then the run's report (`jgeo.report.write_run_report`).

    **Arguments:** those of `jgeo.train.train`, and:

    - `config`, `out`: the run and its directory (a rerun resumes).
    - `callbacks`: further callbacks, after the recorder.
    - `progress`, `stop_after`, `checkpoint_seconds`, `keep_every`: as for
      `jgeo.train.train`.
    - `report`: write `report.json` and the figures once training completes.

    **Returns:** the report (a dict, as `report.json`); without `report`, or when
    training stopped early (`stop_after`), what `jgeo.train.train` returns.

    **Raises:** what `jgeo.train.train` raises; `TrainingInterrupted` on Ctrl-C while
    the report is written (training is complete then).
    """
    probes = [_RunProbes(config, out)] if config.probe_every else []
    final = _FinalParams()
    last = train(config, out, callbacks=[*probes, *callbacks, final], progress=progress,
                 stop_after=stop_after, checkpoint_seconds=checkpoint_seconds,
                 keep_every=keep_every)  # fmt: skip
    if not report or not last:
        return last
    try:
        if final.params is None:  # a finished run, rerun: nothing trained here
            return write_run_report(out, *load_run(out))
        config = with_data_file(config)
        data, model, _ = build(config)
        model = nnx.merge(nnx.graphdef(model), final.params)
        return write_run_report(out, config, data, model)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted while writing the report; training is complete (its last "
            f"checkpoint is kept in {out}). Run `jgeo report {out}` to write it."
        ) from None


class _FinalParams(Callback):
    """The parameters of the last epoch trained, for the report: every process of a
    multi-host run has them, where only process 0 writes the checkpoint's manifest."""

    def __init__(self):
        self.params = None

    def __call__(self, step: int, params, *, epoch: int) -> None:
        self.params = params


def probe_checkpoints(run_dir: str | Path, out: str | Path, *, samples: int | None = None) -> Path:
    """Run the probes of a `jgeo train` run over the checkpoints it kept, after training:
    every probe of `probe_recorder`, the decoder's geometry included, into `out`, the same
    files as the run's live probes at those epochs (`jgeo dynamics out` draws them).

    Every checkpoint that verifies against its manifest is probed, in order (a damaged
    one is skipped, with a line on stderr): its parameters are restored and passed to the
    run's `Recorder` (`probe_recorder`, not in the background) with its step and epoch.
    A run keeps its last two checkpoints unless asked to keep more; every kept epoch is
    probed: the Recorder's period is the greatest common divisor of the run's
    `probe_every` and the kept epochs (the run's own where the kept epochs are multiples
    of it). What a live run measures against the previous probe (`cka_previous`) is
    measured against the previous *kept* checkpoint, and is None at the first; what it
    measures against its first probe (`cka_initial`), against the first kept one.

    **Arguments:**

    - `run_dir`: a `jgeo train` run directory (`checkpoints/`), held (locked) while it is
      read, so that no run trains in it meanwhile.
    - `out`: the directory of the probe files (created), not `run_dir`, holding no
      probes yet.
    - `samples`: the number of fixed samples; None for the run's own `probe_samples`.

    **Returns:** the path `out`.

    **Raises:** `ConfigError` for a directory without checkpoints, bad `samples`, or a
    data file changed since the run; `CheckpointError` if no checkpoint verifies or one
    cannot be read; `DynamicsError` if `out` is `run_dir`, a file, or holds probes
    already; `RunLocked` if another process writes `run_dir` or `out`. All but a
    checkpoint that cannot be read are raised before anything is written.
    """
    run_dir, out = Path(run_dir), Path(out)
    if samples is not None and (
        isinstance(samples, bool) or not isinstance(samples, int) or samples < 8
    ):
        raise ConfigError(f"`samples` (--samples) must be an integer ≥ 8, got {samples!r}.")
    with probe_directory(out, run_dir), run_lock(run_dir, f"jgeo probe {run_dir}", create=False):
        checkpoints = Checkpoints(run_dir / "checkpoints")
        try:
            epochs, config = _kept_checkpoints(run_dir, checkpoints)
            every = math.gcd(config.probe_every, config.landscape_every, *epochs)
            config = dataclasses.replace(
                config,
                probe_every=every,
                probe_samples=config.probe_samples if samples is None else samples,
            )
            data, model, tx = build(with_data_file(config))
            per_epoch = steps_per_epoch(config, len(data.x))
            params = nnx.to_pure_dict(nnx.state(model))
            like = {"params": params, "opt_state": tx.init(params)}
            try:
                with probe_recorder(config, out, background=False) as recorder:
                    for epoch in epochs:
                        params = checkpoints.restore(epoch, like)["params"]
                        recorder(epoch * per_epoch, params, epoch=epoch)
            except ValueError as error:
                if isinstance(error, RunError):
                    raise
                raise ConfigError(f"the run's probes: {error}") from None
        finally:
            checkpoints.close()
    return out


def _kept_checkpoints(run_dir: Path, checkpoints: Checkpoints) -> tuple[list[int], TrainConfig]:
    """The epochs of the checkpoints of `run_dir` that verify, in order, and the
    configuration they were trained with; a line on stderr for each damaged one."""
    steps = sorted(checkpoints.steps())
    if not steps:
        what = "no checkpoint yet" if (run_dir / "config.json").exists() else "no checkpoints/"
        raise ConfigError(
            f"{run_dir} is not a trained jgeo run ({what}): train it with `jgeo train --out "
            f"{run_dir}`, or give a directory of activation files (step_<step>.npz)."
        )
    problems = {step: checkpoints.problem(step) for step in steps}
    sound = [step for step in steps if problems[step] is None]
    if not sound:
        listed = "; ".join(f"step {step}: {problem}" for step, problem in problems.items())
        raise CheckpointError(
            f"no checkpoint in {checkpoints.directory} verifies ({listed}): restore them, or "
            "train the run again into a new --out directory and probe that."
        )
    for step, problem in problems.items():
        if problem is not None:
            print(f"jgeo: checkpoint {checkpoints.directory / str(step)} is damaged ({problem}): "
                  "not probed.", file=sys.stderr)  # fmt: skip
    configs = {step: make_config(checkpoints.config(step)) for step in sound}
    config = configs[sound[-1]]
    if other := [step for step in sound if configs[step] != config]:
        raise ConfigError(
            f"checkpoint {other[0]} of {run_dir} was trained with another configuration than "
            f"checkpoint {sound[-1]}: move one of them out of {checkpoints.directory}."
        )
    return sound, config
