"""Training geometry-regularized autoencoders: the engine of `jgeo train`.

A run is a deterministic function of its `TrainConfig`; its directory holds
`config.json`, `metrics.jsonl` (one row per epoch), `checkpoints/` (orbax, atomic),
`report.json` and `figures/`. Training calls `callbacks` after every epoch (see
`Callback`); it does not import `jgeo.dynamics`.
"""

from ._checkpoint import CheckpointError as CheckpointError
from ._config import (
    ConfigError as ConfigError,
    TrainConfig as TrainConfig,
    load_config as load_config,
    make_config as make_config,
)
from ._loop import (
    Callback as Callback,
    TrainingDiverged as TrainingDiverged,
    TrainingInterrupted as TrainingInterrupted,
    load_run as load_run,
    read_rows as read_rows,
    steps_per_epoch as steps_per_epoch,
    train as train,
)
from ._report import evaluate as evaluate, write_report as write_report
