"""Cost of the learning-dynamics probes, measured in one process:

1. the default `jgeo train` run with probes every epoch against the same run without
   them (the ratio the probes' redesign was to keep: compare with this file's results
   in the git history);
2. a `jgeo.dynamics.Recorder` in a user's own loop: an equinox MLP classifier on digits
   trained by a plain optax loop, recording its penultimate layer (no decoder) every
   `--every` steps, against the same loop without the recorder, and recording all four
   of its layers at once (the cost of 4 layers against 1); and a Flax NNX autoencoder
   recorded with its decoder.

    python bench/dynamics.py [--epochs 200] [--data digits] [--regularizer isometry]
                             [--steps 3000] [--every 30]
"""

import argparse
import tempfile
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from _timing import environment, print_table, write_json
from flax import nnx

from jgeo import dynamics
from jgeo.data import load
from jgeo.experiment import run
from jgeo.train import make_config


def timed_run(config) -> tuple[float, dynamics.Dynamics | None]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run(config, out, progress=False, report=False)
        seconds = time.perf_counter() - start
        record = dynamics.load(out) if config.probe_every else None
    return seconds, record


def default_run(args) -> list[dict]:
    base = dict(data=args.data, regularizer=args.regularizer, epochs=args.epochs)
    rows = []
    # Off, on, off again: the two "off" runs show the machine's drift over the bench.
    for probe_every in (0, 1, 0):
        seconds, record = timed_run(make_config({**base, "probe_every": probe_every}))
        row = {"probe_every": probe_every, "train_s": seconds}
        if record is not None:
            row.update(_probe_costs(record))
            last = record.rows[-1]
            row.update({k: last[k] for k in ["betti0", "betti1", "logvol_var", "cka_previous"]})
        rows.append(row)
        print(row, flush=True)
    rows[1]["× without probes"] = rows[1]["train_s"] / min(rows[0]["train_s"], rows[2]["train_s"])
    return rows


def _probe_costs(record: dynamics.Dynamics) -> dict:
    probe_s = record.series("seconds")
    return {"probes": len(probe_s), "first_probe_s": float(probe_s[0]),
            "median_probe_s": float(np.median(probe_s[1:])),
            "probes_total_s": float(probe_s.sum())}  # fmt: skip


class Classifier(eqx.Module):
    features: eqx.nn.MLP
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.features = eqx.nn.MLP(64, 16, 128, 2, activation=jnp.tanh, key=k1)
        self.head = eqx.nn.Linear(16, 10, key=k2)

    def __call__(self, x):
        return self.head(jnp.tanh(self.features(x)))


def timed_loop(name, data, steps, every, params, opt_state, update, **recorder) -> dict:
    """`steps` of `update(params, opt_state, rows)` on random batches of 128, with a
    Recorder (`recorder`: its `encode`, `decode`) every `every` steps (None: without)."""
    order = np.random.default_rng(0).integers(len(data.x), size=(steps, 128))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        probes = None if every is None else dynamics.Recorder(out, data, every=every, **recorder)
        for step in range(1, steps + 1):
            params, opt_state = update(params, opt_state, order[step - 1])
            if probes is not None:
                probes(step, params)
        jax.block_until_ready(params)
        if probes is not None:
            probes.close()
        row = {"loop": name, "every": every, "loop_s": time.perf_counter() - start}
        if probes is not None:
            row.update(_probe_costs(dynamics.load(out)))
    return row


