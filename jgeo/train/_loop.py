"""The training loop: one jitted epoch (a `lax.scan` over jitted steps), diagnostics
after every epoch, an atomic checkpoint after every epoch, resumption on rerun."""

import concurrent.futures
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from flax import nnx

from .. import data as datasets, diagnostics, dynamics, sharding
from .._io import write_atomic
from .._pullback import Pullback
from ..nn import make_model
from ..regularizers import REGULARIZERS
from ._checkpoint import Checkpoints
from ._config import ConfigError, TrainConfig, make_config


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def build(config: TrainConfig):
    """The data set, the initial model and the optimiser of a config."""
    data = datasets.load(
        config.data, n=config.n, noise=config.noise, seed=config.seed, classes=config.classes
    )
    model = make_model(
        config.model,
        data.x.shape[1],
        config.latent_dim,
        hidden=config.hidden,
        activation=config.activation,
        image_shape=data.image_shape,
        seed=config.seed,
    )
    steps = _steps_per_epoch(config, len(data.x)) * config.epochs
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, min(100, steps // 10 + 1), steps, 0.05 * config.learning_rate
    )
    tx = optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )
    return data, model, tx


def _steps_per_epoch(config: TrainConfig, n: int) -> int:
    return max(1, n // min(config.batch_size, n))


def eval_index(config: TrainConfig, n: int) -> np.ndarray:
    """The fixed points the diagnostics are measured on."""
    rng = np.random.default_rng(config.seed + 1)
    return np.sort(rng.permutation(n)[: min(config.eval_points, n)])


def _loss_fn(graphdef, config: TrainConfig):
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
        mse = jnp.mean((model.decode(z) - x) ** 2)
        # the regularizer sees the first `reg_fraction` of the (shuffled) batch: a
        # random subset, which halves its cost at 0.5
        points = max(2, round(config.reg_fraction * x.shape[0]))
        if regularizer is None:
            reg = jnp.zeros((), x.dtype)
        elif config.regularizer == "contractive":
            reg = regularizer(model.encoder, x[:points], key_reg)
        else:
            reg = regularizer(model.decoder, codes[:points], key_reg)
        total = mse + config.beta * kl / x.shape[1] + weight * reg
        return total, (mse, reg)

    return loss


def make_epoch(graphdef, tx, config: TrainConfig, n: int, mesh=None):
    """`epoch(params, opt_state, x, index)` → new params and state, and the per-step
    loss, reconstruction MSE and regularizer value. The batch order and every random
    draw are functions of (seed, epoch index, step index): reruns are identical."""
    loss = _loss_fn(graphdef, config)
    batch = min(config.batch_size, n)
    steps = _steps_per_epoch(config, n)
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


def make_diagnose(graphdef):
    """`diagnose(params, x)` → MCN, VoR, mean and variance of log det G at the codes of x."""

    @jax.jit
    def diagnose(params, x):
        model = nnx.merge(graphdef, params)
        return diagnostics.metric_summary(Pullback(model.decoder), jax.vmap(model.encode)(x))

    return diagnose


def make_probe(graphdef, x, probes: dynamics.ProbeSet):
    """`probe(params)` → `dynamics.measure_geometry` on the fixed samples `x`."""

    @jax.jit
    def probe(params):
        model = nnx.merge(graphdef, params)
        return dynamics.measure_geometry(model.encode, model.decoder, x, probes)

    return probe


def _compile(probe, params):
    import ripser  # noqa: F401  (its first import takes a while too)

    return probe.lower(params).compile()


def _make_recorder(config: TrainConfig, data, x, graphdef, out: Path, start: int):
    """The probe function and the recorder of a run, or (None, None) with probes off."""
    if not config.probe_every:
        return None, None
    probes = dynamics.probe_set(
        data,
        config.latent_dim,
        samples=config.probe_samples,
        pairs=config.probe_pairs,
        grid=config.probe_grid,
        seed=config.seed,
    )
    static = {
        "sample_index": probes.index,
        "color": np.asarray(data.color)[probes.index],
        "pairs": probes.pairs,
    }
    recorder = dynamics.Recorder(out, start, static)
    return make_probe(graphdef, x[probes.index], probes), recorder


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a run's `metrics.jsonl` (one dict per epoch; [] if there is none yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_same_config(out: Path, config: TrainConfig) -> None:
    stored_path = out / "config.json"
    if not stored_path.exists():
        return
    try:
        stored = make_config(json.loads(stored_path.read_text()))
    except (json.JSONDecodeError, ConfigError) as error:
        raise ConfigError(
            f"{stored_path} is damaged ({error}); use a new --out directory."
        ) from None
    if stored != config:
        changed = [
            f"{k}: {v!r} → {config.to_dict()[k]!r}"
            for k, v in stored.to_dict().items()
            if config.to_dict()[k] != v
        ]
        raise ConfigError(
            f"{out} holds a run with a different configuration ({'; '.join(changed)}). "
            "Rerun with the same options to resume it, or choose a new --out directory."
        )


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    progress: bool = True,
    stop_after: int | None = None,
    report: bool = True,
) -> dict:
    """Train (or resume) the run of `config` in directory `out`; return the final report.

    **Arguments:**

    - `config`: the run. `out`: its directory (created; a rerun resumes from the last
      checkpoint and ends with the same result as an uninterrupted run).
    - `progress`: show a progress bar. `stop_after`: stop after this epoch, as an
      interruption would (for tests). `report`: write `report.json` and figures at the end.

    **Raises:** `ConfigError` if `out` holds a different run; `CheckpointError` for an
    unreadable checkpoint; `TrainingDiverged` (naming the step) if the loss is not finite.
    """
    from ._report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_config(out, config)
    write_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2))

    data, model, tx = build(config)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    opt_state = tx.init(params)
    x = jnp.asarray(data.x)
    x_eval = x[eval_index(config, len(x))]
    mesh = _mesh(config)
    epoch_fn = make_epoch(graphdef, tx, config, len(x), mesh)
    diagnose = make_diagnose(graphdef)

    checkpoints = Checkpoints(out / "checkpoints")
    start = 0
    latest = checkpoints.latest()
    if latest is not None:
        like = {"params": params, "opt_state": opt_state}
        restored = checkpoints.restore(latest, like)
        params, opt_state, start = restored["params"], restored["opt_state"], latest
    if mesh is not None:  # parameters, optimiser state and the data on every device
        params, opt_state, x = sharding.replicate(mesh, (params, opt_state, x))
    metrics_path = out / "metrics.jsonl"
    # Rows past the checkpoint (written before an interruption) are recomputed identically.
    rows = [r for r in read_rows(metrics_path) if r["epoch"] <= start]
    probe, recorder = _make_recorder(config, data, x, graphdef, out, start)
    if probe is not None:  # compiled in the background while the first epochs train
        compiler = concurrent.futures.ThreadPoolExecutor(1)
        pending = compiler.submit(_compile, probe, params)

    steps = _steps_per_epoch(config, len(x))
    last = config.epochs if stop_after is None else min(stop_after, config.epochs)
    bar = _progress(progress, config.epochs, start)
    try:
        for epoch in range(start + 1, last + 1):
            began = time.perf_counter()
            new_params, new_opt_state, (losses, mses, regs) = epoch_fn(params, opt_state, x, epoch)
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
            if probe is not None and epoch % config.probe_every == 0:
                began = time.perf_counter()
                geometry = jax.block_until_ready(pending.result()(params))
                recorder.record(epoch, row["step"], geometry, began)
            write_atomic(metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
            checkpoints.save(epoch, {"params": params, "opt_state": opt_state})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", mcn=f"{row['mcn']:.2f}")
    finally:
        if bar is not None:
            bar.close()
        checkpoints.close()
        if recorder is not None:
            recorder.close()
            compiler.shutdown(wait=False)  # its one task is done or no longer needed
    if not report or last < config.epochs:
        return {}
    return write_report(out, config, data, nnx.merge(graphdef, params))


def _mesh(config: TrainConfig):
    """The data-parallel mesh of a run, or None on one device."""
    if config.devices == 1:
        return None
    try:
        return sharding.make_mesh(config.devices)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def load_run(out: str | Path):
    """The config, data set and final model of the run in `out` (for `jgeo report`)."""
    out = Path(out)
    config_path = out / "config.json"
    if not config_path.exists():
        raise ConfigError(f"{out} is not a jgeo run directory (no config.json).")
    try:
        config = make_config(json.loads(config_path.read_text()))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{config_path} is not valid JSON: {error}") from None
    data, model, tx = build(config)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    checkpoints = Checkpoints(out / "checkpoints")
    latest = checkpoints.latest()
    if latest is None:
        raise ConfigError(f"{out} has no checkpoint yet: run `jgeo train --out {out}` first.")
    like = {"params": params, "opt_state": tx.init(params)}
    params = checkpoints.restore(latest, like)["params"]
    checkpoints.close()
    return config, data, nnx.merge(graphdef, params)


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="jgeo train", unit="epoch", leave=True)
