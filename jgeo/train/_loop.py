"""The training loop: one jitted epoch (a `lax.scan` over jitted steps), diagnostics
and callbacks after every epoch, atomic checkpoints on a clock and whenever training
stops, resumption on rerun."""

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .. import sharding
from .._callback import Callback, as_callback
from .._io import LOCK, RunError, deferred_interrupt, remembered_interrupts, run_lock, write_atomic
from ._checkpoint import CheckpointError, Checkpoints
from ._config import ConfigError, TrainConfig, with_data_file
from ._objective import build, eval_index, make_diagnose, make_epoch, steps_per_epoch
from ._run import check_rows, check_same_config, read_rows, recorded_data, stored_run


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# The default of `train(checkpoint_seconds=...)`, `experiment.run` and `--checkpoint-seconds`.
CHECKPOINT_SECONDS = 30.0


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT); its message says where and how to resume."""


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    stop_after: int | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    keep_every: int = 0,
) -> dict:
    """Train (or resume) the run of `config` in directory `out`; return its last row of
    `metrics.jsonl`.

    **Arguments:**

    - `config`: the run. `out`: its directory (created; a rerun resumes from the newest
      checkpoint that verifies and ends with the same result as an uninterrupted run).
    - `callbacks`: `Callback`s (or plain functions `fn(step, params, *, epoch)`), called
      after every epoch. Training itself records no learning-dynamics probes and writes
      no report: `jgeo train` and `jgeo.experiment.run` pass the `jgeo.dynamics.Recorder`
      that `config.probe_*` describe, then write the report (`jgeo.report`).
    - `progress`: show a progress bar. `stop_after`: stop after this epoch, as an
      interruption would (for tests).
    - `checkpoint_seconds`: save a checkpoint after the first epoch that ends this many
      seconds after the previous one (0: after every epoch). The last epoch, and the last
      completed one when training stops early (Ctrl-C, a diverged loss, an error in a
      callback), are always saved, so only a hard kill (`kill -9`, power loss) costs
      training time: at most this long, recomputed identically on the rerun.
    - `keep_every`: also save, and keep for good, the checkpoint of every epoch divisible
      by it (0: keep only the last two), for `jgeo probe` to probe the run again after
      training (`jgeo.experiment.probe_checkpoints`). Each checkpoint holds the
      parameters and Adam's two moments (about 12 bytes a parameter, on disk as orbax
      writes them): `jgeo train` prints the measured size of the first.

    **Returns:** the last epoch's row of `metrics.jsonl` (a dict), or {} when training
    stopped early (`stop_after`).

    Only one process may write a run directory: the run holds a lock on it (see
    `jgeo._io.run_lock`). Nothing is written into `out` before the configuration, the
    data and the stored run (if any) have been checked. A damaged checkpoint (its files
    do not match their checksums) is moved to `out/damaged-checkpoints/` and training
    resumes from the newest one that verifies.

    **Raises:** `ConfigError` if `out` holds a different run; `CheckpointError` if no
    checkpoint verifies or one cannot be read; `RunLocked` if another process holds
    `out`; `RunError` for an unusable directory or damaged run files; `TrainingDiverged`
    (naming the step) if the loss is not finite; `TrainingInterrupted` on Ctrl-C.
    """
    out = Path(out)
    check_checkpointing(checkpoint_seconds, keep_every)
    callbacks = tuple(as_callback(callback) for callback in callbacks)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a directory; choose a directory path.")
    created = not out.exists()
    try:
        # lent to the run's own Recorder (`jgeo.experiment`), refused to any other holder
        with run_lock(out, f"jgeo train --out {out}", lend=True):
            return _train(
                config, out, callbacks, progress, stop_after, checkpoint_seconds, keep_every
            )
    except (RunError, KeyboardInterrupt):
        if created and _only_lock(out):  # refused or stopped before anything was written
            shutil.rmtree(out, ignore_errors=True)
        raise


def check_checkpointing(checkpoint_seconds: float, keep_every: int) -> None:
    """Refuse a negative checkpoint interval or `keep_every` (`jgeo train` checks them
    before it prints anything)."""
    if not checkpoint_seconds >= 0:
        raise ConfigError(
            f"`checkpoint_seconds` (--checkpoint-seconds) must be 0 or more, got "
            f"{checkpoint_seconds!r}."
        )
    if isinstance(keep_every, bool) or not isinstance(keep_every, int) or keep_every < 0:
        raise ConfigError(
            f"`keep_every` (--keep-every) must be an integer ≥ 0 (0: keep the last two "
            f"checkpoints only), got {keep_every!r}."
        )


def _only_lock(out: Path) -> bool:
    return out.is_dir() and [p.name for p in out.iterdir()] in ([], [LOCK])


def _train(
    config: TrainConfig, out: Path, callbacks, progress, stop_after, checkpoint_seconds, keep_every
) -> dict:
    checkpoints = Checkpoints(out / "checkpoints", keep_every=keep_every)
    stored, start, trained, damaged = stored_run(out, checkpoints)
    config = with_data_file(recorded_data(config, trained or stored))
    check_same_config(out, config, stored, trained)
    rows_path = out / "metrics.jsonl"
    stored_rows = read_rows(rows_path)
    check_rows(rows_path, stored_rows, start, checkpoints)
    data, model, tx = build(config)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    opt_state = tx.init(params)
    x = jnp.asarray(data.x)
    x_eval = x[eval_index(config, len(x))]
    mesh = _mesh(config)
    epoch_fn = make_epoch(graphdef, tx, config, len(x), mesh)
    diagnose = make_diagnose(graphdef, config.likelihood)

    # Damaged steps and unfinished saves go out of orbax's way (before it lists the
    # directory), to be trained and saved again; the run and its files have been checked.
    checkpoints.remove_unfinished()
    for bad, problem in damaged:
        moved = checkpoints.set_aside(bad, out / "damaged-checkpoints")
        print(f"jgeo: checkpoint {bad} is damaged ({problem}): moved to {moved}; resuming "
              f"from checkpoint {start}.", file=sys.stderr)  # fmt: skip
    if start:
        restored = checkpoints.restore(start, {"params": params, "opt_state": opt_state})
        params, opt_state = restored["params"], restored["opt_state"]
    if mesh is not None:  # parameters, optimiser state and the data on every device
        params, opt_state, x = sharding.replicate(mesh, (params, opt_state, x))
    # Rows past the checkpoint (written before an interruption) are recomputed identically.
    rows = [r for r in stored_rows if r["epoch"] <= start]
    steps = steps_per_epoch(config, len(x))
    for callback in callbacks:
        callback.start(start * steps, params)
    # Written once everything has been checked (callbacks included): a refused run leaves
    # no config behind to refuse the corrected rerun as "a different configuration".
    write_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2))
    last = config.epochs if stop_after is None else min(stop_after, config.epochs)
    bar = _progress(progress, config.epochs, start)
    # `done`: the last epoch whose rows are written, with its `state`; `saved`: the last
    # epoch checkpointed. An orbax save costs ~0.2 s (more than a small model's epoch), so
    # saves follow the clock, and `seal` saves `done` whenever training stops.
    done = saved = start
    state = {"params": params, "opt_state": opt_state}
    saved_at = time.monotonic()

    def interrupted() -> TrainingInterrupted:
        kept = f"checkpoint {saved} is kept" if saved else "no epoch was completed"
        where = f"after epoch {done}" if done == last else f"during epoch {done + 1}"
        return TrainingInterrupted(
            f"interrupted {where} of {config.epochs}; {kept} in {out}. Rerun the same "
            "command to resume."
        )

    def seal():
        nonlocal saved, saved_at
        if done > saved:
            with deferred_interrupt():  # a Ctrl-C in the save is raised once it is recorded
                checkpoints.save(done, state, config.to_dict())
                saved, saved_at = done, time.monotonic()

    with remembered_interrupts() as check_interrupt:
        try:
            for epoch in range(start + 1, last + 1):
                check_interrupt()  # a Ctrl-C that landed in a gc callback and was dropped
                began = time.perf_counter()
                new_params, new_opt_state, (losses, mses, regs) = epoch_fn(
                    params, opt_state, x, epoch
                )
                losses = np.asarray(losses)
                if not np.all(np.isfinite(losses)):
                    bad = int(np.argmin(np.isfinite(losses)))
                    kept = f"epoch {epoch - 1}" if epoch > 1 else "none yet"
                    raise TrainingDiverged(
                        f"the loss became {losses[bad]} at step {(epoch - 1) * steps + bad + 1} "
                        f"(epoch {epoch}); stopped, the last good checkpoint ({kept}) is kept in "
                        f"{out / 'checkpoints'}. Lower --weight or the learning rate."
                    )
                params, opt_state = new_params, new_opt_state
                row = {
                    "epoch": epoch,
                    "step": epoch * steps,
                    "loss": float(np.mean(losses)),
                    "recon_mse": float(np.mean(mses)),
                    "regularizer": float(np.mean(regs)),
                    **{k: float(v) for k, v in diagnose(params, x_eval).items()},
                    "seconds": time.perf_counter() - began,
                }
                rows.append(row)
                for callback in callbacks:
                    callback(row["step"], params, epoch=epoch)
                with deferred_interrupt():  # the rows and what they describe move together
                    write_atomic(rows_path, "".join(json.dumps(r) + "\n" for r in rows))
                    done, state = epoch, {"params": params, "opt_state": opt_state}
                kept = keep_every and epoch % keep_every == 0
                clock = time.monotonic() - saved_at >= checkpoint_seconds
                if _save_due(epoch == last or kept or clock):
                    seal()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", mcn=f"{row['mcn']:.2f}")
            check_interrupt()  # one that landed in the last epoch, where nothing raised it
        except CheckpointError:
            raise  # saving again would fail the same way
        except KeyboardInterrupt:
            try:
                seal()
            except KeyboardInterrupt:  # a second Ctrl-C, held back until the save was whole
                pass
            raise interrupted() from None
        except BaseException:
            seal()  # a diverged loss or a failing callback: the epochs before it are kept
            raise
        finally:
            with deferred_interrupt(raise_after=False):  # callbacks close their files whole
                if bar is not None:
                    bar.close()
                checkpoints.close()
                for callback in callbacks:
                    callback.close()
        try:
            check_interrupt()
        except KeyboardInterrupt:
            raise interrupted() from None
        return rows[-1] if last == config.epochs and rows else {}


def _save_due(due: bool) -> bool:
    """Whether to checkpoint now. Every process of a multi-host run takes part in an orbax
    save, and their clocks differ: process 0's decision is the one all of them follow."""
    if jax.process_count() == 1:
        return due
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(due)))


def _mesh(config: TrainConfig):
    """The data-parallel mesh of a run, or None on one device."""
    if config.devices == 1:
        return None
    try:
        return sharding.make_mesh(config.devices)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="jgeo train", unit="epoch", leave=True)
