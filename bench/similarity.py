"""Comparing representations: jgeo's measures against the code the field uses, on the
same inputs in one process — a NumPy CKA (the formulas of Kornblith et al.'s reference
notebook, Gram and feature-space forms), netrep's shape metrics (Williams et al. 2021)
and DADApy's information imbalance and GRIDE — and the peak memory of CKA on a wide
(conv-like) layer.

netrep and DADApy are optional and skipped when absent (a missing one's rows say so):
netrep is not on PyPI (install it from its repository); DADApy 0.3.4 pins numpy < 2,
jax 0.4.30 and flax 0.8.5, so it cannot share an environment with jgeo (its Cython
sources use `np.int_t`, which NumPy 2 removed): `--dadapy-python` names the interpreter
of an environment that has it, where its rows are computed in a subprocess on the same
inputs (its times then come from another process: a ratio less exact than the others). Values are
compared in float64 (the largest absolute difference); times are taken on float32
inputs for jgeo and for the references alike (median of repeats, compile excluded and
reported apart).

The memory check runs `cka` of two (N, D) float32 layers in a fresh subprocess per input
kind (NumPy arrays, streamed to the device by chunks; JAX arrays, sliced in one
compiled loop), after a small call that loads the code: it resets the kernel's peak
resident set size (writing 5 to /proc/self/clear_refs), calls `cka`, and reports the
peak (VmHWM of /proc/self/status) minus the resident memory just before the call (after
`malloc_trim`, so that freed heap pages do not hide new allocations), once the inputs
exist: what the computation needed beyond its inputs (Linux, glibc).

    python bench/similarity.py [--n 5000] [--d 512] [--wide-n 2000] [--wide-d 100000]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # float64 for the agreement; timings use float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import environment, print_table, time_jitted, write_json  # noqa: E402

from jgeo import representation as rep  # noqa: E402

# -- references --------------------------------------------------------------------------


def numpy_gram_cka(x, y, debiased=False):
    """Kornblith et al.'s reference notebook: cka(gram_linear(x), gram_linear(y))."""

    def centre(gram):
        gram = gram.copy()
        n = len(gram)
        if debiased:
            np.fill_diagonal(gram, 0)
            means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
            means -= np.sum(means) / (2 * (n - 1))
            gram -= means[:, None]
            gram -= means[None, :]
            np.fill_diagonal(gram, 0)
        else:
            means = np.mean(gram, 0, dtype=np.float64)
            means -= np.mean(means) / 2
            gram -= means[:, None]
            gram -= means[None, :]
        return gram

    gx, gy = centre(x @ x.T), centre(y @ y.T)
    return (gx.ravel() @ gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy))


