"""Timing helpers shared by the bench scripts: compile separately, then median of repeats."""

import json
import platform
import statistics
import time
from pathlib import Path

import jax


def time_jitted(fn, *args, repeats: int = 20, min_seconds: float = 0.2) -> tuple[dict, object]:
    """Compile `fn` (a `jax.jit` function) for `args`, then time calls until both
    `repeats` calls and `min_seconds` have passed. Returns compile and median run
    seconds, and the last call's output."""
    start = time.perf_counter()
    fn = fn.lower(*args).compile()  # ahead of time, so no timed call includes compiling
    compile_s = time.perf_counter() - start
    runs, total = [], 0.0
    while len(runs) < repeats or total < min_seconds:
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - start)
        total += runs[-1]
    timing = {"compile_s": compile_s, "median_s": statistics.median(runs), "repeats": len(runs)}
    return timing, out


def time_ratio(slow, fast, *args, rounds: int = 7, min_seconds: float = 0.2) -> dict:
    """slow(*args) time ÷ fast(*args) time (both `jax.jit` functions), measured in
    alternating rounds and reported as the median of the per-round ratios: a ratio of two
    medians taken minutes apart drifts with the machine's load, interleaving does not."""
    slow, fast = (f.lower(*args).compile() for f in (slow, fast))
    ratios, times = [], {"slow": [], "fast": []}
    for _ in range(rounds):
        for name, fn in (("slow", slow), ("fast", fast)):
            runs, total = [], 0.0
            while len(runs) < 3 or total < min_seconds:
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                runs.append(time.perf_counter() - start)
                total += runs[-1]
            times[name].append(statistics.median(runs))
        ratios.append(times["slow"][-1] / times["fast"][-1])
    return {"ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "slow_s": statistics.median(times["slow"]),
            "fast_s": statistics.median(times["fast"]), "rounds": rounds}  # fmt: skip


def compiled_bytes(compiled) -> int | None:
    """Bytes XLA reserves for a compiled program: its temporaries and outputs (None where
    the backend does not say)."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)


def peak_bytes(fn, *args) -> int | None:
    """`compiled_bytes` of the `jax.jit` function `fn` compiled for `args`."""
    return compiled_bytes(fn.lower(*args).compile())


def environment() -> dict:
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "device_count": jax.device_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path}")
