"""`jgeo compare A B ...`: how similar the layers of several recordings are — other
seeds, widths, architectures, saved activations of another framework — at the steps
they share and at their ends, from the codes each recorded of the same inputs."""

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from .. import representation
from .._io import RunError, save_figure, write_atomic
from ..dynamics import Dynamics, load

RESULT, FIGURE = "compare.json", "compare.png"
_LEAST = 4  # common samples needed to compare (the debiased CKA's minimum)


def _codes(path: Path, dynamics: Dynamics) -> dict[str, np.ndarray]:
    codes = {
        layer: dynamics.arrays[Dynamics.key("codes", layer)]
        for layer in dynamics.layers
        if Dynamics.key("codes", layer) in dynamics.arrays
    }
    if not codes:
        raise RunError(
            f"{path} holds no codes of its fixed samples: record them with the `Codes()` "
            "probe (one of the default probes) to compare the run."
        )
    return codes


def _check(paths: list[Path], out: Path) -> None:
    if len(paths) < 2:
        raise RunError("give at least two probe directories to compare (jgeo compare A B ...).")
    seen = {}
    for path in paths:
        if path.resolve() in seen:
            raise RunError(f"{path} is given twice: name each probe directory once.")
        seen[path.resolve()] = path
    if out.resolve() in seen:
        raise RunError(f"--out {out} is one of the compared directories: choose another.")
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a directory; choose a directory path.")


def compare_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    measure: Callable = representation.linear_cka,
    name: str = "linear CKA",
) -> Path:
    """Compare the layers of recordings whose probes share inputs, pair by pair: the
    similarity of every layer of one to every layer of the other at each step both
    probed and at their last probes, over the fixed samples both recorded codes of
    (lined up by their data indices, `sample_index`). Writes `out/compare.json` and
    `out/compare.png` (a row per pair: the matrix at the end, and the same-named layers'
    similarity at the shared steps).

    **Arguments:**

    - `run_dirs`: two or more probe directories (a `Recorder`'s, a `jgeo train` run,
      `jgeo probe` output) of the same data, each with recorded `codes`.
    - `out`: the directory of the results (created).
    - `measure`: `measure(x, y) -> scalar` of two representations (N, D₁), (N, D₂):
      `jgeo.representation.linear_cka` (default), `procrustes_distance`, ...
    - `name`: what the measure is called in the results.

    **Returns:** the path of `compare.json`: `measure`, `runs`, and per pair of runs `a`,
    `b`, `samples` (how many were compared), `layers_a`, `layers_b`, `final` (the steps
    of the last probes and the matrix layers_a × layers_b), `steps` (those both probed)
    and `matrices` (one per shared step); NaN as null.

    **Raises:** `RunError` (the command line's exit code 2) naming the problem: fewer than
    two directories or one given twice, missing or damaged probe files, no recorded codes,
    recordings of other data, fewer than 4 samples in common, an `out` that is a file or
    one of the inputs.
    """
    paths, out = [Path(d) for d in run_dirs], Path(out)
    _check(paths, out)
    recorded, codes = [], []
    for path in paths:
        recorded.append(load(path))
        codes.append(_codes(path, recorded[-1]))
    first = recorded[0].info
    for path, dynamics in zip(paths[1:], recorded[1:]):
        info = dynamics.info
        if (info["data_sha256"], info["data_shape"]) != (first["data_sha256"], first["data_shape"]):
            raise RunError(
                f"{path} probed other data than {paths[0]} (their recorder.json's "
                "data_sha256 differ): compare recordings of the same inputs."
            )
    common = set(recorded[0].arrays["sample_index"].tolist())
    for dynamics in recorded[1:]:
        common &= set(dynamics.arrays["sample_index"].tolist())
    common = np.array(sorted(common))
    if len(common) < _LEAST:
        raise RunError(
            f"the recordings share {len(common)} fixed samples, fewer than {_LEAST}: record "
            "them with the same data, `samples` and seed (or `jgeo probe --seed`)."
        )
    rows = []
    for dynamics, layers in zip(recorded, codes):
        position = {int(i): p for p, i in enumerate(dynamics.arrays["sample_index"])}
        take = [position[int(i)] for i in common]
        rows.append(
            {layer: c[:, take].reshape(len(c), len(take), -1) for layer, c in layers.items()}
        )
    over = jax.jit(jax.vmap(measure))
    pairs = []
    for i, j in itertools.combinations(range(len(paths)), 2):
        a, b = recorded[i], recorded[j]
        steps = np.intersect1d(a.arrays["steps"], b.arrays["steps"])
        at_a = np.searchsorted(a.arrays["steps"], steps)
        at_b = np.searchsorted(b.arrays["steps"], steps)
        final = [[float(measure(x[-1], y[-1])) for y in rows[j].values()] for x in rows[i].values()]
        if len(steps):
            matrices = np.stack(
                [
                    [np.asarray(over(x[at_a], y[at_b])) for y in rows[j].values()]
                    for x in rows[i].values()
                ]  # fmt: skip
            ).transpose(2, 0, 1)  # (steps, layers_a, layers_b)
        else:
            matrices = np.zeros((0, len(rows[i]), len(rows[j])))
        pairs.append({
            "a": str(paths[i]), "b": str(paths[j]), "samples": len(common),
            "layers_a": list(rows[i]), "layers_b": list(rows[j]),
            "final": {"steps": [int(a.arrays["steps"][-1]), int(b.arrays["steps"][-1])],
                      "matrix": _finite(final)},
            "steps": steps.tolist(), "matrices": _finite(matrices.tolist()),
        })  # fmt: skip
    result = {"measure": name, "runs": [str(p) for p in paths], "pairs": pairs}
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / RESULT, json.dumps(result, indent=1))
    save_figure(_figure(result), out / FIGURE)
    return out / RESULT


