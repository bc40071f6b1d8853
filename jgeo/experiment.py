"""A `jgeo train` run from Python: training (`jgeo.train`) with the learning-dynamics
probes its config asks for (`jgeo.dynamics`).

`jgeo.train.train` trains and calls callbacks; this module, above both packages,
attaches the `Recorder` that `config.probe_every`, `probe_samples`, `probe_pairs` and
`probe_grid` describe. The command line runs `run`.
"""

from collections.abc import Sequence
from pathlib import Path

from flax import nnx

from .dynamics import Recorder
from .train import TrainConfig, steps_per_epoch, train
from .train._config import with_data_file
from .train._loop import build


def probe_recorder(config: TrainConfig, out: str | Path) -> Recorder:
    """The `Recorder` of the run `config` in `out`: the model's encoder and decoder on
    the run's data, every `config.probe_every` epochs (which must be ≥ 1), finishing
    each probe in the background while the next epoch trains."""
    data, model, _ = build(with_data_file(config))
    graphdef = nnx.graphdef(model)

    def encode(params, x):
        return nnx.merge(graphdef, params).encode(x)

    def decode(params, z):
        return nnx.merge(graphdef, params).decoder(z)

    return Recorder(
        out,
        data,
        encode=encode,
        decode=decode,
        every=config.probe_every * steps_per_epoch(config, len(data.x)),
        samples=config.probe_samples,
        pairs=config.probe_pairs,
        grid=config.probe_grid,
        seed=config.seed,
        background=True,  # a probe's host part overlaps the next epoch
    )


class _RunProbes:
    """The run's Recorder as a training callback, opened when training starts: after
    `train` has checked the config, the data and the directory."""

    def __init__(self, config: TrainConfig, out: str | Path):
        self.config, self.out, self.recorder = config, out, None

    def start(self, step: int, params) -> None:
        self.recorder = probe_recorder(self.config, self.out)
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
) -> dict:
    """Train the run `config` in `out` as `jgeo train` does: `jgeo.train.train` with the
    probes of `probe_recorder` (unless `config.probe_every` is 0) before `callbacks`;
    returns the final report (see `jgeo.train.train` for the rest)."""
    probes = [_RunProbes(config, out)] if config.probe_every else []
    return train(config, out, callbacks=[*probes, *callbacks], progress=progress,
                 stop_after=stop_after, report=report)  # fmt: skip
