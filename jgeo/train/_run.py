"""A run's directory and its files: `metrics.jsonl` (`read_rows`), `config.json`, the
checkpoints, and what a rerun finds there (checked before anything is written), and
`load_run`, the trained model back."""

import dataclasses
import json
from pathlib import Path

from flax import nnx

from .. import _data_file as data_file
from .._io import RunError, read_jsonl_rows, write_atomic
from ._checkpoint import CheckpointError, Checkpoints
from ._config import ConfigError, TrainConfig, make_config, with_data_file
from ._objective import build


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a run's `metrics.jsonl`.

    **Arguments:**

    - `path`: the file.

    **Returns:** one dict per epoch, epochs increasing; [] if there is no file yet. Every
    row has the same keys, an integer `epoch`, and numbers (NaN and ±inf included), bools
    or None for values, as the training loop writes them.

    **Raises:** `RunError` naming the line when the file is truncated, not UTF-8 or not
    JSON rows, or a row lacks keys the first has or holds a value of another type; naming
    the file when it is a directory or cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return []

    def damaged(number: int, why: str) -> RunError:
        return RunError(
            f"{path} line {number} {why}. Restore the file; or delete it and "
            f"{path.parent / 'checkpoints'} to train the run again."
        )

    if path.is_dir():
        raise RunError(
            f"{path} is a directory, not the run's metrics file: move it out of the way "
            "(restore the file if you have it), then rerun the command."
        )
    try:
        return read_jsonl_rows(path, order="epoch", required=("epoch",), damaged=damaged)
    except OSError as error:  # no permission, an I/O error
        raise RunError(
            f"{path} cannot be read ({error.strerror or error}): fix its permissions or "
            "restore it, then rerun the command."
        ) from None


def _read_config(path: Path) -> TrainConfig:
    """The config stored in a run's `config.json`.

    **Raises:** `ConfigError` naming the file if it cannot be read, is not UTF-8 JSON or
    not a valid config."""
    try:
        return make_config(json.loads(path.read_bytes().decode("utf-8")))
    except OSError as error:  # e.g. a directory, or no permission
        raise ConfigError(
            f"{path} cannot be read ({error.strerror or error}); restore it, or use a new "
            "--out directory."
        ) from None
    except ValueError as error:  # not UTF-8, not JSON, or a ConfigError
        raise ConfigError(
            f"{path} is damaged ({error}); restore it, or use a new --out directory."
        ) from None
    # make_config raises ConfigError for most bad values, but not for every type
    except (TypeError, KeyError, OverflowError, RecursionError) as error:
        raise ConfigError(
            f"{path} is damaged ({type(error).__name__}: {str(error)[:160]}); restore it, or "
            "use a new --out directory."
        ) from None


def _differences(stored: TrainConfig, asked: TrainConfig) -> str:
    theirs, ours = stored.to_dict(), asked.to_dict()
    return "; ".join(f"{k}: {v!r} → {ours[k]!r}" for k, v in theirs.items() if ours[k] != v)


def stored_run(out: Path, checkpoints: Checkpoints):
    """What `out` holds already, read and checked, nothing moved: the config of its
    `config.json` (None without one), the newest checkpoint step that verifies (0 if
    none), the config it was trained with (None), and the damaged steps newer than it as
    (step, problem).

    **Raises:** `CheckpointError` if checkpoints exist but none verifies; `ConfigError`
    for an unreadable `config.json`, or one that disagrees with the checkpoint."""
    path = out / "config.json"
    stored = _read_config(path) if path.exists() else None
    step, damaged = checkpoints.newest_sound()
    if step is None and damaged:
        problems = "; ".join(f"step {s}: {p}" for s, p in damaged)
        raise CheckpointError(
            f"no checkpoint in {checkpoints.directory} verifies ({problems}). Delete "
            f"{checkpoints.directory} (and metrics.jsonl) to train the run again from the "
            "start, or use a new --out directory."
        )
    trained = None if step is None else make_config(checkpoints.config(step))
    if stored is not None and trained is not None and stored != trained:
        raise ConfigError(
            f"{path} disagrees with the configuration its checkpoint was trained with "
            f"({_differences(trained, stored)}); restore it or delete it (the checkpoint's "
            "own is then used), then rerun with the run's options."
        )
    return stored, step or 0, trained, damaged


