"""The training loop: one jitted epoch (a `lax.scan` over jitted steps), diagnostics
and callbacks after every epoch, atomic checkpoints on a clock and whenever training
stops, resumption on rerun."""

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from flax import nnx

from .. import _data_file as data_file, data as datasets, diagnostics, sharding
from .._io import (
    LOCK,
    RunError,
    deferred_interrupt,
    read_jsonl_rows,
    remembered_interrupts,
    run_lock,
    write_atomic,
)
from ..nn import make_model
from ..regularizers import REGULARIZERS
from ._checkpoint import CheckpointError, Checkpoints
from ._config import ConfigError, TrainConfig, make_config, with_data_file
from ._likelihood import decoded_mean, latent_metric, reconstruction_loss


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def build(config: TrainConfig):
    """The data set, the initial model and the optimiser of a config."""
    data = datasets.load(
        config.data,
        n=config.n,
        noise=config.noise,
        seed=config.seed,
        classes=config.classes,
        scaling=config.data_scaling,
    )
    if config.likelihood == "bernoulli" and not (data.x.min() >= 0 and data.x.max() <= 1):
        raise ConfigError(
            f"likelihood bernoulli needs data in [0, 1] (intensities), but {config.data} "
            f"spans [{data.x.min():.3g}, {data.x.max():.3g}]: use --likelihood gaussian, or "
            "image data (digits, sprites, an image file)."
        )
    if config.latent_dim > data.x.shape[1]:
        raise ConfigError(
            f"--latent-dim {config.latent_dim} is above the dimension of the data "
            f"({config.data}: {data.x.shape[1]} features): an autoencoder needs a smaller "
            "latent space; lower --latent-dim."
        )
    if data_file.is_data_file(config.data) and len(data.x) < config.batch_size:
        raise ConfigError(
            f"data file {config.data} has {len(data.x)} points, fewer than a batch "
            f"(batch_size {config.batch_size}): lower --batch-size or give more points."
        )

    def new_model():
        return make_model(
            config.model,
            data.x.shape[1],
            config.latent_dim,
            hidden=config.hidden,
            activation=config.activation,
            image_shape=data.image_shape,
            seed=config.seed,
        )

    try:
        _check_size(config, nnx.eval_shape(new_model))  # shapes only: nothing allocated
        model = new_model()
    except ValueError as error:  # e.g. the conv model on vectors, or odd image sides
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{config.data}: {error}") from None
    tx = optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(learning_rate_schedule(config, len(data.x)), weight_decay=config.weight_decay),
    )
    return data, model, tx


# Bytes each parameter takes in training: float32 values, gradients and Adam's two moments.
_BYTES_PER_PARAMETER = 16


def _check_size(config: TrainConfig, shapes) -> None:
    """Refuse a model (given as shapes) whose training state alone exceeds the memory of
    the device it would train on, before allocating it.

    **Raises:** `ConfigError` naming `hidden`."""
    count = sum(leaf.size for leaf in jax.tree_util.tree_leaves(nnx.state(shapes)))
    needed, memory = count * _BYTES_PER_PARAMETER, _device_memory()
    if memory is not None and needed > memory:
        raise ConfigError(
            f"`hidden` {list(config.hidden)} makes a model of {count:.3g} parameters, which "
            f"need about {needed / 2**30:.3g} GiB to train (values, gradients and Adam's "
            f"moments in float32), more than the {memory / 2**30:.3g} GiB of memory here: "
            "use narrower or fewer layers."
        )


