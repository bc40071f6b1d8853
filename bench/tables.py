"""Benchmark tables of the README, written from `bench/results/*.json`, so that no
number in the docs is copied by hand.

    python bench/tables.py            # rewrite the tables in README.md
    python bench/tables.py --check    # exit 1 if a table differs from its results

A table sits between `<!-- bench-table: NAME -->` and `<!-- /bench-table -->`;
`tests/test_readme.py` checks that each one matches its JSON.
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
        runs = loops["runs"]
        for i in range(0, len(runs), 3):
            before, with_recorder, after = runs[i : i + 3]
            off = min(before["loop_s"], after["loop_s"])
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


TABLES = {
    "distances": (distances, "distances.json"),
    "dynamics": (dynamics, "dynamics.json"),
    "kernels": (kernels, "kernels.json"),
    "landscape": (landscape, "landscape.json"),
    "representation": (representation, "representation.json"),
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = rewrite(text)
    if args.check:
        if new != text:
            print("README.md: a bench table differs from bench/results; run bench/tables.py")
            return 1
        return 0
    readme.write_text(new)
    print(f"wrote the bench tables of {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
