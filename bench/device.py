"""One short accelerator check: float32 on the default device against float64 on the
CPU, then the bench figures measured on that device.

1. Agreement, under the default float32 matmul precision and under
   `jax.default_matmul_precision("highest")`: the kernels (metric, Christoffel symbols,
   Gaussian curvature, log-volume), exp maps, connecting geodesics, the volume
   regularizer and the MCN of a tanh MLP decoder, in float32 on the default device vs
   float64 on the CPU: the largest error relative to the largest reference value.
2. Cost of a training step, plain and regularized (bench/training.py's step_cost).
3. Batched log maps of bench/geodesics.py (float32 on the device).
4. Probe overhead on the default run (bench/dynamics.py), shortened.
5. The tables of bench/kernels.py and bench/geodesics.py, by their own functions: the
   Riemann ratio (nested autodiff ÷ Gauss equation, d = 8), each kernel's cost in
   forward passes and its memory against d for the MLP and conv decoders (`--dims`), and
   the distance tiers at d = 2 and 16 (float64, as on the CPU; stochman where installed).

Runs anywhere (on a CPU-only machine part 1 compares CPU float32 with float64):

    python bench/device.py [--pairs 256] [--epochs 100] [--dims 2,16,64] [--json ...]
"""

import argparse
import time

import equinox as eqx
import jax

jax.config.update("jax_enable_x64", True)  # float64 for the CPU reference; float32 stays so

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
from _decoder import decoder  # noqa: E402
from _timing import environment, print_table, time_jitted, write_json  # noqa: E402

import jgeo  # noqa: E402

CPU = jax.devices("cpu")[0]


def _cast(tree, dtype, device):
    def leaf(a):
        if eqx.is_inexact_array(a):
            return jax.device_put(a.astype(dtype), device)
        return a

    return jax.tree.map(leaf, tree)


def agreement(n: int = 64, precision: str | None = None) -> list[dict]:
    """Largest float32 error against float64, with float32 matrix products at `precision`
    (None: the device's default, which on GPUs and TPUs may be TF32 or bf16 passes)."""
    with jax.default_matmul_precision(precision):
        return _agreement(n, precision or "default")


