"""Storage of the probes of a run: `dynamics.jsonl` (one row of scalars per probe),
`dynamics.npz` (codes, fields and persistence diagrams, stacked over probes) and
`recorder.json` (what is probed), rewritten atomically after every probe and cut back
to the step a run resumes from.

During training the npz is written uncompressed (compressing all probes again after
each one would cost more than the probe itself); `close` compresses it."""

import functools
import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._io import RunError, is_int, read_jsonl_rows, short, write_atomic

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
      Every row has the same keys; `step` and `epoch` are integers, the other values
      numbers (NaN where a measurement failed), bools, or None where a probe did not
      measure that scalar (the landscape's between its probes; CKA at the first).
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


# Row keys every probe writes (the report reads them in every row).
_ROW_KEYS = ("step", "betti0", "betti1", "seconds")


def _rows_damaged(path: Path, number: int, why: str) -> DynamicsError:
    return DynamicsError(
        f"{path} line {number} {why}. Restore the file, or delete {path.name} and {ARRAYS} "
        "and record the probes again."
    )


def _read_rows(path: Path) -> list[dict]:
    """The rows of `dynamics.jsonl`, checked (`jgeo._io.read_jsonl_rows`): integer steps,
    increasing, the same keys in every row, scalars for values."""
    damaged = functools.partial(_rows_damaged, path)
    return read_jsonl_rows(path, order="step", required=_ROW_KEYS, damaged=damaged)


def _arrays_damaged(path: Path, why: str) -> DynamicsError:
    return DynamicsError(
        f"{path} is damaged ({why}). Delete {path.name} and {ROWS} and record the probes again."
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as error:  # numpy, zipfile and zlib raise many types for damaged files
        raise _arrays_damaged(path, f"{type(error).__name__}: {str(error)[:120]}") from None
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):  # a member that is no .npy: numpy gives bytes
            raise _arrays_damaged(path, f"its member {name!r} is not an array")
    if "steps" not in arrays:
        raise DynamicsError(f"{path} has no 'steps' array: it is not a jgeo dynamics file.")
    return arrays


# The arrays `load` documents: their dimensions (names: P probes, S samples, pairs,
# g grid side and R random samples from recorder.json; d, C and k free but shared) and
# the dtype kinds the writer gives them.
_FLOAT, _INDEX = "f", "iu"
_SPEC = {
    "steps": (("P",), _INDEX),
    "epochs": (("P",), _INDEX),
    "codes": (("P", "S", "d"), _FLOAT),
    "ratios": (("P", "pairs"), _FLOAT),
    "extent": (("P", 4), _FLOAT),
    "log_volume": (("P", "g", "g"), _FLOAT),
    "gaussian_curvature": (("P", "g", "g"), _FLOAT),
    "class_distances": (("P", "C", "C"), _FLOAT),
    "class_distances_euclidean": (("P", "C", "C"), _FLOAT),
    "class_barrier": (("P", "C", "C"), _FLOAT),
    "h0": (("k0", 3), _FLOAT),
    "h1": (("k1", 3), _FLOAT),
    "sample_index": (("S",), _INDEX),
    "color": (("S",), _FLOAT),
    "labels": (("S",), "iub"),
    "pairs": (("pairs", 2), _INDEX),
    "random_index": (("R",), _INDEX),
}
_FROM_INFO = {"S": "samples", "pairs": "pairs", "g": "grid", "R": "random_samples"}
_FIELDS = ("extent", "log_volume", "gaussian_curvature")
_CLASSES = ("class_distances", "class_distances_euclidean", "class_barrier")


def _check_arrays(path: Path, arrays: dict, info: dict) -> None:
    """The arrays of `dynamics.npz` are those the writer writes for the probe set `info`
    (`recorder.json`), each of its rank, dimensions and dtype kind (`_SPEC`)."""
    sizes = {"P": len(arrays["steps"]), "S": info["samples"], "pairs": info["pairs"],
             "g": info["grid"], "R": info["random_samples"]}  # fmt: skip
    for name, (dims, kinds) in _SPEC.items():
        if name not in arrays:
            continue
        array = arrays[name]
        if array.dtype.kind not in kinds:
            raise _arrays_damaged(path, f"{name!r} has dtype {array.dtype}")
        if array.ndim != len(dims):
            raise _arrays_damaged(path, f"{name!r} has shape {array.shape}, not rank {len(dims)}")
        for axis, (dim, size) in enumerate(zip(dims, array.shape)):
            want = dim if isinstance(dim, int) else sizes.setdefault(dim, size)
            if size != want:
                why = f"{name!r} has shape {array.shape}: axis {axis} should be {want}"
                if dim in _FROM_INFO:
                    raise _disagree(path, f"{why}, its {_FROM_INFO[dim]}")
                raise _arrays_damaged(path, why)
    steps = arrays["steps"]
    if np.any(steps[1:] <= steps[:-1]):
        raise _arrays_damaged(path, "its steps do not increase")
    always = {"steps", "codes", "h0", "h1", "sample_index", "color", "pairs", "random_index"}
    if missing := sorted(always - arrays.keys()):
        raise _arrays_damaged(path, f"no {', '.join(map(repr, missing))} array")
    expected = set(always)  # and the arrays of what recorder.json says was probed
    expected |= {"ratios"} if info["decoder"] else set()
    expected |= {"labels"} if info["labels"] else set()
    expected |= set(_CLASSES) if info["class_geodesics"] else set()
    if info["decoder"] and info["grid"] and sizes.get("d") == 2:  # fields on the grid
        expected |= set(_FIELDS)
    if missing := sorted(expected - arrays.keys()):
        raise _disagree(path, f"no {', '.join(map(repr, missing))} array")
    if extra := sorted((arrays.keys() & _SPEC.keys()) - expected - {"epochs"}):
        raise _disagree(path, f"{', '.join(map(repr, extra))}, which {INFO} rules out")


def _disagree(path: Path, why: str) -> DynamicsError:
    """The arrays do not match the probe set of recorder.json: either may be damaged."""
    return DynamicsError(
        f"{path} does not match {INFO} ({why}): one of them is damaged. Delete {ROWS}, "
        f"{path.name} and {INFO} and record the probes again."
    )


def _count(value) -> bool:
    return is_int(value) and value >= 0


# recorder.json: its keys and what the writer writes in each (`likelihood` only for
# Fisher–Rao probes).
_INFO_KEYS = {
    "samples": _count,
    "pairs": _count,
    "grid": _count,
    "every": _count,
    "seed": _count,
    "random_samples": _count,
    "class_geodesics": lambda v: type(v) is bool,
    "landscape_every": lambda v: v is None or _count(v),
    "decoder": lambda v: type(v) is bool,
    "labels": lambda v: type(v) is bool,
    "data_shape": lambda v: type(v) is list and all(_count(n) for n in v),
    "data_sha256": lambda v: type(v) is str,
}
_INFO_OPTIONAL = {"likelihood": lambda v: type(v) is str}


def _check_info(path: Path, info: dict) -> None:
    for key in _INFO_KEYS:
        if key not in info:
            raise DynamicsError(
                f"{path} has no {key!r}: it is damaged or was written by an older jgeo. Delete "
                f"the dynamics files ({ROWS}, {ARRAYS}, {INFO}) and record the probes again."
            )
    for key, valid in (_INFO_KEYS | _INFO_OPTIONAL).items():
        if key in info and not valid(info[key]):
            raise DynamicsError(
                f"{path} is damaged ({key!r} is {short(info[key])}); delete the dynamics files "
                f"({ROWS}, {ARRAYS}, {INFO}) and record the probes again."
            )


def read_info(run_dir: Path) -> dict | None:
    """`recorder.json` of `run_dir`, or None if there is none.

    **Raises:** `DynamicsError` if it is not a JSON object."""
    path = run_dir / INFO
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
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
    truncated or damaged: a row that is not JSON or not UTF-8, lacks keys the other rows
    have or holds a value of another type than the writer writes; an array missing, of
    another rank, length or dtype kind than documented in `Dynamics`; a `recorder.json`
    without the keys the writer writes.
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
    _check_info(run_dir / INFO, info)
    rows, arrays = _read_rows(rows_path), _read_arrays(arrays_path)
    _check_arrays(arrays_path, arrays, info)
    # The writer writes the arrays, then the rows: an interruption between the two leaves
    # the arrays one probe ahead, or the rows ahead by the probes a resumed run dropped.
    probes = len(arrays["steps"])
    if len(rows) < probes - 1:
        raise DynamicsError(
            f"{rows_path} holds {len(rows)} probes, {arrays_path.name} {probes}: it lost rows "
            f"(truncated?). Restore it, or delete {ROWS} and {ARRAYS} and record the probes again."
        )
    common = min(len(rows), probes)
    fix = "one of them is damaged: delete both and record the probes again"
    if [r["step"] for r in rows[:common]] != arrays["steps"][:common].tolist():
        raise DynamicsError(f"{rows_path} and {arrays_path} disagree on the probed steps; {fix}.")
    if rows and ("epoch" in rows[0]) != ("epochs" in arrays):
        which = (rows_path, arrays_path.name) if "epoch" in rows[0] else (arrays_path, ROWS)
        raise DynamicsError(f"{which[0]} counts epochs and {which[1]} does not; {fix}.")
    if (
        "epochs" in arrays
        and [r["epoch"] for r in rows[:common]] != arrays["epochs"][:common].tolist()
    ):
        raise DynamicsError(f"{rows_path} and {arrays_path} disagree on the probed epochs; {fix}.")
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
        if stored is not None:
            _check_info(run_dir / INFO, stored)
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
        """Append one probe: its row (with `step`, and `epoch` if known) and arrays. Rows
        keep the same keys (`load` requires it): a row with other keys than the stored
        ones (a resumed recording by another jgeo version) is filled with None, and so
        are the stored rows."""
        if self.rows and row.keys() != self.rows[0].keys():
            keys = dict.fromkeys([*self.rows[0], *row])
            self.rows = [{k: r.get(k) for k in keys} for r in self.rows]
            row = {k: row.get(k) for k in keys}
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
