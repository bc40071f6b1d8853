"""A `jgeo train` run from Python: training (`jgeo.train`) with the learning-dynamics
probes its config asks for (`jgeo.dynamics`).

`jgeo.train.train` trains and calls callbacks; this module, above both packages,
attaches the `Recorder` that `config.probe_every`, `probe_samples`, `probe_pairs` and
`probe_grid` describe. The command line runs `run`.
"""

from collections.abc import Sequence
from pathlib import Path

import jax.random as jr
from flax import nnx

from ._io import RunError
from .dynamics import Recorder
from .landscape import Landscape
from .train import ConfigError, TrainConfig, steps_per_epoch, train
from .train._config import with_data_file
from .train._loop import CHECKPOINT_SECONDS, build, eval_index, learning_rate_schedule, loss_fn

__all__ = ("probe_recorder", "run")


def probe_recorder(config: TrainConfig, out: str | Path) -> Recorder:
    """The `Recorder` of the run `config` in `out`: the model's encoder and decoder on
    the run's data, every `config.probe_every` epochs, finishing each probe in the
    background while the next epoch trains. With `config.landscape_every`, the loss
    landscape of the training objective (at the regularizer's full weight, one fixed key)
    on a fixed batch of the diagnostics' points, beside the learning rate in force. The
    decoder's metric is the one its likelihood defines (`config.likelihood`).

    **Arguments:**

    - `config`: the run, with `probe_every` ≥ 1.
    - `out`: the run directory.

    **Returns:** a `jgeo.dynamics.Recorder`, a callback of `jgeo.train.train`.
    """
    data, model, _ = build(with_data_file(config))
    if config.probe_class_geodesics and data.labels is None:
        raise ConfigError(
            f"--class-geodesics needs labelled data, and {config.data} has no labels (a data "
            "file's `labels` array): leave the option out."
        )
    graphdef = nnx.graphdef(model)
    per_epoch = steps_per_epoch(config, len(data.x))
    landscape = None
    if config.landscape_every:
        loss, key = loss_fn(graphdef, config), jr.key(config.seed + 2)
        batch = data.x[eval_index(config, len(data.x))[: config.batch_size]]
        schedule = learning_rate_schedule(config, len(data.x))
        landscape = Landscape(lambda p, x: loss(p, x, key)[0], batch, learning_rate=schedule)

    def encode(params, x):
        return nnx.merge(graphdef, params).encode(x)

    def decode(params, z):
        return nnx.merge(graphdef, params).decoder(z)

    # the Fisher–Rao metric of the run's likelihood; a unit-variance Gaussian's is JᵀJ
    likelihood = None if config.likelihood == "gaussian" else config.likelihood

    return Recorder(
        out,
        data,
        encode=encode,
        decode=decode,
        likelihood=likelihood,
        every=config.probe_every * per_epoch,
        samples=config.probe_samples,
        pairs=config.probe_pairs,
        grid=config.probe_grid,
        seed=config.seed,
        class_geodesics=config.probe_class_geodesics,
        landscape=landscape,
        landscape_every=config.landscape_every * per_epoch if landscape else None,
        background=True,  # a probe's host part overlaps the next epoch
    )


class _RunProbes:
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
) -> dict:
    """Train the run `config` in `out` as `jgeo train` does: `jgeo.train.train` with the
    probes of `probe_recorder` (unless `config.probe_every` is 0) before `callbacks`.

    **Arguments:** those of `jgeo.train.train`:

    - `config`, `out`: the run and its directory (a rerun resumes).
    - `callbacks`: further callbacks, after the recorder.
    - `progress`, `stop_after`, `report`, `checkpoint_seconds`: as for `jgeo.train.train`.

    **Returns:** the final report (a dict, as `report.json`).

    **Raises:** what `jgeo.train.train` raises.
    """
    probes = [_RunProbes(config, out)] if config.probe_every else []
    return train(config, out, callbacks=[*probes, *callbacks], progress=progress,
                 stop_after=stop_after, report=report,
                 checkpoint_seconds=checkpoint_seconds)  # fmt: skip
