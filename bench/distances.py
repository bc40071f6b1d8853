"""All-pairs geodesic distances at the scale of a study: the tiers of
`jgeo.stats.pairwise_distances` on the codes of the default `jgeo train` model.

The default run (digits, 2-D autoencoder, isometry regularizer, 200 epochs) is trained
first (about a minute). Its pullback metric, on `--codes` codes of the training data:

- `"graph"`: every pair (the whole matrix), timed;
- exact connecting geodesics (energy, then shooting) on `--pairs` sampled pairs: the
  reference, timed per pair;
- `"refined"` (an energy solve from each graph path): every pair (the whole matrix, in
  `pairwise_distances`' queue of solves; one call, compilation included, unless
  `--no-all-pairs`), and the same sampled pairs as one `vmap`ped batch of
  `connecting_geodesic` calls.

Errors are relative to the exact lengths on the sampled pairs, as a distribution.

`--parts refined16`: whole matrices on `--codes16` codes drawn in [−1.5, 1.5]^16 for the
d = 16 tanh MLP, errors on `--pairs` sampled pairs against exact solves, for each of
`--tiers16`: `refined` (`stats.Refined`, energy solves from graph paths) and `energy`
(`stats.Exact` with `EnergyBVP(check_length=True)` at 8 points and rtol 5e-3: the fastest
tier of `bench/geodesics.py`, straight-line starts; the default: `refined` takes hours at
1,000 codes here). Rows of other tiers or code counts already in the JSON are kept.

`--parts graph` (its own part, also run by default): the `"graph"` tier's cost as the
node count grows, on `--graph-sizes` codes drawn in [−1.5, 1.5]^16 for the d = 16 tanh
MLP of `bench/geodesics.py` (`_decoder.py`), float64: seconds of the first call
(compile included) and of a second, and the process's peak resident memory after it.

    python bench/distances.py [--codes 1000] [--pairs 200] [--k 10] [--parts tiers graph]
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _decoder import decoder
from _timing import environment, write_json

import jgeo
from jgeo import stats
from jgeo.train import load_run, make_config, train


def _timed(fn, *args):
    """(seconds of the first call, compile included; of a second call; the output)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return first, time.perf_counter() - start, out


def _errors(lengths, exact) -> dict:
    relative = np.abs(np.asarray(lengths) / np.asarray(exact) - 1)
    finite = relative[np.isfinite(relative)]
    return {
        "median": float(np.median(finite)),
        "p90": float(np.percentile(finite, 90)),
        "max": float(finite.max()),
        "within_0.5%": float(np.mean(finite < 5e-3)),
        "within_5%": float(np.mean(finite < 5e-2)),
        "finite": int(finite.size),
    }


