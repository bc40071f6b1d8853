"""What JAX's persistent compilation cache (`jgeo.enable_compilation_cache`) saves on
the first calls of a fresh process, each case in fresh subprocesses run from this
driver:

1. `connecting_geodesic`, then `distance` on the same `Pullback` of a tanh MLP
   2 → 256 → 256 → 784, in float64 (x64 on, as in the docs) and in float32;
2. the default main job, `jgeo train --epochs 5 --out <a fresh directory>`.

Each repeat runs every case with the cache off, then cold (an empty cache directory,
so the process compiles and writes), then warm (a second process on the same
directory). Every case runs again with `EQX_ON_ERROR=nan`: equinox's run-time error
checks (`eqx.error_if`, in jgeo's kernels and diffrax's solves) are host callbacks,
which XLA does not write to the cache; with them off, warm shows what the cache would
save if the compiled programs had none. Children record their compile events (tracing,
lowering, XLA compilation or cache loading), the cache's hits and the programs it did
not write, and the driver counts the lines each child wrote to stderr.

    python bench/compile_cache.py [--repeats 3] [--cases geodesic_f64,geodesic_f32,train]
        [--json bench/results/compile_cache.json] [--summarise]

`--summarise` recomputes the summary from the runs already in the JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
CASES = {
    "geodesic_f64": "connecting_geodesic, then distance (float64)",
    "geodesic_f32": "connecting_geodesic, then distance (float32)",
    "train": "jgeo train --epochs 5 (default job)",
}
VARIANTS = {"as is": {}, "EQX_ON_ERROR=nan": {"EQX_ON_ERROR": "nan"}}
MODES = ("off", "cold", "warm")


def _child_instruments() -> dict:
    """Listen to JAX's compile events and to the cache's reasons for not writing."""
    import logging

    from jax._src import monitoring

    stats = {"trace_s": 0.0, "lower_s": 0.0, "compile_s": 0.0, "cache_hits": 0,
             "cache_misses": 0, "not_written_host_callbacks": 0}  # fmt: skip
    names = {
        "/jax/core/compile/jaxpr_trace_duration": "trace_s",
        "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
        # XLA compilation, or reading and loading the program from the cache.
        "/jax/core/compile/backend_compile_duration": "compile_s",
    }

    def duration(event, seconds, **_):
        if event in names:
            stats[names[event]] += seconds

    def event(name, **_):
        if name.endswith("/cache_hits"):
            stats["cache_hits"] += 1
        elif name.endswith("/cache_misses"):
            stats["cache_misses"] += 1

    class Count(logging.Handler):
        def emit(self, record):
            if "because it uses host callbacks" in record.getMessage():
                stats["not_written_host_callbacks"] += 1

    logger = logging.getLogger("jax._src.compiler")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(Count())
    monitoring.register_event_duration_secs_listener(duration)
    monitoring.register_event_listener(event)
    return stats


def child_geodesic(dtype: str, cache: str | None) -> dict:
    start = time.perf_counter()
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import equinox as eqx
    import jax.numpy as jnp
    import jax.random as jr

    import jgeo

    if cache is not None:
        jgeo.enable_compilation_cache(cache)
    stats = _child_instruments()
    out = {"import_s": time.perf_counter() - start}
    t = time.perf_counter()
    decoder = eqx.nn.MLP(2, 784, 256, depth=2, activation=jnp.tanh, key=jr.key(0))
    metric = jgeo.Pullback(decoder)
    x, y = jnp.array([-0.4, 0.2]), jnp.array([0.4, -0.2])  # the pair of docs/index.md
    assert x.dtype == jnp.dtype(dtype)
    out["setup"] = {"seconds": time.perf_counter() - t, **stats}
    calls = {"connecting_geodesic": jgeo.connecting_geodesic, "distance": jgeo.distance}
    for name, fn in calls.items():
        before = dict(stats)
        t = time.perf_counter()
        jax.block_until_ready(fn(metric, x, y))
        out[name] = {"first_call_s": time.perf_counter() - t,
                     **{k: stats[k] - before[k] for k in stats}}  # fmt: skip
    out["process_s"] = time.perf_counter() - start
    return out


def child_train(out_dir: str) -> dict:
    start = time.perf_counter()
    from jgeo.cli import main

    stats = _child_instruments()
    imported = time.perf_counter() - start
    code = main(["train", "--epochs", "5", "--out", out_dir, "--no-progress"])
    assert code == 0, code
    return {"import_s": imported, "job": dict(stats), "process_s": time.perf_counter() - start}


def run_child(case: str, mode: str, variant: str, cache: Path, out_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "JGEO_", "EQX_"))}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's terminal shows
    env.update(VARIANTS[variant])
    env["XDG_CACHE_HOME"] = str(cache.parent)  # the command's default: $XDG_CACHE_HOME/jgeo/xla
    if mode == "off":
        env["JGEO_COMPILATION_CACHE"] = "0"
    args = [sys.executable, __file__, "--child", case]
    if case == "train":
        args += ["--out", str(out_dir)]
    elif mode != "off":
        args += ["--cache", str(cache)]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{case} {mode} {variant} failed:\n{done.stderr[-3000:]}")
    lines = done.stderr.strip().splitlines()
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {"case": case, "variant": variant, "mode": mode, "wall_s": wall,
            "stderr_lines": len(lines), "stderr_sample": sorted({ln[:90] for ln in lines})[:4],
            **row}  # fmt: skip


def _first_call(row: dict) -> float:
    """The measured work: both first calls (geodesics) or the job's process."""
    if row["case"] == "train":
        return row["wall_s"]
    return row["connecting_geodesic"]["first_call_s"] + row["distance"]["first_call_s"]


