"""Storage of the probes of a run: `dynamics.jsonl` (one row of scalars per probe),
`dynamics.npz` (codes, fields and persistence diagrams, stacked over probes) and
`recorder.json` (what is probed), rewritten atomically after every probe and cut back
to the step a run resumes from.

During training the npz is written uncompressed (compressing all probes again after
each one would cost more than the probe itself); `close` compresses it."""

import io
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._io import RunError, write_atomic

ROWS, ARRAYS, INFO = "dynamics.jsonl", "dynamics.npz", "recorder.json"
# Per-probe arrays (stacked along a first axis of probes); diagrams are concatenated
# with the probe's step in column 0, since their lengths vary.
_STACKED = ("codes", "ratios", "extent", "log_volume", "gaussian_curvature",
            "class_distances", "class_distances_euclidean", "class_barrier")  # fmt: skip
_DIAGRAMS = ("h0", "h1")


class DynamicsError(RunError, ValueError):
    """Missing or damaged dynamics files; the command line exits with code 2."""


class Dynamics(NamedTuple):
    """The probes of a run, as `load` returns them.

    **Fields:**

    - `rows`: one dict of scalars per probe: `step`, `epoch` (in `jgeo train` runs),
      `betti0`, `cka_previous`, ... and, where a decoder was probed, `logvol_mean`, ...
    - `arrays`: `steps` (P,) and, in `jgeo train` runs, `epochs` (P,); `codes` (P, S, d)
      of the fixed samples; with a decoder `ratios` (P, pairs) and, for d = 2, `extent`
      (P, 4), `log_volume` and `gaussian_curvature` (P, g, g) on the grid; `h0`, `h1`
      (k, 3) persistence pairs as (step, birth, death); and the probe set:
      `sample_index` (S,), `color` (S,), `pairs` (pairs, 2) and `labels` (S,) if any.
    - `info`: `recorder.json`: what was probed (samples, pairs, grid, every, seed,
      whether a decoder was given, the data's shape).
    """

    rows: list[dict]
    arrays: dict[str, np.ndarray]
    info: dict

    def series(self, name: str) -> np.ndarray:
        """One scalar over the probes, NaN where it was not measured."""
        if not self.rows or name not in self.rows[0]:
            known = ", ".join(self.rows[0]) if self.rows else "none"
            raise KeyError(f"no scalar {name!r} in the dynamics rows: known are {known}.")
        return np.array([np.nan if r[name] is None else r[name] for r in self.rows], float)

    @property
    def time(self) -> tuple[str, np.ndarray]:
        """The axis the probes are drawn along: ("epoch", epochs) in `jgeo train` runs,
        else ("step", steps)."""
        if "epochs" in self.arrays:
            return "epoch", self.arrays["epochs"]
        return "step", self.arrays["steps"]

    def diagram(self, dim: int, probe: int) -> np.ndarray:
        """The H`dim` persistence pairs (k, 2) of the `probe`-th probe (0-based)."""
        pairs = self.arrays[f"h{dim}"]
        return pairs[pairs[:, 0] == self.arrays["steps"][probe], 1:]


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
                f"{path.name} and {ARRAYS} and record the probes again."
            ) from None
        if not isinstance(rows[-1], dict) or "step" not in rows[-1]:
            raise DynamicsError(f"{path} line {number} is not a probe row (no 'step').")
    return rows


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DynamicsError(
            f"{path} is damaged ({error}). Delete {path.name} and {ROWS} and record the "
            "probes again."
        ) from None
    if "steps" not in arrays:
        raise DynamicsError(f"{path} has no 'steps' array: it is not a jgeo dynamics file.")
    return arrays


def read_info(run_dir: Path) -> dict | None:
    """`recorder.json` of `run_dir`, or None if there is none."""
    path = run_dir / INFO
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        info = None
    if not isinstance(info, dict):
        raise DynamicsError(f"{path} is damaged; delete the dynamics files and record again.")
    return info


def load(run_dir: str | Path) -> Dynamics:
    """The probes recorded in the directory `run_dir`.

    **Arguments:**

    - `run_dir`: a directory written by `jgeo train` or a `Recorder`.

    **Returns:** a `Dynamics`: `.rows`, `.arrays`, `.info`, `.series(key)`,
    `.diagram(dim, probe)`.

    **Raises:** `DynamicsError` naming the file and the fix when the files are missing,
    truncated or damaged.
    """
    run_dir = Path(run_dir)
    rows_path, arrays_path = run_dir / ROWS, run_dir / ARRAYS
    for path in (rows_path, arrays_path):
        if not path.exists():
            raise DynamicsError(
                f"{path} does not exist: record probes with `jgeo train` (`--probe-every` "
                "≥ 1, the default) or with a `jgeo.dynamics.Recorder` in your own loop."
            )
    info = read_info(run_dir)
    if info is None:
        raise DynamicsError(
            f"{run_dir / INFO} does not exist: these probes were written by an older jgeo. "
            "Record them again (rerun the training into a new directory)."
        )
    rows, arrays = _read_rows(rows_path), _read_arrays(arrays_path)
    # An interruption between the two files' writes leaves one probe more in one of them.
    common = min(len(rows), len(arrays["steps"]))
    if [r["step"] for r in rows[:common]] != arrays["steps"][:common].tolist():
        raise DynamicsError(f"{rows_path} and {arrays_path} disagree on the probed steps.")
    if common == 0:
        raise DynamicsError(f"{rows_path} holds no probes yet.")
    return Dynamics(rows[:common], _cut(arrays, arrays["steps"][common - 1]), info)