def graph_scaling(sizes: list[int], k: int) -> dict:
    """The `"graph"` tier on m codes of the d = 16 decoder, float64, for each m."""
    rows = []
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        metric = jgeo.Pullback(decoder(jax.random.key(0), 16, jnp.float64))
        for m in sizes:
            codes = jnp.asarray(np.random.default_rng(0).uniform(-1.5, 1.5, (m, 16)))
            graph_fn = jax.jit(lambda c: stats.pairwise_distances(metric, c, stats.Graph(k=k)))
            first, seconds, matrix = _timed(graph_fn, codes)
            matrix = np.asarray(matrix)
            rows.append(
                {"nodes": m, "first_call_s": first, "seconds": seconds,
                 "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                 "connected": bool(np.all(np.isfinite(matrix)))}
            )  # fmt: skip
            del matrix
            print(rows[-1], flush=True)
    finally:
        jax.config.update("jax_enable_x64", x64)
    return {"environment": environment(), "d": 16, "k": k, "dtype": "float64", "rows": rows}


# The whole-matrix tiers of `--parts refined16`: the refined tier, and the fastest tier of
# bench/geodesics.py (straight-line starts, the energy curve's checked length, 8 points).
TIERS16 = {
    "refined": lambda k: stats.Refined(k=k),
    "energy": lambda k: stats.Exact(solver=jgeo.EnergyBVP(check_length=True), rtol=5e-3,
                                    atol=5e-3, num_points=8),
}  # fmt: skip


def matrix_d16(m: int, pairs: int, k: int, tiers: list[str], rows: list[dict]) -> dict:
    """Each tier's whole matrix on m codes drawn in [−1.5, 1.5]^16 for the d = 16 decoder
    (float64), and its errors on `pairs` sampled pairs against exact solves. `rows`: the
    earlier results, kept unless this run measures the same tier and m."""
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        metric = jgeo.Pullback(decoder(jax.random.key(0), 16, jnp.float64))
        rng = np.random.default_rng(0)
        codes = jnp.asarray(rng.uniform(-1.5, 1.5, (m, 16)))
        i, j = np.triu_indices(m, k=1)
        pick = rng.choice(i.size, pairs, replace=False)
        exact_fn = jax.jit(jax.vmap(lambda x, y: jgeo.distance(metric, x, y, throw=False)))
        exact = jax.block_until_ready(exact_fn(codes[i[pick]], codes[j[pick]]))
        for name in tiers:
            tier = TIERS16[name](k)
            matrix_fn = jax.jit(lambda c, tier=tier: stats.pairwise_distances(metric, c, tier))
            start = time.perf_counter()
            matrix = np.asarray(jax.block_until_ready(matrix_fn(codes)))
            seconds = time.perf_counter() - start  # compilation included (one call)
            row = {"tier": name, "call": repr(tier), "k": k, "codes": m, "pairs": int(i.size),
                   "seconds": seconds, "ms_per_pair": 1e3 * seconds / i.size,
                   "converged": float(np.mean(np.isfinite(matrix[i, j]))),
                   **_errors(matrix[i[pick], j[pick]], exact)}  # fmt: skip
            print(row, flush=True)
            rows = [r for r in rows if (r.get("tier", "refined"), r["codes"]) != (name, m)]
            rows.append(row)
    finally:
        jax.config.update("jax_enable_x64", x64)
    return {"environment": environment(), "d": 16, "k": k, "dtype": "float64", "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", nargs="+", choices=["tiers", "graph", "refined16"],
        default=["tiers", "graph", "refined16"],
    )  # fmt: skip
    parser.add_argument("--codes16", type=int, default=1000, help="codes of the d = 16 part")
    parser.add_argument("--tiers16", nargs="+", choices=list(TIERS16), default=["energy"],
                        help="refined: hours at 1,000 codes on a 2-core CPU")  # fmt: skip
    parser.add_argument("--graph-sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--codes", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--grid", type=int, default=30, help="reference grid side (0: none)")
    parser.add_argument("--no-all-pairs", action="store_true", help="skip the refined matrix")
    parser.add_argument("--json", default="bench/results/distances.json")
    args = parser.parse_args()
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    if "graph" in args.parts:
        results["graph_scaling"] = graph_scaling(args.graph_sizes, args.k)
        write_json(path, results)  # this part's results, the others' kept
    if "refined16" in args.parts:
        earlier = results.get("refined_d16", {}).get("rows", [])
        results["refined_d16"] = matrix_d16(args.codes16, args.pairs, args.k, args.tiers16,
                                            earlier)  # fmt: skip
        write_json(path, results)
    if "tiers" in args.parts:
        tiers(args, results)


def tiers(args, results: dict) -> None:
    """The tiers on the default run's codes, into `results` (written to `args.json`)."""
    config = make_config({})
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        train(config, run, progress=False)
        train_s = time.perf_counter() - start
        _, data, model = load_run(run)
    rng = np.random.default_rng(0)
    index = rng.permutation(len(data.x))[: args.codes]
    codes = jax.jit(jax.vmap(model.encode))(jnp.asarray(data.x[index]))
    metric = jgeo.Pullback(model.decoder)
    n = codes.shape[0]
    i, j = np.triu_indices(n, k=1)
    pick = rng.choice(i.size, args.pairs, replace=False)
    a, b = codes[i[pick]], codes[j[pick]]

    # Reference nodes on a grid over the codes' bounding box (10 % margin): a geodesic of
    # a deterministic decoder may cut through the empty space between classes, where no
    # code lies and a graph of the codes alone cannot follow it.
    lo, hi = codes.min(0), codes.max(0)
    lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
    side = jnp.linspace(0.0, 1.0, args.grid, dtype=codes.dtype)
    grid = jnp.stack(jnp.meshgrid(side, side), -1).reshape(-1, 2) * (hi - lo)[None] + lo[None]
    graphs = {}
    for name, reference in [("codes", None), (f"codes + {args.grid}² grid", grid)]:
        graph_fn = jax.jit(
            lambda c, r=reference: stats.pairwise_distances(
                metric, c, stats.Graph(k=args.k, reference=r)
            )
        )
        graphs[name] = _timed(graph_fn, codes)

    def connect(**options):
        one = lambda x, y: jgeo.connecting_geodesic(metric, x, y, throw=False, **options)  # noqa: E731
        return jax.jit(jax.vmap(one))

    exact_first, exact_s, exact = _timed(connect(), a, b)
    nodes = jgeo.geodesic_graph(metric, jnp.concatenate([codes, grid]), args.k)  # refined's start
    # pairwise_distances' refined tier: the energy stage from the graph path, rtol 3e-3.
    refined_fn = connect(solver=jgeo.EnergyBVP(), graph=nodes, rtol=3e-3, atol=3e-3)
    refined_first, refined_s, refined = _timed(refined_fn, a, b)

    refined_rows = []
    if not args.no_all_pairs:
        matrix_fn = jax.jit(
            lambda c: stats.pairwise_distances(metric, c, stats.Refined(k=args.k, reference=grid))
        )
        start = time.perf_counter()
        matrix = jax.block_until_ready(matrix_fn(codes))
        seconds = time.perf_counter() - start
        refined_rows.append(
            {"tier": '"refined" (every pair, codes + grid)', "pairs": int(i.size),
             "seconds": seconds, "first_call_s": seconds, "ms_per_pair": 1e3 * seconds / i.size,
             "converged": float(np.mean(np.isfinite(np.asarray(matrix)[i, j]))),
             **_errors(np.asarray(matrix)[i[pick], j[pick]], exact.length)}
        )  # fmt: skip
        print(refined_rows[-1], flush=True)

    rows = [
        {"tier": f'"graph" ({name})', "pairs": int(i.size), "seconds": seconds,
         "first_call_s": first, "ms_per_pair": 1e3 * seconds / i.size,
         **_errors(np.asarray(graph)[i[pick], j[pick]], exact.length)}
        for name, (first, seconds, graph) in graphs.items()
    ] + refined_rows + [
        {"tier": '"refined" (sampled pairs, one vmap)', "pairs": args.pairs, "seconds": refined_s,
         "first_call_s": refined_first, "ms_per_pair": 1e3 * refined_s / args.pairs,
         "converged": float(np.mean(refined.converged)), **_errors(refined.length, exact.length)},
        {"tier": "exact (None)", "pairs": args.pairs, "seconds": exact_s,
         "first_call_s": exact_first, "ms_per_pair": 1e3 * exact_s / args.pairs,
         "converged": float(np.mean(exact.converged))},
    ]  # fmt: skip
    print(f"default run trained in {train_s:.0f} s; {n} codes, {i.size} pairs, k = {args.k}, "
          f"errors against exact on {args.pairs} sampled pairs")  # fmt: skip
    for row in rows:
        print({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})
    results.update(
        {"environment": environment(), "codes": n, "k": args.k, "sampled_pairs": args.pairs,
         "grid": args.grid,
         "dtype": str(codes.dtype), "train_s": train_s, "rows": rows},
    )  # fmt: skip
    write_json(args.json, results)


if __name__ == "__main__":
    main()