def _device_memory() -> int | None:
    """Bytes of memory of the device training runs on: an accelerator's, or the host's;
    None where neither is known."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # not every backend reports it
        stats = {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every platform
        return None


def learning_rate_schedule(config: TrainConfig, n: int):
    """The step size of optimiser step t over `n` points: a linear warm-up over the first
    tenth of training (at most 100 steps), then cosine decay to 5 % of the peak."""
    steps = steps_per_epoch(config, n) * config.epochs
    warmup = min(100, steps // 10 + 1)
    return optax.warmup_cosine_decay_schedule(  # at least one step of decay
        0.0, config.learning_rate, warmup, max(steps, warmup + 1), 0.05 * config.learning_rate
    )


def steps_per_epoch(config: TrainConfig, n: int) -> int:
    """Optimiser steps in one epoch over `n` points (the last partial batch is dropped).

    **Arguments:**

    - `config`: the run (its `batch_size`).
    - `n`: the number of training points.

    **Returns:** `n // config.batch_size`.
    """
    return max(1, n // min(config.batch_size, n))


def eval_index(config: TrainConfig, n: int) -> np.ndarray:
    """The fixed points the diagnostics are measured on."""
    rng = np.random.default_rng(config.seed + 1)
    return np.sort(rng.permutation(n)[: min(config.eval_points, n)])


def loss_fn(graphdef, config: TrainConfig):
    """The training objective `loss(params, x, key, weight) -> (total, (mse, reg))` of a
    batch `x`: the likelihood's reconstruction loss (+ the VAE's KL) + weight × the
    regularizer, which sees the decoder through the likelihood's latent metric; `mse` is
    the squared error of the decoded mean, comparable across likelihoods."""
    regularizer = REGULARIZERS.get(config.regularizer)

    def loss(params, x, key, weight=config.weight):
        model = nnx.merge(graphdef, params)
        key_z, key_reg = jr.split(key)
        if config.model == "vae":
            mean, log_var = model.posterior(x)
            z = mean + jnp.exp(0.5 * log_var) * jr.normal(key_z, mean.shape, mean.dtype)
            kl = 0.5 * jnp.mean(jnp.sum(jnp.exp(log_var) + mean**2 - 1 - log_var, axis=-1))
            codes = mean
        else:
            z = codes = model.encode(x)
            kl = 0.0
        output = model.decode(z)
        recon = reconstruction_loss(output, x, config.likelihood)
        mse = jnp.mean((decoded_mean(output, config.likelihood) - x) ** 2)
        # the regularizer sees the first `reg_fraction` of the (shuffled) batch: a
        # random subset, which halves its cost at 0.5
        points = max(2, round(config.reg_fraction * x.shape[0]))
        if regularizer is None:
            reg = jnp.zeros((), x.dtype)
        elif config.regularizer == "contractive":
            reg = regularizer(model.encoder, x[:points], key_reg)
        else:
            immersion = latent_metric(model.decoder, config.likelihood).immersion
            reg = regularizer(immersion, codes[:points], key_reg)
        total = recon + config.beta * kl / x.shape[1] + weight * reg
        return total, (mse, reg)

    return loss


def make_epoch(graphdef, tx, config: TrainConfig, n: int, mesh=None):
    """`epoch(params, opt_state, x, index)` → new params and state, and the per-step
    loss, reconstruction MSE and regularizer value. The batch order and every random
    draw are functions of (seed, epoch index, step index): reruns are identical."""
    loss = loss_fn(graphdef, config)
    batch = min(config.batch_size, n)
    steps = steps_per_epoch(config, n)
    base = jr.key(config.seed)
    ramp_steps = config.warmup * steps * config.epochs

    def _ramp(step):  # the regularizer weight grows linearly over the warm-up fraction
        return 1.0 if ramp_steps == 0 else jnp.minimum(1.0, (step + 1) / ramp_steps)

    @jax.jit
    def epoch(params, opt_state, x, index):
        key = jr.fold_in(base, index)
        order = jr.permutation(key, n)[: steps * batch].reshape(steps, batch)

        def step(carry, inputs):
            params, opt_state = carry
            rows, i = inputs
            grad_fn = jax.value_and_grad(loss, has_aux=True)
            weight = config.weight * _ramp((index - 1) * steps + i)
            batch_x = x[rows]
            if mesh is not None:  # data parallel: each device takes a share of the batch
                batch_x = jax.lax.with_sharding_constraint(batch_x, sharding.batch_sharding(mesh))
            (value, (mse, reg)), grads = grad_fn(params, batch_x, jr.fold_in(key, i), weight)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (value, mse, reg)

        (params, opt_state), trace = jax.lax.scan(
            step, (params, opt_state), (order, jnp.arange(steps))
        )
        return params, opt_state, trace

    return epoch


def make_diagnose(graphdef, likelihood: str):
    """`diagnose(params, x)` → MCN, VoR, mean and variance of log det G at the codes of x,
    under the latent metric of `likelihood`."""

    @jax.jit
    def diagnose(params, x):
        model = nnx.merge(graphdef, params)
        metric = latent_metric(model.decoder, likelihood)
        return diagnostics.metric_summary(metric, jax.vmap(model.encode)(x))

    return diagnose


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


def _stored_run(out: Path, checkpoints: Checkpoints):
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


def _recorded_data(config: TrainConfig, recorded: TrainConfig | None) -> TrainConfig:
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


def _check_same_config(out: Path, config: TrainConfig, stored, trained) -> None:
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


def _check_rows(path: Path, rows: list[dict], start: int, checkpoints: Checkpoints) -> None:
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


class Callback(Protocol):
    """What `train` calls, besides the training itself (a `jgeo.dynamics.Recorder` is one).

    **Arguments:** of the call `callback(step, params, epoch=epoch)`, after every epoch,
    before its checkpoint is written:

    - `step`: optimiser steps so far.
    - `params`: the model's state as a pure dict of arrays (`nnx.to_pure_dict`;
      `nnx.merge(graphdef, ...)` of the run's model gives the model back).
    - `epoch`: the epoch just finished (from 1).

    Optional methods: `callback.start(step, params)` once before the first epoch, with the
    step of the checkpoint training resumes from (0 for a new run): a callback that records
    something drops what it recorded after that step; `callback.close()` when training
    ends, by completion, error or Ctrl-C.
    """

    def __call__(self, step: int, params: Any, *, epoch: int) -> Any: ...


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
    report: bool = True,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> dict:
    """Train (or resume) the run of `config` in directory `out`; return the final report.

    **Arguments:**

    - `config`: the run. `out`: its directory (created; a rerun resumes from the newest
      checkpoint that verifies and ends with the same result as an uninterrupted run).
    - `callbacks`: called after every epoch, see `Callback`. Training itself records no
      learning-dynamics probes: `jgeo train` and `jgeo.experiment.run` pass the
      `jgeo.dynamics.Recorder` that `config.probe_*` describe.
    - `progress`: show a progress bar. `stop_after`: stop after this epoch, as an
      interruption would (for tests). `report`: write `report.json` and figures at the end.
    - `checkpoint_seconds`: save a checkpoint after the first epoch that ends this many
      seconds after the previous one (0: after every epoch). The last epoch, and the last
      completed one when training stops early (Ctrl-C, a diverged loss, an error in a
      callback), are always saved, so only a hard kill (`kill -9`, power loss) costs
      training time: at most this long, recomputed identically on the rerun.

    **Returns:** the final report, a dict of the scalars written to `report.json` (empty
    when `report` is False or training stopped early).

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
    if not checkpoint_seconds >= 0:
        raise ConfigError(
            f"`checkpoint_seconds` (--checkpoint-seconds) must be 0 or more, got "
            f"{checkpoint_seconds!r}."
        )
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a directory; choose a directory path.")
    created = not out.exists()
    try:
        # lent to the run's own Recorder (`jgeo.experiment`), refused to any other holder
        with run_lock(out, f"jgeo train --out {out}", lend=True):
            return _train(
                config, out, tuple(callbacks), progress, stop_after, report, checkpoint_seconds
            )
    except (RunError, KeyboardInterrupt):
        if created and _only_lock(out):  # refused or stopped before anything was written
            shutil.rmtree(out, ignore_errors=True)
        raise


