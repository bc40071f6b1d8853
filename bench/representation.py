"""Intrinsic dimension: jgeo's TwoNN and MLE against scikit-dimension's TwoNN on the
same points (agreement and time, one process). scikit-dimension is optional (the
`bench` extra, `pip install scikit-dimension`); without it only jgeo's column is
measured.

    python bench/representation.py [--n 2000] [--repeats 5]
"""

import argparse
import time

import jax
import numpy as np
from _timing import environment, print_table, time_jitted, write_json

from jgeo import representation
from jgeo.data import load


def clouds(n: int) -> dict[str, tuple[np.ndarray, float | None]]:
    """Point clouds and their true dimension (None where unknown)."""
    rng = np.random.default_rng(0)
    gaussian = rng.normal(size=(n, 5)) @ rng.normal(size=(5, 20))
    return {
        "swiss roll (R³)": (load("swissroll", n=n).x, 2.0),
        "sphere (R³)": (load("sphere", n=n).x, 2.0),
        "5-D Gaussian in R²⁰": (gaussian, 5.0),
        "digits (R⁶⁴)": (load("digits").x, None),
        "sprites (R¹⁰²⁴)": (load("sprites", n=n).x, None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench/results/representation.json")
    args = parser.parse_args()
    try:
        import skdim
    except ImportError:
        skdim = None
        print("scikit-dimension is not installed: measuring jgeo only")
    rows = []
    for name, (x, truth) in clouds(args.n).items():
        x = np.asarray(x, np.float32)
        twonn, value = time_jitted(jax.jit(representation.twonn_dimension), x, repeats=args.repeats)
        _, mle = time_jitted(jax.jit(representation.mle_dimension), x, repeats=1, min_seconds=0)
        row = {"data": name, "n": len(x), "true": truth, "jgeo_twonn": float(value),
               "jgeo_mle": float(mle), "jgeo_s": twonn["median_s"]}  # fmt: skip
        if skdim is not None:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                reference = skdim.id.TwoNN().fit(x.astype(np.float64)).dimension_
                times.append(time.perf_counter() - start)
            row.update(skdim_twonn=float(reference), skdim_s=float(np.median(times)),
                       relative_difference=abs(float(value) - reference) / reference,
                       speedup=float(np.median(times)) / twonn["median_s"])  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    print_table(rows, ["data", "n", "true", "jgeo_twonn", "skdim_twonn", "relative_difference",
                       "jgeo_mle", "jgeo_s", "skdim_s", "speedup"])  # fmt: skip
    write_json(args.json, {"environment": environment(), "rows": rows,
                           "skdim": None if skdim is None else skdim.__version__})  # fmt: skip


if __name__ == "__main__":
    main()
