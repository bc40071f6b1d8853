"""Training geometry-regularized autoencoders: the engine of `jgeo train`.

Two parts. The objective (`build`, `loss_fn`, `learning_rate_schedule`, `make_epoch`):
pure functions of a `TrainConfig` that give the data, the model, the optimiser, the loss
and one jitted epoch. The driver (`train`): runs epochs, checkpoints atomically,
resumes on rerun and calls `Callback`s; it does not import `jgeo.dynamics` (a
`Recorder` is a callback) nor `jgeo.report` (`jgeo.experiment.run` writes the report).

A run is a deterministic function of its `TrainConfig`; its directory holds
`config.json`, `metrics.jsonl` (one row per epoch, `read_rows`), `checkpoints/`
(orbax, atomic, `Checkpoints`) and, once reported, `report.json` and `figures/`.
"""

from .._callback import Callback as Callback
from ._checkpoint import CheckpointError as CheckpointError, Checkpoints as Checkpoints
from ._config import (
    DEFAULT_WEIGHTS as DEFAULT_WEIGHTS,
    ConfigError as ConfigError,
    TrainConfig as TrainConfig,
    load_config as load_config,
    make_config as make_config,
    with_data_file as with_data_file,
)
from ._loop import (
    CHECKPOINT_SECONDS as CHECKPOINT_SECONDS,
    TrainingDiverged as TrainingDiverged,
    TrainingInterrupted as TrainingInterrupted,
    train as train,
)
from ._objective import (
    build as build,
    eval_index as eval_index,
    learning_rate_schedule as learning_rate_schedule,
    loss_fn as loss_fn,
    make_diagnose as make_diagnose,
    make_epoch as make_epoch,
    steps_per_epoch as steps_per_epoch,
)
from ._run import load_run as load_run, read_rows as read_rows
