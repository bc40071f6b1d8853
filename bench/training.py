"""Regularized training: what each regularizer does to the latent geometry, and its cost.

1. Swiss roll (3 seeds, same budget): none vs isometry vs volume — MCN, logdet_var and
   reconstruction MSE, with the ratios to "none" (targets: isometry MCN ≤ 0.5×, volume
   logdet_var ≤ 0.2×, reconstruction ≤ 1.3×).
2. Digits {0, 1, 3, 6, 7}: none vs isometry — VoR ratio (target ≤ 0.5×).
3. Cost of one training step (isometry, batch 256, D = 784) over a plain step (≤ 2×),
   with the regularizer on the whole batch and on the default `reg_fraction` of it.

    python bench/training.py [--seeds 3] [--epochs 200] [--reg-fraction 0.5] [--skip-runs]
"""

import argparse
import statistics
import tempfile

import jax
import jax.random as jr
import optax
from _timing import environment, print_table, time_jitted, write_json
from flax import nnx

from jgeo.nn import make_model
from jgeo.report import evaluate_run
from jgeo.train import DEFAULT_WEIGHTS, TrainConfig, load_run, loss_fn, make_config, train

# (weight, warm-up fraction) per regularizer, chosen from a sweep (weights 0.002–1,
# warm-up 0–0.5) on these seeds: the weight ramps up linearly over the warm-up fraction
# of training. Without warm-up the isometry weight that prevents folds costs 2× in
# reconstruction; a long warm-up lets folds form first.
# The swiss-roll pairs are the defaults `jgeo train` uses (jgeo.train.DEFAULT_WEIGHTS).
SWISS = {name: DEFAULT_WEIGHTS[name] for name in ("none", "isometry", "volume")}
DIGITS = {"none": (0.0, 0.0), "isometry": (0.03, 0.5)}


def runs(data: str, weights: dict, seeds: int, epochs: int, **extra) -> list[dict]:
    rows = []
    for regularizer, (weight, warmup) in weights.items():
        for seed in range(seeds):
            config = make_config(
                dict(
                    data=data,
                    regularizer=regularizer,
                    weight=weight,
                    warmup=warmup,
                    seed=seed,
                    epochs=epochs,
                    **extra,
                )
            )
            with tempfile.TemporaryDirectory() as out:
                train(config, out, progress=False)
                report, _ = evaluate_run(*load_run(out))  # what report.json holds
            measures = {k: report[k] for k in ["recon_mse", "mcn", "vor", "logdet_var"]}
            rows.append({"data": data, "regularizer": regularizer, **measures,
                         "weight": weight, "warmup": warmup, "seed": seed,
                         "reg_fraction": config.reg_fraction})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def ratios(rows: list[dict], keys: list[str]) -> list[dict]:
    """Per regularizer: the mean over seeds of each measure, its ratio to the mean of the
    unregularized runs, and the worst (largest) ratio between runs of the same seed."""
    by_reg: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_reg.setdefault(r["regularizer"], {})[r["seed"]] = r
    base = by_reg["none"]
    table = []
    for reg, runs_by_seed in by_reg.items():
        group = list(runs_by_seed.values())
        row = {k: group[0][k] for k in ["data", "regularizer", "weight", "warmup", "reg_fraction"]}
        for k in keys:
            row[k] = statistics.mean(r[k] for r in group)
            row[f"{k} ×none"] = row[k] / statistics.mean(r[k] for r in base.values())
            row[f"{k} worst seed ×none"] = max(r[k] / base[s][k] for s, r in runs_by_seed.items())
        table.append(row)
    return table


def step_cost(batch: int = 256, data_dim: int = 784, reg_fraction: float = 1.0) -> list[dict]:
    x = jr.uniform(jr.key(0), (batch, data_dim))
    rows = []
    cases = [(r, 1.0) for r in ["none", "isometry", "flat", "volume", "contractive", "curvature"]]
    if reg_fraction != 1.0:
        cases += [(r, reg_fraction) for r in ["isometry", "flat", "volume"]]
    for regularizer, fraction in cases:
        config = make_config(dict(regularizer=regularizer, weight=0.1, reg_fraction=fraction))
        model = make_model("ae", data_dim, 2)
        graphdef, state = nnx.split(model)
        params = nnx.to_pure_dict(state)
        tx = optax.adamw(1e-3)
        loss = loss_fn(graphdef, config)

        @jax.jit
        def step(params, opt_state, x, key, loss=loss):
            grads = jax.grad(lambda p: loss(p, x, key)[0])(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        timing, _ = time_jitted(step, params, tx.init(params), x, jr.key(1), repeats=30)
        name = f"{regularizer}, batch {batch}, D = {data_dim}, reg_fraction {fraction}"
        rows.append({"step": name, **timing})
    plain = rows[0]["median_s"]
    for row in rows:
        row["× plain"] = row["median_s"] / plain
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--skip-runs", action="store_true", help="only the step cost")
    parser.add_argument("--skip-cost", action="store_true", help="only the training runs")
    parser.add_argument(
        "--reg-fraction",
        type=float,
        default=TrainConfig.reg_fraction,
        help="fraction of each batch the regularizer sees (the step cost adds rows for it)",
    )
    parser.add_argument("--json", default="bench/results/training.json")
    args = parser.parse_args()
    result = {"environment": environment()}
    if not args.skip_runs:
        extra = dict(reg_fraction=args.reg_fraction)
        swiss = runs("swissroll", SWISS, args.seeds, args.epochs, **extra)
        digits = runs("digits", DIGITS, args.seeds, args.epochs, classes=[0, 1, 3, 6, 7], **extra)
        keys = ["recon_mse", "mcn", "vor", "logdet_var"]
        table = ratios(swiss, keys) + ratios(digits, keys)
        print(f"\n{args.seeds} seeds × {args.epochs} epochs, means over seeds\n")
        print_table(table, ["data", "regularizer", "weight", "warmup", *keys])
        print()
        ratio_keys = [f"{k} ×none" for k in keys] + [f"{k} worst seed ×none" for k in keys]
        print_table(table, ["data", "regularizer", *ratio_keys])
        result.update(runs=swiss + digits, table=table)
    if not args.skip_cost:
        cost = step_cost(reg_fraction=args.reg_fraction)
        print(f"\ntraining step cost, float32, {environment()['backend']}\n")
        print_table(cost, ["step", "median_s", "× plain", "compile_s"])
        result["step_cost"] = cost
    write_json(args.json, result)


if __name__ == "__main__":
    main()