def numpy_feature_cka(x, y):
    """The notebook's feature_space_linear_cka (biased): O(N·D²)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def numpy_rbf_cka(x, y, sigma=1.0):
    def kernel(z):
        norms = np.sum(z**2, 1)
        squared = np.maximum(norms[:, None] + norms[None] - 2 * z @ z.T, 0)
        median = np.median(squared[np.triu_indices(len(z), 1)])
        return np.exp(-squared / (2 * sigma**2 * median))

    h = np.eye(len(x)) - 1 / len(x)
    kx, ky = h @ kernel(x) @ h, h @ kernel(y) @ h
    return np.sum(kx * ky) / (np.linalg.norm(kx) * np.linalg.norm(ky))


def timed(fn, *args, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


# -- agreement and time --------------------------------------------------------------------


def inputs(n: int, d: int):
    """Two related representations: a random tanh layer and a noisy linear read-out."""
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(size=(n, 32)) @ rng.normal(size=(32, d)) / 4)
    y = x @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.5 * rng.normal(size=(n, d))
    return x, y


def comparisons(args) -> list[dict]:
    x64, y64 = inputs(args.n, args.d)
    x32, y32 = x64.astype(np.float32), y64.astype(np.float32)
    small = slice(0, args.small)  # the O(N²) measures and DADApy at fewer points
    try:
        import netrep.metrics as netrep
    except ImportError:
        netrep = None
    try:
        from dadapy import Data as dadapy_data
        from dadapy.metric_comparisons import MetricComparisons
    except ImportError:
        dadapy_data = None
    rows = []

    def row(measure, jgeo_fn, reference_fn, reference, at=slice(None), jgeo_options=None):
        jitted = jax.jit(lambda a, b: jgeo_fn(a, b, **(jgeo_options or {})))
        value = float(jitted(jnp.asarray(x64[at]), jnp.asarray(y64[at])))
        timing, _ = time_jitted(jitted, jnp.asarray(x32[at]), jnp.asarray(y32[at]),
                                repeats=args.repeats)  # fmt: skip
        entry = {"measure": measure, "n": len(x64[at]), "d": args.d, "jgeo": value,
                 "jgeo_s": timing["median_s"], "compile_s": timing["compile_s"],
                 "reference": reference}  # fmt: skip
        if reference_fn is None:
            entry.update(reference_value=None, reference_s=None, difference=None, speedup=None)
        else:
            expected = float(reference_fn(x64[at], y64[at]))
            seconds, _ = timed(reference_fn, x32[at], y32[at], repeats=args.repeats)
            speedup = seconds / timing["median_s"]
            entry.update(reference_value=expected, reference_s=seconds,
                         difference=abs(value - expected), speedup=speedup)  # fmt: skip
        rows.append(entry)
        print(entry, flush=True)

    row("linear CKA", rep.cka, numpy_feature_cka, "NumPy (feature space)")
    row("linear CKA", rep.cka, numpy_gram_cka, "NumPy (Gram matrices)")
    row("debiased linear CKA", rep.cka, lambda a, b: numpy_gram_cka(a, b, debiased=True),
        "NumPy (Gram matrices)", jgeo_options={"debiased": True})  # fmt: skip
    row("RBF CKA", rep.cka, numpy_rbf_cka, "NumPy (Gram matrices)", small,
        jgeo_options={"kernel": "rbf"})  # fmt: skip
    for alpha, name in ((1.0, "Procrustes (angular)"), (0.5, "shape metric α = 0.5"),
                        (0.0, "CCA distance (α = 0)")):  # fmt: skip
        reference = None
        if netrep is not None:
            metric = netrep.LinearMetric(alpha=alpha, score_method="angular")
            reference = metric.fit_score
        row(name, rep.shape_distance, reference, "netrep" if netrep else "netrep (not installed)",
            jgeo_options={"alpha": alpha})  # fmt: skip
    if dadapy_data is not None:

        def imbalance(a, b):
            comparison = MetricComparisons(coordinates=np.concatenate([a, b], 1), maxk=len(a) - 1)
            d = a.shape[1]
            first, second = list(range(d)), list(range(d, 2 * d))
            return comparison.return_inf_imb_two_selected_coords(first, second)[0]

        def gride(a, _):
            ids, _, _ = dadapy_data(a.astype(np.float64)).return_id_scaling_gride(range_max=2)
            return ids[0]

        row("information imbalance", rep.information_imbalance, imbalance, "DADApy", small)
        row("GRIDE (n1 = 1, n2 = 2)", _gride, gride, "DADApy", small)
    else:
        outside = _dadapy_outside(args, x64[small], y64[small])
        for name, fn in (("information imbalance", rep.information_imbalance),
                         ("GRIDE (n1 = 1, n2 = 2)", _gride)):  # fmt: skip
            if outside is None:
                row(name, fn, None, "DADApy (not installed)", small)
                continue
            value, seconds = outside[name]
            reference = f"DADApy {outside['version']} (own environment, a subprocess)"
            row(name, fn, lambda a, b, v=value: v, reference, small)
            rows[-1].update(reference_s=seconds, speedup=seconds / rows[-1]["jgeo_s"])
    return rows


def _gride(a, b):
    return rep.gride_dimension(a)


_DADAPY = r"""
import json, sys, time
import numpy as np
import dadapy
from dadapy import Data
from dadapy.metric_comparisons import MetricComparisons
x, y = np.load(sys.argv[1]), np.load(sys.argv[2])
repeats = int(sys.argv[3])
def imbalance(a, b):
    comparison = MetricComparisons(coordinates=np.concatenate([a, b], 1), maxk=len(a) - 1)
    d = a.shape[1]
    return comparison.return_inf_imb_two_selected_coords(list(range(d)), list(range(d, 2 * d)))[0]
