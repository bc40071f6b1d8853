"""Reproducer hunt for the CPU deadlock that pins jax below 0.10 (`pyproject.toml`).

The pin was set after jaxlib 0.10 hung in batched LAPACK calls on CPU (its
ParallelBatchMap): "a vmapped Cholesky solve over >= 128 points hangs about half the
time". This script runs the batched LAPACK patterns jgeo uses — Cholesky solves,
`slogdet`, `eigh`, QR of decoder Jacobians — at the sizes it uses them, in float32 and
float64, under the loops it runs them in: a plain `jit(vmap)`, inside `lax.scan` (a
training epoch), inside a `while_loop` (diffrax and optimistix solves), and from two
Python threads at once (the Recorder finishes probes in a background thread while the
next epoch trains). Every case runs `--repeats` times in a fresh subprocess with a
timeout, calling the compiled program `--calls` times, so a hang is caught and named
instead of stopping the script.

    python bench/jax_lapack_hang.py [--repeats 3] [--calls 20] [--timeout 120] [--json PATH]
        [--cases NAMES] [--loops jit,scan,while,threads] [--append]

It prints one row per case: the jax version, the case, how many processes finished,
hung or failed. The results are in `docs/development.md` ("The jax pin").
"""

import argparse
import json
import subprocess
import sys
import time

CASES = {
    # name: (pattern, points, dim)
    # The minimal reproducer: what Levenberg–Marquardt's least squares (optimistix, lineax
    # QR) runs in connecting_geodesic's energy stage, 32 QRs of 2000 × 28 at once.
    "batched QR, 2000 × 28 each": ("qr", 32, 28),
    "cholesky_solve": ("cholesky_solve", 1024, 4),
    "slogdet": ("slogdet", 1024, 4),
    "eigh": ("eigh", 1024, 4),
    "jacobian_qr (log_volume of a pullback)": ("log_volume", 512, 2),
    "metric_summary (MCN, VoR: eigh + slogdet)": ("metric_summary", 256, 2),
    "christoffel of a pullback (Cholesky solve)": ("christoffel", 512, 2),
    "exp maps (diffrax while_loop, Cholesky in the spray)": ("exp_map", 256, 2),
    "connecting geodesics (optimistix + diffrax)": ("connecting_geodesic", 32, 2),
    "volume regularizer in a scanned training epoch": ("volume_scan", 256, 2),
}

WORKER = r"""
import sys, threading
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, jax.random as jr, equinox as eqx
import jgeo

pattern, loop = sys.argv[1], sys.argv[5]
n, d, dtype = int(sys.argv[2]), int(sys.argv[3]), jnp.dtype(sys.argv[4])
k1, k2, k3 = jr.split(jr.key(0), 3)
mlp = eqx.nn.MLP(d, 32, 64, depth=2, activation=jnp.tanh, key=k1, dtype=dtype)
metric = jgeo.Pullback(mlp)
z = jr.normal(k2, (n, d), dtype)
v = 0.3 * jr.normal(k3, (n, d), dtype)
a = jr.normal(k2, (n, d, d), dtype)
spd = a @ jnp.swapaxes(a, 1, 2) + d * jnp.eye(d, dtype=dtype)

def one(i):
    if pattern == "qr":
        return jax.vmap(lambda m: jnp.linalg.qr(m)[1])(jr.normal(k1, (n, 2000, d), dtype))
    if pattern == "cholesky_solve":
        c = jax.vmap(jnp.linalg.cholesky)(spd)
        return jax.vmap(lambda c, b: jax.scipy.linalg.cho_solve((c, True), b))(c, z)
    if pattern == "slogdet":
        return jax.vmap(lambda m: jnp.linalg.slogdet(m)[1])(spd)
    if pattern == "eigh":
        return jax.vmap(jnp.linalg.eigh)(spd)[0]
    if pattern == "log_volume":
        return jax.vmap(lambda p: jgeo.log_volume(metric, p))(z)
    if pattern == "metric_summary":
        return jgeo.diagnostics.metric_summary(metric, z)["vor"]
    if pattern == "christoffel":
        return jax.vmap(lambda p: jgeo.christoffel(metric, p))(z)
    if pattern == "exp_map":
        return jax.vmap(lambda p, u: jgeo.exp_map(metric, p, u, throw=False))(z, v)
    if pattern == "connecting_geodesic":
        return jax.vmap(lambda p, q: jgeo.distance(metric, p, q, throw=False))(z, z + v)
    if pattern == "volume_scan":
        def step(carry, key):
            return carry + jgeo.regularizers.volume(mlp, z, key), None
        return jax.lax.scan(step, jnp.zeros((), dtype), jr.split(k3, 4))[0]
    raise ValueError(pattern)

if loop == "jit":
    run = jax.jit(one)
elif loop == "scan":
    run = jax.jit(lambda i: jax.lax.scan(lambda c, j: (c, one(j)), 0, jnp.arange(3))[1])
elif loop == "while":
    def body(s):
        k, acc = s
        return k + 1, acc + jnp.sum(jnp.nan_to_num(jnp.asarray(one(k)).astype(jnp.float64)))
    loop_fn = jax.jit(lambda i: jax.lax.while_loop(lambda s: s[0] < 3, body, (i, 0.0)))
    def run(i):  # compiled once: every call runs the same program
        return loop_fn(0)
else:  # two threads dispatching the same program at once
    f = jax.jit(one)
    def run(i):
        out = [None, None]
        def target(j):
            out[j] = jax.block_until_ready(f(j))
        threads = [threading.Thread(target=target, args=(j,)) for j in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        return out
for i in range(int(sys.argv[6])):
    jax.block_until_ready(run(i))
print("ok")
"""


def run_case(pattern, n, d, dtype, loop, calls, timeout):
    try:
        done = subprocess.run(
            [sys.executable, "-c", WORKER, pattern, str(n), str(d), dtype, loop, str(calls)],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "hung", ""
    return ("finished", "") if done.returncode == 0 else ("failed", done.stderr[-600:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="processes per case")
    parser.add_argument("--calls", type=int, default=20, help="calls of the program per process")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--loops", default="jit,scan,while,threads")
    parser.add_argument("--cases", default="", help="substrings of the case names to run")
    parser.add_argument("--json", default="bench/results/jax_lapack_hang.json")
    parser.add_argument("--append", action="store_true", help="add to the rows in --json")
    args = parser.parse_args()
    import jax

    rows = []
    if args.append:
        with open(args.json) as f:
            rows = json.load(f)["rows"]
    chosen = [c for c in CASES if not args.cases or any(k in c for k in args.cases.split(","))]
    for name in chosen:
        pattern, n, d = CASES[name]
        for dtype in ("float32", "float64"):
            for loop in args.loops.split(","):
                counts = {"finished": 0, "hung": 0, "failed": 0}
                errors, start = [], time.perf_counter()
                for _ in range(args.repeats):
                    outcome, error = run_case(pattern, n, d, dtype, loop, args.calls, args.timeout)
                    counts[outcome] += 1
                    if error:
                        errors.append(error)
                row = {"jax": jax.__version__, "case": name, "points": n, "dim": d,
                       "dtype": dtype, "loop": loop, **counts,
                       "seconds": time.perf_counter() - start, "errors": errors[:1]}  # fmt: skip
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "errors"}), flush=True)
                with open(args.json, "w") as f:
                    json.dump({"rows": rows, "repeats": args.repeats, "calls": args.calls,
                               "timeout_s": args.timeout}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
