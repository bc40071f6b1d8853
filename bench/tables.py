"""Benchmark tables of the docs, written from `bench/results/*.json`, so that no number
in the docs is copied by hand.

    python bench/tables.py            # rewrite the tables in docs/ (and README.md)
    python bench/tables.py --check    # exit 1 if a table differs from its results

A table sits between `<!-- bench-table: NAME -->` and `<!-- /bench-table -->`;
`tests/test_docs.py` checks that each one matches its JSON.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "bench" / "results"
BLOCK = re.compile(r"(<!-- bench-table: (\w+) -->\n)(.*?)(<!-- /bench-table -->)", re.S)


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _g(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def dynamics(results: dict) -> str:
    """`bench/dynamics.py`: probe overhead in `jgeo train` and in users' own loops."""
    env, config, runs = results["environment"], results["config"], results["runs"]
    off = min(runs[0]["train_s"], runs[2]["train_s"])
    on = runs[1]
    lines = [
        _row(["loop", "probes", "seconds without / with", "× without", "probe (median)",
              "first probe"]),  # fmt: skip
        _row(["---"] * 6),
        _row([f"`jgeo train` default ({config['data']}, {config['regularizer']}, "
              f"{config['epochs']} epochs), probes every epoch", str(on["probes"]),
              f"{_g(off)} / {_g(on['train_s'])}", f"**{on['× without probes']:.2f}×**",
              f"{on['median_probe_s'] * 1e3:.0f} ms", f"{_g(on['first_probe_s'], 2)} s"]),
    ]  # fmt: skip
    loops = results.get("user_loops")
    if loops:
        for with_recorder in [r for r in loops["runs"] if r["every"] is not None]:
            off = with_recorder["loop_s"] / with_recorder["× without recorder"]
            lines.append(_row([
                f"own loop: {with_recorder['loop']}, {loops['steps']} steps, Recorder every "
                f"{loops['every']}", str(with_recorder["probes"]),
                f"{_g(off)} / {_g(with_recorder['loop_s'])}",
                f"{with_recorder['× without recorder']:.2f}×",
                f"{with_recorder['median_probe_s'] * 1e3:.0f} ms",
                f"{_g(with_recorder['first_probe_s'], 2)} s",
            ]))  # fmt: skip
    lines.append("")
    lines.append(f"*{env['backend']} ({env['device']}), jax {env['jax']}, "
                 f"`bench/results/dynamics.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def representation(results: dict) -> str:
    """`bench/representation.py`: TwoNN against scikit-dimension on the same points."""
    env, rows = results["environment"], results["rows"]
    lines = [
        _row(
            [
                "points",
                "n",
                "true",
                "jgeo TwoNN",
                "skdim TwoNN",
                "relative difference",
                "jgeo MLE",
                "jgeo / skdim time",
            ]
        ),  # fmt: skip
        _row(["---"] * 8),
    ]
    for r in rows:
        skdim = "skdim_twonn" in r
        lines.append(_row([
            r["data"], str(r["n"]), _g(r["true"]), f"{r['jgeo_twonn']:.3f}",
            f"{r['skdim_twonn']:.3f}" if skdim else "–",
            f"{r['relative_difference']:.1e}" if skdim else "–",
            f"{r['jgeo_mle']:.3f}",
            f"{r['jgeo_s'] * 1e3:.1f} / {r['skdim_s'] * 1e3:.1f} ms" if skdim else
            f"{r['jgeo_s'] * 1e3:.1f} ms / –",
        ]))  # fmt: skip
    lines.append("")
    lines.append(f"*{env['backend']} ({env['device']}), jax {env['jax']}, scikit-dimension "
                 f"{results['skdim']}, float32, median after compilation, "
                 "`bench/results/representation.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def landscape(results: dict) -> str:
    """`bench/landscape.py`: landscape probes in training steps; Lanczos against the
    dense Hessian."""
    env, run = results["environment"], results["default_run"]
    lines = [
        _row(["probe of the default run", "compile", "one probe", "in training steps"]),
        _row(["---"] * 4),
    ]
    for r in run["probes"]:
        cost = f"{r['median_s'] * 1e3:.0f} ms"
        steps = f"**{r['training steps']:.0f}**"
        lines.append(_row([r["probe"], f"{_g(r['compile_s'], 2)} s", cost, steps]))
    lines += [
        "",
    ]
    lines.append(_row(["autoencoder hidden widths", "parameters", "memory: Lanczos / dense Hessian",
                       "time: Lanczos / dense", "λ_max: Lanczos / dense"]))  # fmt: skip
    lines.append(_row(["---"] * 5))
    for r in results["dense_against_lanczos"]:
        lines.append(_row([
            r["hidden"], str(r["parameters"]),
            f"{r['lanczos_MiB']:.1f} / {r['dense_MiB']:.0f} MiB",
            f"{r['lanczos_s'] * 1e3:.0f} ms / {_g(r['dense_s'], 2)} s",
            f"{r['lanczos_top']:.6g} / {r['dense_top']:.6g}",
        ]))  # fmt: skip
    lines.append("")
    lines.append(f"*{env['backend']} ({env['device']}), jax {env['jax']}, default run of "
                 f"{run['parameters']} parameters, one training step "
                 f"{run['step_s'] * 1e3:.2f} ms; memory as XLA accounts the compiled "
                 "programs (temporaries and outputs); `bench/results/landscape.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def kernels(results: dict) -> str:
    """`bench/kernels.py`: kernel cost in decoder forward passes, fast paths against
    nested autodiff, and the Fisher–Rao sprays against JᵀJ of the same decoder."""
    env, rows = results["environment"], results["rows"]
    time = {(r["d"], r["kernel"]): r["median_s"] for r in rows}
    naive = {
        "geodesic_acceleration (jgeo, fast path)": "naive: -Γ(v,v), Γ by autodiff of G",
        "riemann (jgeo, Gauss equation)": "naive: riemann by nested autodiff of G",
    }
    lines = [_row(["d", "kernel", "× decoder forward pass", "nested autodiff ÷ jgeo"]),
             _row(["---"] * 4)]  # fmt: skip
    for r in rows:
        if r["kernel"] == "decoder forward pass" or r["kernel"].startswith("naive"):
            continue
        reference = naive.get(r["kernel"])
        speedup = f"{time[(r['d'], reference)] / r['median_s']:.1f}×" if reference else ""
        interleaved = results.get("riemann_ratio")
        if interleaved and r["kernel"].startswith("riemann") and r["d"] == interleaved["d"]:
            speedup = (f"{interleaved['ratio']:.1f}× ({interleaved['ratio_min']:.1f}–"
                       f"{interleaved['ratio_max']:.1f}× over {interleaved['rounds']} "
                       "interleaved rounds)")  # fmt: skip
        lines.append(_row([str(r["d"]), r["kernel"], f"{r['x forward']:.1f}×", speedup]))
    lines += ["", _row(["d", "`FisherPullback` family", "spray", "÷ JᵀJ of the decoded mean",
                        "÷ JᵀJ of the raw outputs"]), _row(["---"] * 5)]  # fmt: skip
    for r in results.get("fisher", []):
        lines.append(_row([str(r["d"]), r["family"], f"{r['median_s'] * 1e3:.1f} ms",
                           f"**{r['x mean JᵀJ']:.2f}×**", f"{r['x raw JᵀJ']:.2f}×"]))  # fmt: skip
    lines.append("")
    lines.append(f"*batch {results['batch']}, float32, {env['backend']} ({env['device']}), "
                 f"jax {env['jax']}, `bench/results/kernels.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def kernel_dimensions(results: dict) -> str:
    """`bench/kernels.py`: cost in decoder forward passes (and peak memory) against the
    latent dimension d, with the fitted exponent of cost ∝ dᵖ."""
    rows = results.get("dimensions")
    if not rows:
        return "*Not measured yet: run `python bench/kernels.py`.*\n"
    dims = sorted({r["d"] for r in rows})
    exponent = {(f["decoder"], f["kernel"]): f["exponent"] for f in results["exponents"]}
    lines = [_row(["decoder", "kernel", *[f"d = {d}" for d in dims], "p in cost ∝ dᵖ"]),
             _row(["---"] * (len(dims) + 3))]  # fmt: skip
    cell = {(r["decoder"], r["kernel"], r["d"]): r for r in rows}
    for name in dict.fromkeys(r["decoder"] for r in rows):
        for kernel in dict.fromkeys(r["kernel"] for r in rows):
            cells = []
            for d in dims:
                r = cell.get((name, kernel, d))
                if r is None:
                    cells.append("–")
                elif "peak_MiB" in r:
                    cells.append(f"{r['x forward']:.3g}× ({r['peak_MiB']:.0f} MiB)")
                else:
                    cells.append(f"{r['x forward']:.3g}× ({r['per_item_s'] * 1e3:.3g} ms)")
            p = exponent.get((name, kernel))
            lines.append(_row([name, kernel, *cells, "–" if p is None else f"{p:.2f}"]))
    env = results["environment"]
    lines += ["", f"*cost in decoder forward passes of the same batch (peak memory of the "
              f"batch of {results['batch']}); geodesics per item, batch of 16 (ms per item); "
              f"p fitted over d ≥ 8; float32, {env['backend']} ({env['device']}), jax "
              f"{env['jax']}, `bench/results/kernels.json`*"]  # fmt: skip
    return "\n".join(lines) + "\n"


def distances(results: dict) -> str:
    """`bench/distances.py`: the tiers of `stats.pairwise_distances` on the default model."""
    env = results["environment"]
    lines = [_row(["tier", "pairs timed", "seconds", "ms / pair", "median error", "90th pct",
                   "max", "within 0.5 %", "within 5 %"]), _row(["---"] * 9)]  # fmt: skip
    for r in results["rows"]:
        errors = (
            [f"{r[k]:.2%}" for k in ("median", "p90", "max")] if "median" in r else ["ref."] * 3
        )
        shares = (
            [f"{r[k]:.0%}" for k in ("within_0.5%", "within_5%")] if "median" in r else ["", ""]
        )
        lines.append(_row([r["tier"], f"{r['pairs']:,}", _g(r["seconds"]),
                           _g(r["ms_per_pair"]), *errors, *shares]))  # fmt: skip
    lines.append("")
    lines.append(f"*{results['codes']:,} codes of the default run, k = {results['k']}, errors "
                 f"against exact on {results['sampled_pairs']} sampled pairs, "
                 f"{results['dtype']}, {env['backend']} ({env['device']}), jax {env['jax']}, "
                 "`bench/results/distances.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def _random_codes(part: dict, header: list[str], row, what: str) -> str:
    """A `bench/distances.py` part measured on random codes of the d-dimensional tanh MLP:
    its table (`row(r)` the cells of each result) and its footer (`what`: the part's own
    conditions)."""
    env = part["environment"]
    lines = [_row(header), _row(["---"] * len(header))]
    lines += [_row(row(r)) for r in part["rows"]]
    lines.append("")
    lines.append(f"*codes in [−1.5, 1.5]^{part['d']}, tanh MLP {part['d']}→256→256→784, "
                 f"{what}, {part['dtype']}, {env['backend']} ({env['device']}), "
                 f"jax {env['jax']}, `bench/results/distances.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def distances_graph(results: dict) -> str:
    """`bench/distances.py --parts graph`: the `"graph"` tier's cost against its node count."""
    scaling = results["graph_scaling"]
    header = ["nodes", "first call s (compile included)", "second call s", "peak memory GB",
              "connected"]  # fmt: skip

    def row(r):
        return [f"{r['nodes']:,}", _g(r["first_call_s"]), _g(r["seconds"]),
                f"{r['peak_rss_gb']:.2g}", "yes" if r["connected"] else "no"]  # fmt: skip

    what = f"k = {scaling['k']}, peak resident memory of the process"
    return _random_codes(scaling, header, row, what)


def distances_refined16(results: dict) -> str:
    """`bench/distances.py --parts refined16`: whole matrices at d = 16, by tier."""
    part = results["refined_d16"]
    header = ["tier", "codes", "pairs", "seconds (one call)", "ms / pair", "converged",
              "median relative error", "90th pct", "max", "within 0.5 %"]  # fmt: skip

    def row(r):
        call = r.get("call", "Refined()")  # the rows from before the tier column
        return [f"`stats.{call}`", f"{r['codes']:,}", f"{r['pairs']:,}", _g(r["seconds"]),
                _g(r["ms_per_pair"]), f"{r['converged']:.0%}",
                *[_g(r[k], 2) for k in ("median", "p90", "max")],
                f"{r['within_0.5%']:.0%}"]  # fmt: skip

    what = "errors against exact solves on sampled pairs, compilation included"
    return _random_codes(part, header, row, what)


def similarity(results: dict) -> str:
    """`bench/similarity.py`: the comparison measures against NumPy, netrep and DADApy."""
    columns = ["measure", "N × D", "against", "largest difference", "jgeo", "reference",
               "reference ÷ jgeo"]  # fmt: skip
    lines = [_row(columns), _row(["---"] * len(columns))]
    for r in results["rows"]:
        missing = r["reference_value"] is None
        lines.append(_row([
            r["measure"], f"{r['n']:,} × {r['d']}", r["reference"],
            "–" if missing else f"{r['difference']:.1e}", _ms(r["jgeo_s"]),
            _ms(r["reference_s"]), "–" if missing else f"**{r['speedup']:.3g}×**",
        ]))  # fmt: skip
    lines.append("")
    env = results["environment"]
    lines.append(f"*Values in float64, times on float32 inputs (median after compilation), "
                 f"{env['backend']} ({env['device']}), jax {env['jax']}, "
                 "`bench/results/similarity.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def similarity_memory(results: dict) -> str:
    """`bench/similarity.py`: CKA of a wide layer, peak memory beyond its inputs."""
    columns = ["inputs", "N × D (two layers)", "inputs", "peak beyond the inputs", "seconds",
               "CKA"]  # fmt: skip
    lines = [_row(columns), _row(["---"] * len(columns))]
    for r in results["memory"]:
        if "error" in r:
            lines.append(_row([r["kind"], f"{r['n']:,} × {r['d']:,}", "–", "failed", "–", "–"]))
            continue
        kind = {"numpy": "NumPy arrays (streamed)", "jax": "JAX arrays"}[r["kind"]]
        lines.append(_row([
            kind, f"{r['n']:,} × {r['d']:,}", _mib(r["inputs_bytes"] / 2**20),
            f"**{_mib(r['beyond_inputs'] / 2**20)}**", f"{r['seconds']:.3g}", f"{r['cka']:.4f}",
        ]))  # fmt: skip
    lines.append("")
    lines.append("*float32; peak resident memory during the call (VmHWM after resetting it) "
                 "minus the resident memory just before, in a fresh process per row, "
                 "`bench/results/similarity.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


def _footer(env: dict, name: str, extra: str = "") -> str:
    return f"*{extra}{env['backend']} ({env['device']}), jax {env['jax']}, `bench/results/{name}`*"


def geodesics(results: dict) -> str:
    """`bench/geodesics.py`: exp and log maps against geomstats (and stochman when installed)."""
    lines = [_row(["task", "library", "per item", "max error", "converged"]), _row(["---"] * 5)]
    for r in results["rows"]:
        per_item = r["per_item_s"]
        cost = f"{per_item * 1e3:.3g} ms" if per_item >= 1e-4 else f"{per_item * 1e6:.3g} µs"
        error = r.get("max_error")
        lines.append(_row([r["task"], r["library"], cost,
                           "NaN on some points" if error != error else _g(error, 2),
                           f"{r['converged']:.0%}" if "converged" in r else ""]))  # fmt: skip
    distances = results.get("distances", [])
    if distances:
        lines += ["", _row(["distances", "library", "tier", "ms / pair", "× stochman",
                            "length error: median", "90th pct", "max", "within 0.5 %",
                            "endpoint residual", "converged"]),
                  _row(["---"] * 11)]  # fmt: skip
        # stochman's time on the same pairs and weights, where it ran: the speed-up.
        stochman = {r["task"]: r["per_item_s"] for r in distances if r["library"] == "stochman"}
        for r in distances:
            errors = [_relative(r[k]) for k in ("error_median", "error_p90", "error_max")]
            # ‖exp_x(v) − y‖∞ of shooting; a discrete curve (energy) ends at y exactly.
            residual = r.get("residual_max")
            residual = (
                "—" if residual is None else "0 (curve)" if residual == 0 else _g(residual, 2)
            )
            rates = [f"{r['within_0.5%']:.0%}", residual, f"{r['converged']:.0%}"]
            cost = f"{r['per_item_s'] * 1e3:.3g}"
            ratio = stochman.get(r["task"]) if r["library"] == "jgeo" else None
            ratio = "" if ratio is None else f"{ratio / r['per_item_s']:.2g}×"
            lines.append(_row([r["task"], r["library"], r["tier"], cost, ratio, *errors, *rates]))
    lines += ["", _footer(results["environment"], "geodesics.json", "float64, ")]
    return "\n".join(lines) + "\n"


def distance_guide(results: dict) -> str:
    """`bench/geodesics.py`'s distance rows, by latent width: the guide's table of which
    call costs what at which accuracy."""
    rows = [r for r in results.get("distances", []) if r["library"] == "jgeo"]
    stochman = {r["task"]: r["per_item_s"] for r in results.get("distances", [])
                if r["library"] == "stochman"}  # fmt: skip
    lines = [_row(["d", "call", "ms / pair", "× stochman", "max length error",
                   "within 0.5 %", "converged"]), _row(["---"] * 7)]  # fmt: skip
    for r in sorted(rows, key=lambda r: (r["d"], -r["per_item_s"])):
        ratio = stochman.get(r["task"])
        lines.append(_row([str(r["d"]), r["tier"], f"{r['per_item_s'] * 1e3:.3g}",
                           "" if ratio is None else f"{ratio / r['per_item_s']:.2g}×",
                           _relative(r["error_max"]), f"{r['within_0.5%']:.0%}",
                           f"{r['converged']:.0%}"]))  # fmt: skip
    lines += ["", _footer(results["environment"], "geodesics.json", "float64, 50 pairs, ")]
    return "\n".join(lines) + "\n"


def _relative(error: float) -> str:
    return "ref." if error == 0 else _g(error, 2)


def training(results: dict) -> str:
    """`bench/training.py`: the regularizers' effect, means over seeds and their ratio to
    the unregularized runs."""
    keys = ("recon_mse", "mcn", "vor", "logdet_var")
    lines = [_row(["data", "regularizer (weight, warm-up)", "recon MSE", "MCN", "VoR",
                   "Var log det G"]), _row(["---"] * 6)]  # fmt: skip
    for r in results["table"]:
        name = r["regularizer"]
        if name != "none":
            name += f" ({r['weight']:g}, {r['warmup']:.0%})"
        cells = [f"{_g(r[k])}" if r["regularizer"] == "none" else
                 f"{_g(r[k])} ({r[k + ' ×none']:.2g}×)" for k in keys]  # fmt: skip
        lines.append(_row([r["data"], name, *cells]))
    seeds = sorted({r["seed"] for r in results["runs"]})
    lines += ["", _footer(results["environment"], "training_runs.json",
                          f"float32, seeds {', '.join(map(str, seeds))}, ")]  # fmt: skip
    return "\n".join(lines) + "\n"


def training_step(results: dict) -> str:
    """`bench/training.py`: one regularized training step in plain steps."""
    rows = results["step_cost"]
    plain = rows[0]["median_s"]
    lines = [_row(["step (batch 256, D = 784, d = 2)", "regularized fraction", "ms",
                   f"× plain step ({plain * 1e3:.2f} ms)"]), _row(["---"] * 4)]  # fmt: skip
    for r in rows[1:]:
        name, _, fraction = r["step"].partition(", batch")
        fraction = r["step"].rsplit("reg_fraction ", 1)[1]
        emphasis = "**" if name == "isometry" and fraction == "0.5" else ""
        lines.append(_row([name, fraction, f"{r['median_s'] * 1e3:.2f}",
                           f"{emphasis}{r['× plain']:.2f}×{emphasis}"]))  # fmt: skip
    lines += ["", _footer(results["environment"], "training_step.json", "float32, ")]
    return "\n".join(lines) + "\n"


def scaling(results: dict) -> str:
    """`bench/scaling.py`: strong and weak scaling over devices, checked against one device."""
    lines = [_row(["case", "scaling", "devices", "global batch", "ms", "speed-up / efficiency",
                   "max abs. difference vs 1 device"]), _row(["---"] * 7)]  # fmt: skip
    for r in results["rows"]:
        ratio = r.get("speed-up", r.get("efficiency"))
        delta = r.get("max |Δ| vs 1 device")
        lines.append(_row([r["case"], r["scaling"], str(r["devices"]), str(r["global batch"]),
                           f"{r['median_s'] * 1e3:.3g}", f"{ratio:.2f}",
                           "" if delta is None else _g(delta, 2)]))  # fmt: skip
    env = results["environment"]
    lines += ["", _footer(env, "scaling.json", f"{env['device_count']} devices seen, ")]
    return "\n".join(lines) + "\n"


def device(results: dict) -> str:
    """`bench/device.py`: float32 on the default device against float64 on the CPU."""
    lines = [_row(["quantity", "matmul precision", "max relative error"]), _row(["---"] * 3)]
    for r in results["agreement"]:
        precision = r.get("precision", "default")
        lines.append(_row([r["quantity"], precision, _g(r["max_rel_error"], 2)]))
    lines += ["", _footer(results["environment"], "device_cpu.json", "float32 vs float64, ")]
    return "\n".join(lines) + "\n"


def jax_lapack_hang(results: dict) -> str:
    """`bench/jax_lapack_hang.py`: processes that finished, hung or failed, per pattern and
    loop (float32 and float64 together)."""
    rows = results["rows"]
    loops = list(dict.fromkeys(r["loop"] for r in rows))
    lines = [_row(["pattern (points × dim)", *[f"`{loop}`" for loop in loops]]),
             _row(["---"] * (len(loops) + 1))]  # fmt: skip
    for case in dict.fromkeys(r["case"] for r in rows):
        cells = []
        for loop in loops:
            group = [r for r in rows if r["case"] == case and r["loop"] == loop]
            total = sum(r["finished"] + r["hung"] + r["failed"] for r in group)
            hung, failed = sum(r["hung"] for r in group), sum(r["failed"] for r in group)
            if not total:
                cells.append("not run")
                continue
            cell = f"{sum(r['finished'] for r in group)}/{total} finished"
            cells.append(cell + (f", **{hung} hung**" if hung else "") +
                         (f", {failed} failed" if failed else ""))  # fmt: skip
        first = next(r for r in rows if r["case"] == case)
        lines.append(_row([f"{case} ({first['points']} × {first['dim']})", *cells]))
    versions = ", ".join(dict.fromkeys(r["jax"] for r in rows))
    lines += ["", f"*jax {versions}, float32 and float64, {results['calls']} calls of the "
              f"compiled program per process, timeout {results['timeout_s']:.0f} s, "
              "`bench/results/jax_lapack_hang.json`*"]  # fmt: skip
    return "\n".join(lines) + "\n"


def compile_cache(results: dict) -> str:
    """`bench/compile_cache.py`: first calls in fresh processes with the persistent
    compilation cache off, cold (empty) and warm (filled by the process before)."""

    def seconds(cell: dict) -> str:
        return f"{_g(cell['median_s'])} ({_g(cell['min_s'], 2)}–{_g(cell['max_s'], 2)})"

    def ratio(cell: dict, bold: str = "") -> str:
        return f"{bold}{cell['median']:.2f}×{bold} ({cell['min']:.2f}–{cell['max']:.2f})"

    lines = [_row(["first calls in a fresh process", "`eqx.error_if` checks", "cache off",
                   "cold cache", "warm cache", "warm ÷ cold", "warm ÷ off",
                   "programs not written", "XLA lines on stderr (warm)"]),
             _row(["---"] * 9)]  # fmt: skip
    for r in results["summary"]:
        checks = "on (as shipped)" if r["variant"] == "as is" else "off (`EQX_ON_ERROR=nan`)"
        lines.append(_row([r["label"], checks, seconds(r["off"]), seconds(r["cold"]),
                           seconds(r["warm"]), ratio(r["warm_over_cold"], "**"),
                           ratio(r["warm_over_off"]),
                           f"{r['warm_not_written_host_callbacks']:.0f}",
                           f"{r['warm_stderr_lines']:.0f}"]))  # fmt: skip
    lines.append("")
    lines.append(f"*seconds, median (min–max) of {results['repeats']} repeats, each run a fresh "
                 "process; ratios per repeat, then their median; geodesics: both first calls, "
                 "the job: its whole process; programs compiling in ≥ "
                 f"{results['min_compile_time_secs']:g} s are written; shared 2-core machine, "
                 f"{_footer(results['environment'], 'compile_cache.json')[1:]}")  # fmt: skip
    return "\n".join(lines) + "\n"


def _ms(seconds: float | None) -> str:
    """A per-point time: µs below 0.1 ms, ms below 10 s, else s."""
    if seconds is None:
        return "–"
    if seconds < 1e-4:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e3:.3g} ms" if seconds < 10 else f"{seconds:.3g} s"


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} MiB" if value >= 10 else f"{value:.2g} MiB"


def _x(slow: float | None, fast: float | None) -> str:
    return "–" if slow is None or fast is None else f"{slow / fast:.3g}×"


def _wide_footer(results: dict, extra: str = "") -> str:
    env = results["environment"]
    return (f"*per point, from a `vmap`ped batch of {results['batch']} (one point: `jit` of "
            f"one point); float32; {extra}memory: XLA's account of the batch program; "
            f"LAPACK on {env.get('OPENBLAS_NUM_THREADS', '?')} thread; shared 2-core "
            f"{env['backend']} ({env['device']}), jax {env['jax']}, "
            "`bench/results/wide.json`*")  # fmt: skip


def wide_basis(results: dict) -> str:
    """`bench/wide.py`: `local_basis(k=16)` against the dense metric and `eigh`."""
    lines = [_row(["decoder", "weights", "d", "48 steps: time · error · memory",
                   "160 steps: time · error", "dense G + eigh: time · memory",
                   "dense ÷ 48 steps", "one point: 48 steps / dense"]),
             _row(["---"] * 8)]  # fmt: skip
    for r in results.get("basis", []):
        cells = []
        for steps in (48, 160):
            if f"lanczos{steps}_s" not in r:
                cells.append("–")
                continue
            error = r.get(f"lanczos{steps}_error")
            cell = f"{_ms(r[f'lanczos{steps}_s'])} · {'–' if error is None else _g(error, 2)}"
            if steps == 48:
                cell += f" · {_mib(r['lanczos48_MiB'])}"
            cells.append(cell)
        dense = (f"{_ms(r['dense_s'])} · {_mib(r['dense_MiB'])}" if "dense_s" in r
                 else f"not run · {_mib(r.get('dense_MiB'))}")  # fmt: skip
        single = f"{_ms(r.get('single_lanczos48_s'))} / {_ms(r.get('single_dense_s'))}"
        speedup = f"**{_x(r.get('dense_s'), r.get('lanczos48_s'))}**"
        lines.append(_row([r["decoder"], r["weights"], str(r["d"]), *cells, dense, speedup,
                           single]))  # fmt: skip
    lines += ["", _wide_footer(results, "error: largest relative error of the top-16 "
                               "eigenvalues above 1e-6 λ₁; ")]  # fmt: skip
    return "\n".join(lines) + "\n"


def wide_volume(results: dict) -> str:
    """`bench/wide.py`: `log_volume(method="slq")` (adaptive probes, 32 steps) against the
    dense log-volume (QR of J), and G v against forming G."""
    mv = {(r["decoder"], r["weights"], r["d"]): r for r in results.get("mv", [])}
    lines = [_row(["decoder", "weights", "d", "SLQ: time · error median / max · memory",
                   "dense (QR of J): time · memory", "dense ÷ SLQ",
                   "one point: SLQ / dense", "G v: time (× forward) / forming G"]),
             _row(["---"] * 8)]  # fmt: skip
    for r in results.get("slq", []):
        error = (f"{_g(r['slq_error_median'], 2)} / {_g(r['slq_error_max'], 2)}"
                 if "slq_error_median" in r else "–")  # fmt: skip
        dense = (f"{_ms(r['dense_s'])} · {_mib(r['dense_MiB'])}" if "dense_s" in r
                 else f"not run · {_mib(r.get('dense_MiB'))}")  # fmt: skip
        m = mv.get((r["decoder"], r["weights"], r["d"]), {})
        product = (f"{_ms(m.get('mv_s'))} ({_x(m.get('mv_s'), m.get('forward_s'))}) / "
                   f"{_ms(m.get('dense_s')) if 'dense_s' in m else 'not run'}")  # fmt: skip
        lines.append(_row([r["decoder"], r["weights"], str(r["d"]),
                           f"{_ms(r['slq_s'])} · {error} · {_mib(r['slq_MiB'])}", dense,
                           f"**{_x(r.get('dense_s'), r['slq_s'])}**",
                           f"{_ms(r.get('single_slq_s'))} / {_ms(r.get('single_dense_s'))}",
                           product]))  # fmt: skip
    lines += ["", _wide_footer(results, "error: relative to float64 `slogdet` of the dense "
                               "metric (the head's with jitter 1e-4); ")]  # fmt: skip
    return "\n".join(lines) + "\n"


def wide_curve(results: dict) -> str:
    """`bench/wide.py`: the SLQ log-volume's error against its cost (probes × steps)."""
    rows = results.get("curve", [])
    cases = list(dict.fromkeys((r["decoder"], r["weights"], r["d"]) for r in rows))
    lines = [_row(["probes × steps", *[f"{k}, {w}, d = {d}" for k, w, d in cases]]),
             _row(["---"] * (len(cases) + 1))]  # fmt: skip
    cell = {(r["decoder"], r["weights"], r["d"], r["probes"], r["steps"]): r for r in rows}
    for probes, steps in dict.fromkeys((r["probes"], r["steps"]) for r in rows):
        cells = []
        for case in cases:
            r = cell.get((*case, probes, steps))
            if r is None:
                cells.append("–")
                continue
            errors = " / ".join(_g(r[k], 2) for k in ("error_median", "error_90", "error_max")
                                if k in r)  # fmt: skip
            covered = f" · {r['within_2se']:.0%}" if "within_2se" in r else ""
            cells.append(f"{errors}{covered} ({_ms(r['s'])}, {_x(r.get('dense_s'), r['s'])})")
        lines.append(_row([f"{probes} × {steps}", *cells]))
    footer = _wide_footer(results)[1:]
    lines += ["", "*relative error of ½ log det G, median / 90th percentile / largest over the "
              "32 points · the share of points within two of their own standard errors "
              "(`SLQ.estimate`) of the exact value (time per point, dense QR time ÷ it, both "
              "from the same process); "
              "MLP decoder d → 2d → 2d, conv decoder `ConvDecoder(d, (64, 64, 3))`, "
              + footer]  # fmt: skip
    return "\n".join(lines) + "\n"


def wide_floor(results: dict) -> str:
    """`bench/wide.py --parts floor`: what 1 % costs any Hutchinson-type log-volume
    estimator, against what a tenth of the dense route's time buys."""
    rows = results.get("floor", [])
    if not rows:
        return "*Not measured yet: run `python bench/wide.py --parts floor`.*\n"
    first = rows[0]
    lines = [_row(["decoder", "weights", "d", "one probe's spread",
                   f"after deflating the top {first['deflated_k']}", "probes for 1 %",
                   "products for 1 %", "deflated", "products a tenth of dense buys",
                   "10× within 1 %"]),
             _row(["---"] * 10)]  # fmt: skip
    for r in rows:
        deflated = r["products_for_1pct_deflated"]  # the verdict takes the cheaper
        short = min(r["products_for_1pct"], deflated) / r["products_in_a_tenth"]
        # within timing noise of 1 (single dense timings of the same case differ by more)
        times = f"{short:.2g}" if short < 10 else f"{short:.0f}"
        verdict = ("possible" if short <= 1 else f"marginal: {times}× short"
                   if short <= 1.5 else f"no: {times}× short")  # fmt: skip
        lines.append(_row([r["decoder"], r["weights"], str(r["d"]), _g(r["spread"], 2),
                           _g(r["spread_deflated"], 2), str(r["probes_for_1pct"]),
                           f"{r['products_for_1pct']:,}", f"{deflated:,.0f}",
                           f"{r['products_in_a_tenth']:,.0f}",
                           f"**{verdict}**"]))  # fmt: skip
    probes, steps = first["priced_by"]
    lines += ["", "*spread: the standard deviation of one Rademacher probe's zᵀ log(G) z "
              "relative to |log det G|, √(2 Σ_{i≠j} (log G)ᵢⱼ²) / |tr log G|, from the float64 "
              f"eigendecomposition of the float32 metric (median over {first['points']} "
              "points); probes for 1 %: (2 · spread / 0.01)², within 1 % at two standard "
              f"deviations; products: those probes × {steps} Lanczos steps (the head's Krylov "
              "space closes in about ten, so its products are priced high); deflated: the "
              "probes the deflated spread needs × the steps, plus 3k steps to find the top k; "
              "the verdict takes the cheaper; a product's "
              f"price: the time of `SLQ(probes={probes}, steps={steps})` ÷ its "
              f"{probes * steps} products (Lanczos included), per point; marginal: within 1.5× "
              "of possible, inside the spread of repeated timings; "
              + _wide_footer(results)[1:].split("; ", 1)[1]]  # fmt: skip
    return "\n".join(lines) + "\n"


def wide_engine(results: dict) -> str:
    """`bench/wide.py --parts engine`: jgeo's Lanczos against matfree's, side by side."""
    rows = [r for r in results.get("engine", []) if "d" in r]
    if not rows:
        return "*Not measured: matfree was not installed.*\n"
    lines = [_row(["MLP decoder", "top-16 (48 steps): jgeo / matfree", "error: jgeo / matfree",
                   "SLQ (4 × 32): jgeo / matfree", "error median: jgeo / matfree",
                   "gradient: jgeo / matfree", "forward mode (JVP): jgeo / matfree"]),
             _row(["---"] * 7)]  # fmt: skip
    for r in rows:
        jvp = r.get("matfree_slq_jvp_s")
        lines.append(_row([
            f"{r['weights']}, d = {r['d']}",
            f"{_ms(r['jgeo_basis_s'])} / {_ms(r['matfree_basis_s'])}",
            f"{_g(r['jgeo_basis_error'], 2)} / {_g(r['matfree_basis_error'], 2)}",
            f"{_ms(r['jgeo_slq_s'])} / {_ms(r['matfree_slq_s'])}",
            f"{_g(r['jgeo_slq_error_median'], 2)} / {_g(r['matfree_slq_error_median'], 2)}",
            f"{_ms(r['jgeo_slq_grad_s'])} / {_ms(r['matfree_slq_grad_s'])}",
            f"{_ms(r['jgeo_slq_jvp_s'])} / "
            + (_ms(jvp) if jvp is not None else r.get("matfree_slq_jvp_error", "fails")),
        ]))  # fmt: skip
    for r in results.get("engine", []):
        if "case" in r:
            errors = f"{_g(r['jgeo_top9_error'], 2)}, matfree {_g(r['matfree_top9_error'], 2)}"
            lines += ["", f"Rank-deficient operator ({r['case']}): top-9 relative error jgeo "
                      f"{errors}; finite: jgeo {r['jgeo_finite']}, matfree "
                      f"{r['matfree_finite']}."]  # fmt: skip
    lines += ["", _wide_footer(results)]
    return "\n".join(lines) + "\n"


def wide_geodesics(results: dict) -> str:
    """`bench/wide.py --parts geodesics`: exp maps and energy-minimising connecting
    geodesics with their linear solves by Cholesky against conjugate gradients."""
    rows = [r for r in results.get("geodesics", []) if "task" in r]
    if not rows:
        return "*Not measured yet: run `python bench/wide.py --parts geodesics`.*\n"
    names = {"exp_map": "`exp_map`", "energy": "`connecting_geodesic`, `EnergyBVP`"}
    lines = [_row(["geodesic", "d", "dense (Cholesky): time · memory",
                   "matrix-free (CG): time · memory", "dense ÷ CG", "difference",
                   "failed: dense / CG"]),
             _row(["---"] * 7)]  # fmt: skip
    for r in rows:
        lines.append(_row([names[r["task"]], str(r["d"]),
                           f"{_ms(r['dense_s'])} · {_mib(r['dense_MiB'])}",
                           f"{_ms(r['cg_s'])} · {_mib(r['cg_MiB'])}",
                           f"**{_x(r['dense_s'], r['cg_s'])}**", _g(r["difference"], 2),
                           f"{r['dense_failed']} / {r['cg_failed']}"]))  # fmt: skip
    batches = ", ".join(f"{r['batch']} at d = {r['d']}" for r in rows if r["task"] == "exp_map")
    lines += ["", "*MLP decoder d → 2d → 2d (decaying weights); exp maps of unit velocities "
              "(difference: the endpoints' largest) and energy curves of 16 points from x to "
              "x + u, ‖u‖ = 1 (difference: the lengths' relative); per point of a `vmap`ped "
              f"batch ({batches}), one timed call after compilation; CG rtol = atol = 1e-4; "
              + _wide_footer(results)[1:].split("; ", 1)[1]]  # fmt: skip
    return "\n".join(lines) + "\n"


def report_page(results: dict) -> str:
    """`bench/report_page.py`: the page's size and the time to write and redraw it."""
    env = results["environment"]
    lines = [_row(["run", "page", "of it plotly.js", "`jgeo report`: recompute / unchanged",
                   "`jgeo dynamics`"]), _row(["---"] * 5)]  # fmt: skip
    for r in results["rows"]:
        lines.append(_row([r["run"], f"{r['page MB']:.2f} MB",
                           f"{r['plotly.js MB (embedded)']:.2f} MB",
                           f"{_g(r['jgeo report, recompute s'])} s / "
                           f"{_g(r['jgeo report, unchanged s'])} s (**{r['× faster']:.0f}×**)",
                           f"{_g(r['jgeo dynamics s'])} s"]))  # fmt: skip
    lines.append("")
    lines.append(f"*{env['backend']} ({env['device']}), jax {env['jax']}, load average "
                 f"{results['load_average']:.1f} on the machine, "
                 "`bench/results/report_page.json`*")  # fmt: skip
    return "\n".join(lines) + "\n"


TABLES = {
    "compile_cache": (compile_cache, "compile_cache.json"),
    "device": (device, "device_cpu.json"),
    "distance_guide": (distance_guide, "geodesics.json"),
    "distances": (distances, "distances.json"),
    "distances_graph": (distances_graph, "distances.json"),
    "distances_refined16": (distances_refined16, "distances.json"),
    "dynamics": (dynamics, "dynamics.json"),
    "geodesics": (geodesics, "geodesics.json"),
    "jax_lapack_hang": (jax_lapack_hang, "jax_lapack_hang.json"),
    "kernels": (kernels, "kernels.json"),
    "kernel_dimensions": (kernel_dimensions, "kernels.json"),
    "landscape": (landscape, "landscape.json"),
    "representation": (representation, "representation.json"),
    "report_page": (report_page, "report_page.json"),
    "scaling": (scaling, "scaling.json"),
    "similarity": (similarity, "similarity.json"),
    "similarity_memory": (similarity_memory, "similarity.json"),
    "training": (training, "training_runs.json"),
    "training_step": (training_step, "training_step.json"),
    "wide_basis": (wide_basis, "wide.json"),
    "wide_curve": (wide_curve, "wide.json"),
    "wide_engine": (wide_engine, "wide.json"),
    "wide_floor": (wide_floor, "wide.json"),
    "wide_geodesics": (wide_geodesics, "wide.json"),
    "wide_volume": (wide_volume, "wide.json"),
}


def render(name: str) -> str:
    """The Markdown of table `name` from its results file."""
    draw, results = TABLES[name]
    return draw(json.loads((RESULTS / results).read_text()))


def rewrite(text: str) -> str:
    """`text` with every bench table rendered from its results."""

    def table(match):
        if match.group(2) not in TABLES:
            raise KeyError(f"unknown bench table {match.group(2)!r}; known: {', '.join(TABLES)}")
        return match.group(1) + render(match.group(2)) + match.group(4)

    return BLOCK.sub(table, text)


def pages() -> list[Path]:
    """The Markdown files that may hold bench tables."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    stale = []
    for page in pages():
        text = page.read_text()
        new = rewrite(text)
        if new != text:
            stale.append(page)
            if not args.check:
                page.write_text(new)
    for page in stale:
        verb = "differs from bench/results" if args.check else "rewritten"
        print(f"{page.relative_to(ROOT)}: a bench table {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
