"""Scale-out: strong and weak scaling of a sharded exp-map batch and of a training step.

Strong scaling keeps the global batch fixed and splits it over 1, 2, 4, 8 devices
(speed-up = t₁ / tₙ); weak scaling keeps the batch per device fixed (efficiency =
t₁ / tₙ, 1 is perfect). Every row also checks that the sharded result equals the
one-device result.

On a CPU the devices are simulated (`--xla_force_host_platform_device_count`, set here
before JAX starts): they share the machine's cores, so the table measures what
partitioning costs, not a speed-up. On a GPU node the same script, unchanged, uses the
real devices (as many of 1, 2, 4, 8 as there are).
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ["XLA_FLAGS"] = flags.strip()

import argparse  # noqa: E402

import jax  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _decoder import decoder  # noqa: E402
from _timing import environment, print_table, time_jitted, write_json  # noqa: E402
from flax import nnx  # noqa: E402

import jgeo  # noqa: E402
from jgeo import sharding  # noqa: E402
from jgeo.nn import make_model  # noqa: E402
from jgeo.train import (
    make_config,  # noqa: E402
    make_epoch,  # noqa: E402
)

STEPS = 4  # training steps per timed call (one jitted epoch)


def exp_map_case(devices: int, batch: int, d: int = 2) -> tuple[dict, np.ndarray]:
    """exp maps of a tanh MLP decoder d → 256 → 256 → 784 (float32), `batch` points."""
    metric = jgeo.Pullback(decoder(jr.key(0), d))
    x = 0.5 * jr.normal(jr.key(1), (batch, d))
    v = 0.5 * jr.normal(jr.key(2), (batch, d))
    exp = jax.jit(jax.vmap(lambda x, v: jgeo.exp_map(metric, x, v, throw=False)))
    if devices > 1:
        mesh = jgeo.make_mesh(devices)
        x, v = jgeo.shard_batch(mesh, x), jgeo.shard_batch(mesh, v)
    timing, out = time_jitted(exp, x, v, repeats=5)
    return timing, np.asarray(out)


def training_case(devices: int, batch: int, data_dim: int = 784) -> tuple[dict, np.ndarray]:
    """`STEPS` isometry-regularized AdamW steps of the default autoencoder, global batch
    `batch`; returns the timing per step and the final parameters' first layer."""
    config = make_config(dict(regularizer="isometry", batch_size=batch, epochs=1, warmup=0.0))
    model = make_model("ae", data_dim, config.latent_dim, hidden=config.hidden, seed=0)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    tx = optax.adamw(1e-3)
    opt_state = tx.init(params)
    x = jr.uniform(jr.key(0), (STEPS * batch, data_dim))
    mesh = None
    if devices > 1:
        mesh = jgeo.make_mesh(devices)
        params, opt_state, x = sharding.replicate(mesh, (params, opt_state, x))
    epoch = make_epoch(graphdef, tx, config, len(x), mesh)
    timing, (new_params, _, _) = time_jitted(epoch, params, opt_state, x, 1, repeats=5)
    timing["median_s"] /= STEPS
    first = np.asarray(jax.tree_util.tree_leaves(new_params)[0])
    return timing, first


def scaling(name: str, case, counts: list[int], batch: int) -> list[dict]:
    rows, reference = [], {}
    for kind in ["strong", "weak"]:
        base = None
        for n in counts:
            global_batch = batch if kind == "strong" else batch * n
            timing, out = case(n, global_batch)
            if n == 1:
                reference[global_batch] = out
            base = timing["median_s"] if n == 1 else base
            row = {
                "case": name,
                "scaling": kind,
                "devices": n,
                "global batch": global_batch,
                **timing,
                "speed-up" if kind == "strong" else "efficiency": base / timing["median_s"],
            }
            if global_batch in reference:  # the one-device result at the same global batch
                row["max |Δ| vs 1 device"] = float(np.max(np.abs(out - reference[global_batch])))
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-batch", type=int, default=256, help="exp maps (per device for weak)")
    parser.add_argument("--train-batch", type=int, default=256, help="training batch (idem)")
    parser.add_argument("--json", default="bench/results/scaling.json")
    args = parser.parse_args()

    counts = [n for n in (1, 2, 4, 8) if n <= jax.device_count()]
    print(f"{jax.device_count()} {jax.default_backend()} devices; scaling over {counts}\n")
    rows = scaling("exp map", exp_map_case, counts, args.exp_batch)
    rows += scaling("training step", training_case, counts, args.train_batch)
    print()
    columns = ["case", "scaling", "devices", "global batch", "median_s", "speed-up"]
    print_table(rows, columns + ["efficiency", "max |Δ| vs 1 device", "compile_s"])
    write_json(args.json, {"environment": environment(), "rows": rows})


if __name__ == "__main__":
    main()