def _cut(arrays: dict, last_step: int) -> dict:
    """The arrays of the probes up to `last_step`."""
    keep = arrays["steps"] <= last_step
    cut = dict(arrays)
    for name in ("steps", "epochs", *_STACKED):
        if name in cut:
            cut[name] = cut[name][keep]
    for name in _DIAGRAMS:
        if name in cut:
            cut[name] = cut[name][cut[name][:, 0] <= last_step]
    return cut


class ProbeFiles:
    """The probe files of one directory, appended to probe by probe. Opened on files
    that already hold probes it continues them; `resume(step)` drops those after `step`.

    **Raises:** `DynamicsError` if the directory holds probes of another probe set
    (`info` differs from its `recorder.json`) or damaged probe files."""

    def __init__(self, run_dir: Path, info: dict, static: dict[str, np.ndarray]):
        self.run_dir = run_dir
        self.rows: list[dict] = []
        self.arrays: dict[str, list] = {}
        self.static = static
        stored = read_info(run_dir)
        if stored is not None and stored != info:
            changed = "; ".join(
                f"{k}: {stored.get(k)!r} → {info.get(k)!r}"
                for k in sorted(set(stored) | set(info)) if stored.get(k) != info.get(k)
            )  # fmt: skip
            raise DynamicsError(
                f"{run_dir} holds probes of another probe set ({changed}). Record into a new "
                f"directory, or delete {ROWS}, {ARRAYS} and {INFO} there to start over."
            )
        self.info = info
        if stored is not None and (run_dir / ROWS).exists() and (run_dir / ARRAYS).exists():
            previous = load(run_dir)
            self.rows = list(previous.rows)
            for name in ("steps", "epochs", *_STACKED):
                if name in previous.arrays:
                    self.arrays[name] = list(previous.arrays[name])
            for name in _DIAGRAMS:
                self.arrays[name] = [previous.arrays[name]] if name in previous.arrays else []

    @property
    def last_codes(self):
        codes = self.arrays.get("codes")
        return codes[-1] if codes else None

    @property
    def last_step(self) -> int | None:
        return int(self.rows[-1]["step"]) if self.rows else None

    def resume(self, step: int) -> None:
        """Drop the probes recorded after `step` (a run resumed from there records them again)."""
        if self.last_step is None or self.last_step <= step:
            return
        self.rows = [r for r in self.rows if r["step"] <= step]
        kept = _cut({k: (np.concatenate(v) if k in _DIAGRAMS else np.stack(v))
                     for k, v in self.arrays.items() if v}, step)  # fmt: skip
        self.arrays = {k: ([v] if k in _DIAGRAMS else list(v)) for k, v in kept.items()}

    def append(self, row: dict, arrays: dict) -> None:
        """Append one probe: its row (with `step`, and `epoch` if known) and arrays."""
        self.rows.append(row)
        self.arrays.setdefault("steps", []).append(row["step"])
        if "epoch" in row:
            self.arrays.setdefault("epochs", []).append(row["epoch"])
        for name, value in arrays.items():
            if name in _DIAGRAMS:
                tagged = np.concatenate([np.full((len(value), 1), row["step"]), value], axis=1)
                self.arrays.setdefault(name, []).append(tagged)
            else:
                self.arrays.setdefault(name, []).append(value)
        self.write()

    def write(self, compress: bool = False) -> None:
        """Rewrite the three files (the arrays compressed if `compress`)."""
        stacked = {}
        for name, parts in self.arrays.items():
            if name in _DIAGRAMS:
                stacked[name] = np.concatenate(parts) if parts else np.zeros((0, 3))
            else:
                stacked[name] = np.stack(parts)
        buffer = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buffer, **stacked, **self.static)
        write_atomic(self.run_dir / INFO, json.dumps(self.info, indent=2))
        write_atomic(self.run_dir / ARRAYS, buffer.getvalue())
        text = "".join(json.dumps(r) + "\n" for r in self.rows)
        write_atomic(self.run_dir / ROWS, text)
