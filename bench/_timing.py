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
