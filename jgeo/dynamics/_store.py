"""Storage of the probes of a run: `dynamics.jsonl` (one row of scalars per probe) and
`dynamics.npz` (codes, fields and persistence diagrams, stacked over probes), both
rewritten atomically after every probe and cut back to the checkpoint on resume.

During training the npz is written uncompressed (compressing all probes again after
each one would cost more than the probe itself); `Recorder.close` compresses it."""

import io
import json
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._io import RunError, write_atomic
from ._probes import summarise

ROWS, ARRAYS = "dynamics.jsonl", "dynamics.npz"
# Per-probe arrays (stacked along a first axis of probes); diagrams are concatenated
# with the epoch in column 0, since their lengths vary.
_STACKED = ("codes", "ratios", "extent", "log_volume", "gaussian_curvature")
_DIAGRAMS = ("h0", "h1")


class DynamicsError(RunError, ValueError):
    """Missing or damaged dynamics files; the command line exits with code 2."""


class Dynamics(NamedTuple):
    """The probes of a run, as `load` returns them.

    **Fields:**

    - `rows`: one dict of scalars per probe (`epoch`, `step`, `logvol_mean`, ...).
    - `arrays`: `epochs` (P,); `codes` (P, S, d) of the fixed samples; `ratios` (P, pairs);
      for d = 2 `extent` (P, 4), `log_volume` and `gaussian_curvature` (P, g, g) on the
      grid; `h0`, `h1` (k, 3) persistence pairs as (epoch, birth, death); and the probe
      set: `sample_index` (S,), `color` (S,), `pairs` (pairs, 2).
    """

    rows: list[dict]
    arrays: dict[str, np.ndarray]

    def series(self, name: str) -> np.ndarray:
        """One scalar over the probes, NaN where it was not measured."""
        if not self.rows or name not in self.rows[0]:
            known = ", ".join(self.rows[0]) if self.rows else "none"
            raise KeyError(f"no scalar {name!r} in the dynamics rows: known are {known}.")
        return np.array([np.nan if r[name] is None else r[name] for r in self.rows], float)

    def diagram(self, dim: int, epoch: int) -> np.ndarray:
        """The H`dim` persistence pairs (k, 2) of the probe at `epoch`."""
        pairs = self.arrays[f"h{dim}"]
        return pairs[pairs[:, 0] == epoch, 1:]


def _read_rows(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise DynamicsError(
                f"{path} line {number} is truncated or not JSON. Restore the file, or delete "
                f"{path.name} and {ARRAYS} and rerun training from scratch to record it again."
            ) from None
        if not isinstance(rows[-1], dict) or "epoch" not in rows[-1]:
            raise DynamicsError(f"{path} line {number} is not a probe row (no 'epoch').")
    return rows


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DynamicsError(
            f"{path} is damaged ({error}). Delete {path.name} and {ROWS} and rerun training "
            "from scratch to record the probes again."
        ) from None
    if "epochs" not in arrays:
        raise DynamicsError(f"{path} has no 'epochs' array: it is not a jgeo dynamics file.")
    return arrays


def load(run_dir: str | Path) -> Dynamics:
    """The probes recorded in the run directory `run_dir` (see `Dynamics`).

    **Raises:** `DynamicsError` naming the file and the fix when the files are missing,
    truncated or damaged.
    """
    run_dir = Path(run_dir)
    rows_path, arrays_path = run_dir / ROWS, run_dir / ARRAYS
    for path in (rows_path, arrays_path):
        if not path.exists():
            raise DynamicsError(
                f"{path} does not exist: train with probes on (`probe_every` ≥ 1, the "
                f"default) to record dynamics, e.g. `jgeo train --out {run_dir}`."
            )
    rows, arrays = _read_rows(rows_path), _read_arrays(arrays_path)
    # An interruption between the two files' writes leaves one probe more in one of them.
    common = min(len(rows), len(arrays["epochs"]))
    if [r["epoch"] for r in rows[:common]] != arrays["epochs"][:common].tolist():
        raise DynamicsError(f"{rows_path} and {arrays_path} disagree on the probed epochs.")
    if common == 0:
        raise DynamicsError(f"{rows_path} holds no probes yet.")
    return Dynamics(rows[:common], _cut(arrays, arrays["epochs"][common - 1]))


def _cut(arrays: dict, last_epoch: int) -> dict:
    """The arrays of the probes up to `last_epoch`."""
    keep = arrays["epochs"] <= last_epoch
    cut = dict(arrays)
    for name in ("epochs", "steps", *_STACKED):
        if name in cut:
            cut[name] = cut[name][keep]
    for name in _DIAGRAMS:
        if name in cut:
            cut[name] = cut[name][cut[name][:, 0] <= last_epoch]
    return cut


class Recorder:
    """Appends probes to a run directory, resuming after the checkpoint `start`."""

    def __init__(self, run_dir: Path, start: int, static: dict[str, np.ndarray]):
        self.rows_path, self.arrays_path = run_dir / ROWS, run_dir / ARRAYS
        self.rows: list[dict] = []
        self.arrays: dict[str, list] = {}
        self.static = static
        if start > 0 and self.rows_path.exists() and self.arrays_path.exists():
            previous = load(run_dir)
            self.rows = [r for r in previous.rows if r["epoch"] <= start]
            kept = _cut(previous.arrays, start)
            for name in ("epochs", "steps", *_STACKED):
                if name in kept:
                    self.arrays[name] = list(kept[name])
            for name in _DIAGRAMS:
                self.arrays[name] = [kept[name]] if name in kept else []

    def record(self, epoch: int, step: int, geometry: dict, began: float) -> dict:
        """Summarise one probe (`measure_geometry`'s output), append it and rewrite both
        files; returns its row, whose `seconds` counts from `began` (`time.perf_counter`)."""
        codes = self.arrays.get("codes")
        row, arrays = summarise(geometry, codes[-1] if codes else None)
        row = {"epoch": epoch, "step": step, **row, "seconds": time.perf_counter() - began}
        self.rows.append(row)
        self.arrays.setdefault("epochs", []).append(epoch)
        self.arrays.setdefault("steps", []).append(step)
        for name, value in arrays.items():
            if name in _DIAGRAMS:
                tagged = np.concatenate([np.full((len(value), 1), epoch), value], axis=1)
                self.arrays.setdefault(name, []).append(tagged)
            else:
                self.arrays.setdefault(name, []).append(value)
        self._write()
        return row

    def close(self) -> None:
        """Rewrite the arrays compressed (at the end of training)."""
        if self.rows:
            self._write(compress=True)

    def _write(self, compress: bool = False) -> None:
        stacked = {}
        for name, parts in self.arrays.items():
            if name in _DIAGRAMS:
                stacked[name] = np.concatenate(parts) if parts else np.zeros((0, 3))
            else:
                stacked[name] = np.stack(parts)
        buffer = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buffer, **stacked, **self.static)
        write_atomic(self.arrays_path, buffer.getvalue())
        text = "".join(json.dumps(r) + "\n" for r in self.rows)
        write_atomic(self.rows_path, text)