def _stat(row: dict, name: str) -> float:
    """A child's count or seconds over the whole job, or over setup and both calls."""
    if row["case"] == "train":
        return row["job"][name]
    return sum(row[part][name] for part in ("setup", "connecting_geodesic", "distance"))


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for case in dict.fromkeys(r["case"] for r in runs):
        for variant in VARIANTS:
            group = [r for r in runs if r["case"] == case and r["variant"] == variant]
            if not group:
                continue
            row = {"case": case, "label": CASES[case], "variant": variant}
            for mode in MODES:
                times = [_first_call(r) for r in group if r["mode"] == mode]
                row[mode] = {"median_s": statistics.median(times), "min_s": min(times),
                             "max_s": max(times), "n": len(times)}  # fmt: skip
            # warm ÷ cold and warm ÷ off of each repeat (its three processes ran back to
            # back), then their median.
            for base in ("cold", "off"):
                ratios = []
                for repeat in sorted({r["repeat"] for r in group}):
                    runs_ = {r["mode"]: _first_call(r) for r in group if r["repeat"] == repeat}
                    ratios.append(runs_["warm"] / runs_[base])
                row[f"warm_over_{base}"] = {"median": statistics.median(ratios),
                                            "min": min(ratios), "max": max(ratios)}  # fmt: skip
            warm = [r for r in group if r["mode"] == "warm"]
            for stat in ("not_written_host_callbacks", "cache_hits", "trace_s", "compile_s"):
                row[f"warm_{stat}"] = statistics.median(_stat(r, stat) for r in warm)
                row[f"cold_{stat}"] = statistics.median(
                    _stat(r, stat) for r in group if r["mode"] == "cold"
                )
            row["warm_stderr_lines"] = max(r["stderr_lines"] for r in warm)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "compile_cache.json"))
    parser.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary of the runs in --json")  # fmt: skip
    args = parser.parse_args()
    if args.summarise:
        sys.path.insert(0, str(Path(__file__).parent))
        from _timing import write_json

        results = json.loads(Path(args.json).read_text())
        write_json(args.json, {**results, "summary": summarise(results["runs"])})
        return
    if args.child == "train":
        print(json.dumps(child_train(args.out)))
        return
    if args.child:
        dtype = {"geodesic_f64": "float64", "geodesic_f32": "float32"}[args.child]
        print(json.dumps(child_geodesic(dtype, args.cache)))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from _timing import environment, print_table, write_json

    runs = []
    for repeat in range(args.repeats):
        for case in args.cases.split(","):
            for variant in args.variants.split(","):
                with tempfile.TemporaryDirectory() as tmp:
                    cache = Path(tmp) / "cache" / "jgeo" / "xla"
                    for mode in MODES:
                        row = run_child(case, mode, variant, cache, Path(tmp) / f"run-{mode}")
                        row["repeat"] = repeat
                        runs.append(row)
                        print(json.dumps({k: row[k] for k in ("case", "variant", "mode",
                              "wall_s", "stderr_lines")}), f"work {_first_call(row):.2f} s",
                              flush=True)  # fmt: skip
    summary = summarise(runs)
    print()
    print_table(
        [{"case": r["case"], "variant": r["variant"], "off": r["off"]["median_s"],
          "cold": r["cold"]["median_s"], "warm": r["warm"]["median_s"],
          "warm/cold": r["warm_over_cold"]["median"],
          "not written": r["warm_not_written_host_callbacks"],
          "stderr lines": r["warm_stderr_lines"]} for r in summary],
        ["case", "variant", "off", "cold", "warm", "warm/cold", "not written", "stderr lines"],
    )  # fmt: skip
    write_json(args.json, {
        "environment": environment(),
        "note": "2-core CPU machine shared with other jobs while it ran: medians and "
                "min–max over the repeats",
        "repeats": args.repeats,
        "min_compile_time_secs": _min_compile_time(),
        "summary": summary,
        "runs": runs,
    })  # fmt: skip


def _min_compile_time() -> float:
    import inspect

    import jgeo

    parameters = inspect.signature(jgeo.enable_compilation_cache).parameters
    return parameters["min_compile_time_secs"].default


if __name__ == "__main__":
    main()
