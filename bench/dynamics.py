"""Cost of the learning-dynamics probes: the default `jgeo train` run with probes every
epoch against the same run without them (target: at most ~20 % more time), measured in
one process, and what the probes saw.

    python bench/dynamics.py [--epochs 200] [--data digits] [--regularizer isometry]
"""

import argparse
import tempfile
import time

import numpy as np
from _timing import environment, print_table, write_json

from jgeo import dynamics
from jgeo.train import make_config, train


def timed_run(config) -> tuple[float, dynamics.Dynamics | None]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(config, out, progress=False, report=False)
        seconds = time.perf_counter() - start
        record = dynamics.load(out) if config.probe_every else None
    return seconds, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--regularizer", default="isometry")
    parser.add_argument("--json", default="bench/results/dynamics.json")
    args = parser.parse_args()
    base = dict(data=args.data, regularizer=args.regularizer, epochs=args.epochs)
    rows = []
    # Off, on, off again: the two "off" runs show the machine's drift over the bench.
    for probe_every in (0, 1, 0):
        seconds, record = timed_run(make_config({**base, "probe_every": probe_every}))
        row = {"probe_every": probe_every, "train_s": seconds}
        if record is not None:
            probe_s = record.series("seconds")
            row.update(probes=len(probe_s), first_probe_s=probe_s[0],
                       median_probe_s=float(np.median(probe_s[1:])),
                       probes_total_s=float(probe_s.sum()))  # fmt: skip
            last = record.rows[-1]
            row.update({k: last[k] for k in ["betti0", "betti1", "logvol_var", "cka_previous"]})
        rows.append(row)
        print(row, flush=True)
    off = min(rows[0]["train_s"], rows[2]["train_s"])
    rows[1]["× without probes"] = rows[1]["train_s"] / off
    print(f"\n{args.data}, {args.regularizer}, {args.epochs} epochs, {environment()['backend']}\n")
    columns = ["probe_every", "train_s", "× without probes", "probes", "first_probe_s",
               "median_probe_s", "probes_total_s"]  # fmt: skip
    print_table(rows, columns)
    write_json(args.json, {"environment": environment(), "config": base, "runs": rows})


if __name__ == "__main__":
    main()
