"""Cost of loss-landscape probes (`jgeo.landscape`) against training, in one process.

1. The default `jgeo train` run (digits, 2-D autoencoder, isometry regularizer): one
   sharpness probe (k = 1, 20 Lanczos steps), a Hutch++ trace (20 products) and the
   probe `jgeo train --landscape-every` records (both), each in training steps of that
   run (a step: gradient of the objective on a batch of 128 and the AdamW update).
2. Memory and time of the sharpness by Lanczos against the dense Hessian
   (`jax.hessian` + `eigvalsh`) for smaller autoencoders, where the dense one fits:
   XLA's own accounting of the compiled programs (`memory_analysis`).

    python bench/landscape.py [--repeats 5]
"""

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr
from _timing import compiled_bytes, environment, print_table, time_jitted, write_json
from flax import nnx
from jax.flatten_util import ravel_pytree

from jgeo import landscape
from jgeo.train import build, eval_index, loss_fn, make_config, make_epoch, steps_per_epoch


def _objective(config):
    """The run's data, parameters, optimiser, and its objective on a fixed batch."""
    data, model, tx = build(config)
    graphdef, params = nnx.split(model)
    loss, key = loss_fn(graphdef, config), jr.key(config.seed + 2)
    batch = jnp.asarray(data.x[eval_index(config, len(data.x))[: config.batch_size]])
    return data, graphdef, params, tx, lambda p: loss(p, batch, key)[0]


def probe_cost(repeats: int) -> dict:
    config = make_config({})
    data, graphdef, params, tx, objective = _objective(config)
    x = jnp.asarray(data.x)
    epoch = make_epoch(graphdef, tx, config, len(x))
    timing, _ = time_jitted(epoch, params, tx.init(params), x, 1, repeats=repeats)
    step_s = timing["median_s"] / steps_per_epoch(config, len(x))
    key = jr.key(0)
    probes = {
        "sharpness (k = 1, 20 Lanczos steps)": jax.jit(
            lambda p, k: landscape.hessian_eigenvalues(objective, p, key=k, iterations=20)
        ),
        "Hessian trace (Hutch++, 20 products)": jax.jit(
            lambda p, k: landscape.hessian_trace(objective, p, key=k, probes=20)
        ),
        "the --landscape-every probe (both)": jax.jit(
            lambda p, k: landscape.measure_landscape(
                landscape.Landscape(lambda q, _: objective(q), None), p, k
            )
        ),
    }
    rows = []
    for name, fn in probes.items():
        t, _ = time_jitted(fn, params, key, repeats=repeats)
        rows.append({"probe": name, "compile_s": t["compile_s"], "median_s": t["median_s"],
                     "training steps": t["median_s"] / step_s})  # fmt: skip
    print(f"default run: {ravel_pytree(params)[0].size} parameters, "
          f"one training step {1e3 * step_s:.2f} ms")  # fmt: skip
    print_table(rows, ["probe", "compile_s", "median_s", "training steps"])
    return {"parameters": int(ravel_pytree(params)[0].size), "step_s": step_s, "probes": rows}


def dense_against_lanczos(repeats: int) -> list[dict]:
    rows = []
    for hidden in [(16, 16), (32, 32), (64, 64)]:
        config = make_config({"hidden": list(hidden)})
        _, _, params, _, objective = _objective(config)
        flat, unravel = ravel_pytree(params)
        key = jr.key(0)
        lanczos = jax.jit(
            lambda p, k: landscape.hessian_eigenvalues(objective, p, key=k, iterations=20)
        )
        dense = jax.jit(
            lambda t: jnp.linalg.eigvalsh(jax.hessian(lambda u: objective(unravel(u)))(t))[-1]
        )
        t_l, top_l = time_jitted(lanczos, params, key, repeats=repeats)
        t_d, top_d = time_jitted(dense, flat, repeats=max(1, repeats // 2), min_seconds=0)
        rows.append({
            "hidden": str(hidden), "parameters": int(flat.size),
            "lanczos_MiB": compiled_bytes(lanczos.lower(params, key).compile()) / 2**20,
            "dense_MiB": compiled_bytes(dense.lower(flat).compile()) / 2**20,
            "lanczos_s": t_l["median_s"], "dense_s": t_d["median_s"],
            "lanczos_top": float(top_l[0]), "dense_top": float(top_d),
        })  # fmt: skip
    print_table(rows, ["hidden", "parameters", "lanczos_MiB", "dense_MiB", "lanczos_s",
                       "dense_s", "lanczos_top", "dense_top"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench/results/landscape.json")
    args = parser.parse_args()
    payload = {"environment": environment(), "default_run": probe_cost(args.repeats)}
    payload["dense_against_lanczos"] = dense_against_lanczos(args.repeats)
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