def _finite(values):
    """Nested lists with NaN as None (JSON's null)."""
    if isinstance(values, list):
        return [_finite(v) for v in values]
    return None if values is None or not np.isfinite(values) else float(values)


def _figure(result: dict):
    from ._figures import _plt

    plt = _plt()
    pairs = result["pairs"]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(10, 3.8 * len(pairs)), squeeze=False)
    for row, pair in zip(axes, pairs):
        matrix = np.array(pair["final"]["matrix"], float)
        image = row[0].imshow(matrix, cmap="viridis", aspect="auto")
        row[0].set_xticks(range(len(pair["layers_b"])), pair["layers_b"] or ["codes"],
                          rotation=45, ha="right", fontsize=8)  # fmt: skip
        row[0].set_yticks(range(len(pair["layers_a"])), pair["layers_a"] or ["codes"], fontsize=8)
        row[0].set_xlabel(pair["b"], fontsize=8)
        row[0].set_ylabel(pair["a"], fontsize=8)
        row[0].set_title(f"{result['measure']} at the last probes", fontsize=9)
        fig.colorbar(image, ax=row[0], shrink=0.85)
        shared = [layer for layer in pair["layers_a"] if layer in pair["layers_b"]]
        matrices = np.array(pair["matrices"], float).reshape(
            len(pair["steps"]), len(pair["layers_a"]), len(pair["layers_b"])
        )
        for layer in shared:
            values = matrices[:, pair["layers_a"].index(layer), pair["layers_b"].index(layer)]
            row[1].plot(pair["steps"], values, ".-", label=layer or "codes")
        if shared:
            row[1].legend(fontsize=7)
        else:
            row[1].text(
                0.5, 0.5, "no layer of the same name", ha="center", transform=row[1].transAxes
            )
        row[1].set_xlabel("step (probed by both)", fontsize=8)
        row[1].set_title(f"{result['measure']} of same-named layers", fontsize=9)
    fig.tight_layout()
    return fig