def _agreement(n: int, precision: str) -> list[dict]:
    mlp = eqx.nn.MLP(2, 64, 128, depth=2, activation=jnp.tanh, key=jr.key(0), dtype=jnp.float64)
    k1, k2 = jr.split(jr.key(1))
    xs, vs = jr.normal(k1, (n, 2), jnp.float64), 0.5 * jr.normal(k2, (n, 2), jnp.float64)
    ys = xs + vs
    cases = {
        "metric G": lambda m, x, v, y: m(x),
        "christoffel": lambda m, x, v, y: jgeo.christoffel(m, x),
        "gaussian_curvature": lambda m, x, v, y: jgeo.gaussian_curvature(m, x),
        "log_volume": lambda m, x, v, y: jgeo.log_volume(m, x),
        "exp_map": lambda m, x, v, y: jgeo.exp_map(m, x, v),
        "connecting_geodesic length": lambda m, x, v, y: (
            jgeo.connecting_geodesic(m, x, y, solver=jgeo.EnergyBVP(), throw=False).length
        ),
    }
    rows = []
    for name, fn in cases.items():
        batched = eqx.filter_jit(jax.vmap(lambda mlp, x, v, y: fn(jgeo.Pullback(mlp), x, v, y),
                                   in_axes=(None, 0, 0, 0)))  # fmt: skip
        reference = batched(*_cast((mlp, xs, vs, ys), jnp.float64, CPU))
        device = jax.devices()[0]
        start = time.perf_counter()
        low = jax.block_until_ready(batched(*_cast((mlp, xs, vs, ys), jnp.float32, device)))
        seconds = time.perf_counter() - start
        error = jnp.nanmax(jnp.abs(jax.device_put(low, CPU).astype(jnp.float64) - reference))
        rows.append({"quantity": f"{name} ({n} points)", "dtype": str(low.dtype),
                     "precision": precision,
                     "max_rel_error": float(error / jnp.max(jnp.abs(reference))),
                     "first_call_s": seconds})  # fmt: skip
        print(rows[-1], flush=True)
    # Deterministic batch measures (the stochastic regularizers draw different random
    # numbers in float32 and float64, so they are not compared).
    key = jr.key(2)
    for name, fn in {
        "volume regularizer (exact, d = 2)": lambda mlp, z: jgeo.regularizers.volume(mlp, z, key),
        "mean condition number": lambda mlp, z: jgeo.diagnostics.mean_condition_number(
            jgeo.Pullback(mlp), z
        ),
    }.items():
        f = eqx.filter_jit(fn)
        ref = f(*_cast((mlp, xs), jnp.float64, CPU))
        low = f(*_cast((mlp, xs), jnp.float32, jax.devices()[0]))
        error = abs(float(low) - float(ref)) / abs(float(ref))
        rows.append({"quantity": name, "dtype": str(low.dtype), "precision": precision,
                     "max_rel_error": error})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--dims", default="2,16,64", help="latent dimensions of part 5")
    parser.add_argument("--distance-pairs", type=int, default=50)
    parser.add_argument("--json", default="bench/results/device.json")
    args = parser.parse_args()
    result = {"environment": environment()}
    print(result["environment"], flush=True)

    # Under the device's default matmul precision and under "highest" (full float32).
    result["agreement"] = agreement() + agreement(precision="highest")
    write_json(args.json, result)
    jax.config.update("jax_enable_x64", False)  # the rest in float32, as training runs

    import training  # bench/training.py: float32 arrays throughout

    cost = training.step_cost(reg_fraction=0.5)
    result["step_cost"] = cost
    print_table(cost, ["step", "median_s", "× plain", "compile_s"])
    write_json(args.json, result)

    mlp = decoder(jr.key(1))
    metric = jgeo.Pullback(mlp)
    k1, k2 = jr.split(jr.key(2))
    xs, ys = jr.normal(k1, (args.pairs, 2)), jr.normal(k2, (args.pairs, 2))
    solve = jax.jit(jax.vmap(lambda m, x, y: jgeo.connecting_geodesic(m, x, y, throw=False),
                             in_axes=(None, 0, 0)))  # fmt: skip
    timing, geodesics = time_jitted(solve, metric, xs, ys, repeats=1, min_seconds=0.0)
    result["log_maps"] = {"pairs": args.pairs, "dtype": "float32", **timing,
                          "per_item_s": timing["median_s"] / args.pairs,
                          "converged": float(jnp.mean(geodesics.converged))}  # fmt: skip
    print(result["log_maps"], flush=True)
    write_json(args.json, result)

    import dynamics as dynamics_bench  # bench/dynamics.py

    from jgeo.train import make_config

    runs = []
    for probe_every in (0, 1, 0):
        config = make_config({"epochs": args.epochs, "probe_every": probe_every})
        seconds, record = dynamics_bench.timed_run(config)
        runs.append({"probe_every": probe_every, "train_s": seconds})
        if record is not None:
            runs[-1]["median_probe_s"] = float(jnp.median(jnp.asarray(record.series("seconds"))))
        print(runs[-1], flush=True)
    runs[1]["× without probes"] = runs[1]["train_s"] / min(runs[0]["train_s"], runs[2]["train_s"])
    result["probes"] = runs
    write_json(args.json, result)

    import geodesics  # bench/geodesics.py
    import kernels  # bench/kernels.py

    result["riemann_ratio"] = kernels.riemann_ratio(256)
    print(result["riemann_ratio"], flush=True)
    dims = kernels.dimension_rows(256, [int(d) for d in args.dims.split(",")])
    result["dimensions"], result["exponents"] = dims, kernels.fit_exponents(dims)
    write_json(args.json, result)
    jax.config.update("jax_enable_x64", True)  # the distance tiers' accuracy is float64's
    result["distances"] = [
        row for d in (2, 16) for row in geodesics.decoder_distances(args.distance_pairs, d)
    ]
    write_json(args.json, result)


if __name__ == "__main__":
    main()
