"""The objective of a run: its data, model and optimiser (`build`), its loss
(`loss_fn`), its step-size schedule, and the jitted epoch that minimises it
(`make_epoch`). Pure functions of a `TrainConfig`; the driver (`train`) runs them."""

import os

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from flax import nnx

from .. import _data_file as data_file, data as datasets, diagnostics, likelihoods, sharding
from ..nn import make_model
from ..regularizers import REGULARIZERS
from ._config import ConfigError, TrainConfig


def build(config: TrainConfig):
    """The data set, the initial model and the optimiser of a config.

    **Arguments:**

    - `config`: the run.

    **Returns:** `(data, model, tx)`: the `jgeo.data.Dataset`, the initial Flax NNX
    model (seeded by `config.seed`) and the optax optimiser (clipping + AdamW under
    `learning_rate_schedule`).

    **Raises:** `ConfigError` for a config the data cannot take (a Bernoulli likelihood
    on data outside [0, 1], a latent space wider than the data, a model too large for
    the device's memory, ...).
    """
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
    tenth of training (at most 100 steps), then cosine decay to 5 % of the peak.

    **Arguments:**

    - `config`: the run (`learning_rate`, `epochs`, `batch_size`).
    - `n`: the number of training points.

    **Returns:** an optax schedule, step ↦ step size.
    """
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
    """The fixed points the per-epoch diagnostics and the report are measured on.

    **Arguments:**

    - `config`: the run (`seed`, `eval_points`).
    - `n`: the number of points of the data set.

    **Returns:** sorted indices into the data, at most `config.eval_points` of them.
    """
    rng = np.random.default_rng(config.seed + 1)
    return np.sort(rng.permutation(n)[: min(config.eval_points, n)])


def loss_fn(graphdef, config: TrainConfig):
    """The training objective `loss(params, x, key, weight) -> (total, (mse, reg))` of a
    batch `x`: the likelihood's reconstruction loss (+ the VAE's KL) + weight × the
    regularizer, which sees the decoder through the likelihood's latent metric; `mse` is
    the squared error of the decoded mean, comparable across likelihoods.

    **Arguments:**

    - `graphdef`: the model's NNX graph definition (`nnx.split(model)[0]`).
    - `config`: the run (its model, likelihood, regularizer, `weight`, `beta`,
      `reg_fraction`).

    **Returns:** the loss function, of the parameters as a pure dict.
    """
    regularizer = REGULARIZERS.get(config.regularizer)
    likelihood = likelihoods.get(config.likelihood)

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
        recon = likelihood.nll(output, x)
        mse = jnp.mean((likelihood.mean(output) - x) ** 2)
        # the regularizer sees the first `reg_fraction` of the (shuffled) batch: a
        # random subset, which halves its cost at 0.5
        points = max(2, round(config.reg_fraction * x.shape[0]))
        if regularizer is None:
            reg = jnp.zeros((), x.dtype)
        elif config.regularizer == "contractive":
            reg = regularizer(model.encoder, x[:points], key_reg)
        else:
            immersion = likelihood.latent_metric(model.decoder).immersion
            reg = regularizer(immersion, codes[:points], key_reg)
        total = recon + config.beta * kl / x.shape[1] + weight * reg
        return total, (mse, reg)

    return loss


def make_epoch(graphdef, tx, config: TrainConfig, n: int, mesh=None):
    """`epoch(params, opt_state, x, index)` → new params and state, and the per-step
    loss, reconstruction MSE and regularizer value. The batch order and every random
    draw are functions of (seed, epoch index, step index): reruns are identical.

    **Arguments:**

    - `graphdef`, `tx`: the model's graph definition and the optimiser (`build`).
    - `config`: the run. `n`: the number of training points.
    - `mesh`: a data-parallel mesh (`jgeo.make_mesh`), or None on one device.

    **Returns:** the jitted epoch function.
    """
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
    under the latent metric of `likelihood`.

    **Arguments:**

    - `graphdef`: the model's NNX graph definition.
    - `likelihood`: a `jgeo.likelihoods` object or name.

    **Returns:** the jitted function.
    """
    likelihood = likelihoods.get(likelihood)

    @jax.jit
    def diagnose(params, x):
        model = nnx.merge(graphdef, params)
        metric = likelihood.latent_metric(model.decoder)
        return diagnostics.metric_summary(metric, jax.vmap(model.encode)(x))

    return diagnose