def _only_lock(out: Path) -> bool:
    return out.is_dir() and [p.name for p in out.iterdir()] in ([], [LOCK])


def _train(
    config: TrainConfig, out: Path, callbacks, progress, stop_after, report, checkpoint_seconds
) -> dict:
    from ._report import write_report

    checkpoints = Checkpoints(out / "checkpoints")
    stored, start, trained, damaged = _stored_run(out, checkpoints)
    config = with_data_file(_recorded_data(config, trained or stored))
    _check_same_config(out, config, stored, trained)
    rows_path = out / "metrics.jsonl"
    stored_rows = read_rows(rows_path)
    _check_rows(rows_path, stored_rows, start, checkpoints)
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
        if hasattr(callback, "start"):
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
                if _save_due(epoch == last or time.monotonic() - saved_at >= checkpoint_seconds):
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
                    if hasattr(callback, "close"):
                        callback.close()
        try:
            check_interrupt()
        except KeyboardInterrupt:
            raise interrupted() from None
        if not report or last < config.epochs:
            return {}
        try:
            written = write_report(out, config, data, nnx.merge(graphdef, params))
            check_interrupt()
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"interrupted while writing the report; training is complete (checkpoint "
                f"{saved} is kept in {out}). Run `jgeo report {out}` to write it."
            ) from None
        return written


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


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="jgeo train", unit="epoch", leave=True)