def classifier_loop(data, steps: int, every: int | None, layers: bool = False) -> dict:
    """The equinox classifier, its penultimate layer recorded (no decoder) — or, with
    `layers`, all four of its layers at once (128, 128, 16 and the 10 logits)."""
    optimiser = optax.adam(2e-3)
    model = Classifier(jax.random.key(0))
    x, y = jnp.asarray(data.x), jnp.asarray(data.labels)

    @eqx.filter_jit
    def update(model, opt_state, rows):
        def loss(model):
            logits = jax.vmap(model)(x[rows])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y[rows]).mean()

        grads = eqx.filter_grad(loss)(model)
        updates, opt_state = optimiser.update(grads, opt_state)
        return eqx.apply_updates(model, updates), opt_state

    def features(model, x):
        return jnp.tanh(model.features(x))

    def every_layer(model, x):
        first, second, last = model.features.layers
        h1 = jnp.tanh(first(x))
        h2 = jnp.tanh(second(h1))
        h3 = jnp.tanh(last(h2))
        return {"hidden1": h1, "hidden2": h2, "penultimate": h3, "logits": model.head(h3)}

    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
    name = "equinox classifier, 4 layers" if layers else "equinox classifier"
    return timed_loop(name, data, steps, every, model, opt_state, update,
                      encode=every_layer if layers else features)  # fmt: skip


def autoencoder_loop(data, steps: int, every: int | None) -> dict:
    """A Flax NNX autoencoder (d = 2), recorded with its decoder."""
    rngs = nnx.Rngs(0)

    def mlp(sizes):
        return nnx.Sequential(nnx.Linear(*sizes[:2], rngs=rngs), nnx.tanh,
                              nnx.Linear(*sizes[1:], rngs=rngs))  # fmt: skip

    model = nnx.Dict(encoder=mlp((64, 128, 2)), decoder=mlp((2, 128, 64)))
    graphdef, params = nnx.split(model)
    optimiser = optax.adam(2e-3)
    x = jnp.asarray(data.x)

    @jax.jit
    def update(params, opt_state, rows):
        def loss(params):
            ae = nnx.merge(graphdef, params)
            return jnp.mean((ae["decoder"](ae["encoder"](x[rows])) - x[rows]) ** 2)

        grads = jax.grad(loss)(params)
        updates, opt_state = optimiser.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    def encode(params, x):
        return nnx.merge(graphdef, params)["encoder"](x)

    def decode(params, z):
        return nnx.merge(graphdef, params)["decoder"](z)

    return timed_loop("NNX autoencoder, decoder", data, steps, every, params,
                      optimiser.init(params), update, encode=encode, decode=decode)  # fmt: skip


def user_loops(args) -> list[dict]:
    data = load("digits")
    rows = []
    for loop in (classifier_loop, autoencoder_loop):
        runs = [loop(data, args.steps, every) for every in (None, args.every, None)]
        runs[1]["× without recorder"] = runs[1]["loop_s"] / min(
            runs[0]["loop_s"], runs[2]["loop_s"]
        )
        if loop is classifier_loop:  # every layer at once: the cost of 4 against 1
            layered = classifier_loop(data, args.steps, args.every, layers=True)
            layered["× without recorder"] = layered["loop_s"] / min(
                runs[0]["loop_s"], runs[2]["loop_s"]
            )
            layered["probe × one layer"] = layered["median_probe_s"] / runs[1]["median_probe_s"]
            runs.insert(2, layered)
        for row in runs:
            print(row, flush=True)
        rows += runs
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--regularizer", default="isometry")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=30)
    parser.add_argument("--json", default="bench/results/dynamics.json")
    args = parser.parse_args()
    runs = default_run(args)
    loops = user_loops(args)
    print(f"\n{args.data}, {args.regularizer}, {args.epochs} epochs, {environment()['backend']}\n")
    print_table(runs, ["probe_every", "train_s", "× without probes", "probes", "first_probe_s",
                       "median_probe_s", "probes_total_s"])  # fmt: skip
    print(f"\nown loops on digits, {args.steps} steps of 128, Recorder every {args.every} steps\n")
    print_table(loops, ["loop", "every", "loop_s", "× without recorder", "probes",
                        "first_probe_s", "median_probe_s", "probe × one layer"])  # fmt: skip
    config = dict(data=args.data, regularizer=args.regularizer, epochs=args.epochs)
    write_json(args.json, {"environment": environment(), "config": config, "runs": runs,
                           "user_loops": {"steps": args.steps, "every": args.every,
                                          "runs": loops}})  # fmt: skip


if __name__ == "__main__":
    main()