def gride(a, b):
    return Data(a.copy()).return_id_scaling_gride(range_max=2)[0][0]
from importlib.metadata import version
out = {"version": version("dadapy")}
for name, fn in (("information imbalance", imbalance), ("GRIDE (n1 = 1, n2 = 2)", gride)):
    value = float(fn(x, y))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x.astype(np.float32), y.astype(np.float32))
        times.append(time.perf_counter() - start)
    out[name] = [value, float(np.median(times))]
print(json.dumps(out))
"""


def _dadapy_outside(args, x, y) -> dict | None:
    """DADApy's values and times from its own environment (`--dadapy-python`), or None."""
    if args.dadapy_python is None:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / name) for name in ("x.npy", "y.npy")]
        np.save(paths[0], x)
        np.save(paths[1], y)
        done = subprocess.run([args.dadapy_python, "-c", _DADAPY, *paths, str(args.repeats)],
                              capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- memory ------------------------------------------------------------------------------

_CHILD = r"""
import ctypes, json, sys, time
import numpy as np
kind, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import jax, jax.numpy as jnp
from jgeo import representation as rep
warm = np.random.default_rng(1).normal(size=(8, 30)).astype(np.float32)
rep.cka(warm, warm + 1, chunk=8)  # loads the code
if kind == "numpy":
    x = np.empty((n, d), np.float32)
    y = np.empty((n, d), np.float32)
    rng = np.random.default_rng(0)
    for s in range(0, d, 5000):  # filled in place, so that creating them peaks at their size
        width = min(5000, d - s)
        x[:, s:s + width] = rng.standard_normal((n, width), np.float32)
        y[:, s:s + width] = 0.5 * x[:, s:s + width] + rng.standard_normal((n, width), np.float32)
else:  # made on the device, not copied from NumPy
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, d), jnp.float32)
    y = (0.5 * x + jax.random.normal(ky, (n, d), jnp.float32)).block_until_ready()
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
ctypes.CDLL("libc.so.6").malloc_trim(0)  # free heap pages back to the system first
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:  # resets the peak (VmHWM) to the current RSS
    f.write("5")
start = time.perf_counter()
value = float(rep.cka(x, y))
seconds = time.perf_counter() - start
peak = status("VmHWM:")
print(json.dumps({"kind": kind, "n": n, "d": d, "cka": value, "seconds": seconds,
                  "inputs_bytes": 2 * n * d * 4, "rss_with_inputs": before, "peak": peak,
                  "beyond_inputs": peak - before}))
"""


def memory(n: int, d: int) -> list[dict]:
    rows = []
    for kind in ("numpy", "jax"):
        done = subprocess.run([sys.executable, "-c", _CHILD, kind, str(n), str(d)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            rows.append({"kind": kind, "n": n, "d": d, "error": done.stderr.strip()[-300:]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--small", type=int, default=1000, help="N of the O(N²)-memory rows")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wide-n", type=int, default=2000)
    parser.add_argument("--wide-d", type=int, default=100_000)
    parser.add_argument(
        "--dadapy-python",
        help="a Python interpreter of another environment with DADApy installed (it cannot "
        "share jgeo's): its values and times are taken there, in a subprocess",
    )
    parser.add_argument("--json", default="bench/results/similarity.json")
    parser.add_argument(
        "--parts",
        default="comparisons,memory",
        help="what to measure (comma-separated); the other part is kept from --json",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    kept = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    rows = comparisons(args) if "comparisons" in parts else kept["rows"]
    print_table(rows, ["measure", "n", "reference", "difference", "jgeo_s", "reference_s",
                       "speedup"])  # fmt: skip
    wide = memory(args.wide_n, args.wide_d) if "memory" in parts else kept["memory"]
    versions = {}
    for package in ("netrep", "dadapy"):
        try:
            __import__(package)
            versions[package] = "installed"
        except ImportError:
            versions[package] = None
    if versions["dadapy"] is None and args.dadapy_python:
        versions["dadapy"] = "in " + args.dadapy_python
    write_json(args.json, {"environment": environment(), "rows": rows, "memory": wide,
                           "packages": versions})  # fmt: skip


if __name__ == "__main__":
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    main()