def recorded_data(config: TrainConfig, recorded: TrainConfig | None) -> TrainConfig:
    """`config` with the SHA-256 and the scaling of its data file as the run that
    `out` holds (`recorded`) recorded them, when that run is of the same file and
    `config` holds neither: a file changed since is then named as such, not as a run
    of another configuration."""
    if (
        recorded is None
        or recorded.data_sha256 is None
        or config.data_sha256 is not None
        or not data_file.is_data_file(config.data)
        or recorded.data != str(Path(config.data).absolute())
    ):
        return config
    scaling = recorded.data_scaling if config.data_scaling is None else config.data_scaling
    return dataclasses.replace(
        config, data=recorded.data, data_scaling=scaling, data_sha256=recorded.data_sha256
    )


def check_same_config(out: Path, config: TrainConfig, stored, trained) -> None:
    if stored is not None and stored != config:
        raise ConfigError(
            f"{out} holds a run with a different configuration ({_differences(stored, config)}). "
            "Rerun with the same options to resume it, or choose a new --out directory."
        )
    if trained is not None and trained != config:
        raise ConfigError(
            f"the checkpoints in {out} were trained with a different configuration "
            f"({_differences(trained, config)}). Rerun with the run's own options to "
            "resume it, or choose a new --out directory."
        )


def check_rows(path: Path, rows: list[dict], start: int, checkpoints: Checkpoints) -> None:
    """Refuse to resume from checkpoint `start` if `rows` (of `metrics.jsonl`) lack one of
    its epochs: training would go on from there and the file would never hold them."""
    epochs = [r["epoch"] for r in rows if r["epoch"] <= start]
    if epochs == list(range(1, start + 1)):
        return
    missing = sorted(set(range(1, start + 1)) - set(epochs))
    if not missing:
        what = f"has rows of epochs before the first ({', '.join(map(str, epochs[:3]))})"
    elif missing == list(range(missing[0], missing[-1] + 1)) and len(missing) > 1:
        what = f"lacks the rows of epochs {missing[0]} to {missing[-1]}"
    else:
        shown = ", ".join(map(str, missing[:5])) + (", …" if len(missing) > 5 else "")
        what = f"lacks the rows of epoch{'s' if len(missing) > 1 else ''} {shown}"
    raise RunError(
        f"{path} {what}, which checkpoint {start} holds (it was deleted, emptied or edited): "
        f"restore it; or delete it and {checkpoints.directory} to train the run again."
    )


def load_run(out: str | Path):
    """The config, data set and final model of the run in `out` (for `jgeo report`).

    The model is the newest checkpoint's, which must verify against its manifest; the
    config is the one that checkpoint was trained with (`config.json`, if present, must
    agree with it, and is restored from it if missing).

    **Arguments:**

    - `out`: the run directory.

    **Returns:** `(config, data, model)`: the `TrainConfig`, the `Dataset` and the trained
    NNX model.

    **Raises:** `ConfigError` for a directory that is no run or a `config.json` that
    disagrees with the checkpoint; `CheckpointError` for a damaged newest checkpoint.
    """
    out = Path(out)
    checkpoints = Checkpoints(out / "checkpoints")
    steps = checkpoints.steps()
    if not steps:
        what = "no checkpoint yet" if (out / "config.json").exists() else "no config.json"
        raise ConfigError(
            f"{out} is not a trained jgeo run ({what}): run `jgeo train --out {out}` first."
        )
    if (problem := checkpoints.problem(steps[0])) is not None:
        raise CheckpointError(
            f"checkpoint {checkpoints.directory / str(steps[0])} is damaged ({problem}). "
            f"Rerun `jgeo train --out {out}` with the run's options: it sets the damaged "
            "step aside and trains it again from the newest one that verifies."
        )
    config = make_config(checkpoints.config(steps[0]))
    config_path = out / "config.json"
    if config_path.exists():
        if (stored := _read_config(config_path)) != config:
            raise ConfigError(
                f"{config_path} disagrees with the configuration its checkpoint was trained "
                f"with ({_differences(config, stored)}); restore it or delete it (the "
                "checkpoint's own is then used)."
            )
    else:
        write_atomic(config_path, json.dumps(config.to_dict(), indent=2))
    data, model, tx = build(with_data_file(config))
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    like = {"params": params, "opt_state": tx.init(params)}
    params = checkpoints.restore(steps[0], like)["params"]
    checkpoints.close()
    return config, data, nnx.merge(graphdef, params)
