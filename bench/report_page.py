"""The run's web page (`index.html`): its size and the time to write it, and what
`jgeo report` saves by redrawing from stored results, measured in one process on a copy
of a finished run (default: the default `jgeo train` run, trained here if not given):

1. `write_run_report` (what `jgeo report` does when the config or checkpoints changed:
   evaluate the model, PNGs, `report.npz`, the page);
2. the redraw (what it does when nothing changed: check the fingerprint, write the page),
   median of 3; the ratio of the two;
3. `write_dynamics_report` (`jgeo dynamics`: the PNGs of the probes and the page);
4. the page's size, and the size of the embedded plotly.js in it.

    python bench/report_page.py [--run runs/digits-isometry-s0]
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import environment, print_table, write_json

from jgeo.experiment import run
from jgeo.report import results_current, write_dynamics_report, write_page, write_run_report
from jgeo.report._page import _plotly_js
from jgeo.train import load_run, make_config


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a finished `jgeo train` run (default: train the default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        if args.run:
            shutil.copytree(args.run, out, ignore=shutil.ignore_patterns(".lock"))
        else:
            run(make_config({}), out, progress=False, report=False)
        config = load_run(out)[0]
        _plotly_js()  # compressed once per process, as in a command
        recompute = seconds(lambda: write_run_report(out, *load_run(out)))
        assert results_current(out)
        redraws = [seconds(lambda: (results_current(out), write_page(out))) for _ in range(3)]
        redraw = float(np.median(redraws))
        dynamics = seconds(lambda: write_dynamics_report(out))
        page = (out / "index.html").stat().st_size
        rows = [{
            "run": f"{config.data}, {config.regularizer}, d = {config.latent_dim}, "
                   f"{config.epochs} epochs",
            "page MB": page / 1e6,
            "plotly.js MB (embedded)": len(_plotly_js()) / 1e6,
            "jgeo report, recompute s": recompute,
            "jgeo report, unchanged s": redraw,
            "× faster": recompute / redraw,
            "jgeo dynamics s": dynamics,
        }]  # fmt: skip
    print_table(rows, list(rows[0]))
    write_json(
        Path(__file__).parent / "results" / "report_page.json",
        {"environment": environment(), "load_average": os.getloadavg()[0], "rows": rows},
    )


if __name__ == "__main__":
    main()
