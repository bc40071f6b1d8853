"""Storage of the probes of a run: `dynamics.jsonl` (one row of scalars per probe),
`dynamics.npz` (arrays, stacked over probes) and `recorder.json` (what is probed: the
samples, the layers, and what each probe declares), rewritten atomically after every
probe and cut back to the step a run resumes from.

The files are read back as the writer writes them, and checked: a row of other keys or
types, an array of another length, a `recorder.json` without what the writer puts in
it, is damage, named with its file. Arrays are stacked over probes, except those a
probe declares ragged (persistence diagrams), which are concatenated with the probe's
step in a first column. Directories written before probes were objects (no `format` in
`recorder.json`) are read as the built-in probes of their day wrote them.

During training the npz is written uncompressed (compressing all probes again after
each one would cost more than the probe itself); `close` compresses it."""

import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._io import RunError, is_int, read_jsonl_rows, short, write_atomic

ROWS, ARRAYS, INFO = "dynamics.jsonl", "dynamics.npz", "recorder.json"
FORMAT = 2  # recorder.json's `format`: probes as objects, layers


class DynamicsError(RunError, ValueError):
    """Missing or damaged dynamics files; the command line exits with code 2."""


def key(name: str, layer: str) -> str:
    """The name of a layer's scalar or array in the files: `"<layer>/<name>"`, or the
    name alone for a single representation (layer "")."""
    return f"{layer}/{name}" if layer else name


class Dynamics(NamedTuple):
    """The probes of a run, as `load` returns them.

    **Fields:**

    - `rows`: one dict of scalars per probe: `step`, `epoch` (in `jgeo train` runs),
      `seconds`, what each probe recorded (`betti0`, `cka_previous`, ..., keyed
      `"<layer>/<name>"` when several layers are probed) and the loop's own scalars.
      Every row has the same keys; `step` and `epoch` are integers, the other values
      numbers, bools, or None where a probe did not measure (the landscape between its
      steps, CKA at the first probe) or the value is undefined (NaN).
    - `arrays`: `steps` (P,) and, in `jgeo train` runs, `epochs` (P,); each probe's
      arrays, stacked over probes (P, ...) — `codes` (P, S, d) of the fixed samples,
      with a decoder `ratios` (P, pairs), `pairs` (P, pairs, 2), for d = 2 `extent`
      (P, 4), `log_volume` and `gaussian_curvature` (P, g, g), ... — or ragged, as
      (k, 1 + ...) rows tagged with their step in column 0 (`h0`, `h1`: (step, birth,
      death)); and the samples: `sample_index` (S,), `random_index` (R,), `color` (S,)
      and, with labels, `labels` (S,) and `classes` (C,) (the class values, in the order
      the class measures index them).
    - `info`: `recorder.json`: the samples, `every`, `seed`, the data's shape, the
      `layers` {name: width} and `probes`, what each probe declares (group, scalars
      and how they are drawn, ragged arrays).
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
    def layers(self) -> list[str]:
        """The probed layers' names ("" for a single representation)."""
        return list(self.info["layers"])

    key = staticmethod(key)

    def layer(self, name: str) -> "Dynamics":
        """The probes of one layer, its names without the `"<layer>/"` prefix (what is not
        of a layer — steps, the samples, the landscape — kept as it is)."""
        if name == "":
            return self
        prefix, others = f"{name}/", [f"{layer}/" for layer in self.layers if layer != name]

        def view(d: dict) -> dict:
            out = {k: v for k, v in d.items() if not k.startswith((prefix, *others))}
            return out | {k[len(prefix) :]: v for k, v in d.items() if k.startswith(prefix)}

        return Dynamics([view(r) for r in self.rows], view(self.arrays), self.info)

    @property
    def time(self) -> tuple[str, np.ndarray]:
        """The axis the probes are drawn along: ("epoch", epochs) in `jgeo train` runs,
        else ("step", steps)."""
        if "epochs" in self.arrays:
            return "epoch", self.arrays["epochs"]
        return "step", self.arrays["steps"]

    def diagram(self, dim: int, probe: int, layer: str = "") -> np.ndarray:
        """The H`dim` persistence pairs (k, 2) of the `probe`-th probe (0-based)."""
        pairs = self.arrays[key(f"h{dim}", layer)]
        return pairs[pairs[:, 0] == self.arrays["steps"][probe], 1:]


# -- reading -------------------------------------------------------------------------


def damaged(path: Path, why: str, fix: str = "") -> DynamicsError:
    """The error of a damaged probe file `path`: why, and how to go on."""
    fix = fix or f"Delete {ROWS}, {ARRAYS} and {INFO} there and record the probes again."
    return DynamicsError(f"{path} is damaged ({why}). {fix}")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise damaged(path, "a directory, not a file") from None
    except OSError as error:
        raise DynamicsError(f"{path} cannot be read ({error.strerror or error}).") from None


def _read_rows(path: Path) -> list[dict]:
    """The rows of `dynamics.jsonl`, checked (`jgeo._io.read_jsonl_rows`): integer steps,
    increasing, the same keys in every row, scalars for values."""

    def damaged(number: int, why: str) -> DynamicsError:
        return DynamicsError(
            f"{path} line {number} {why}. Restore the file, or delete {path.name} and "
            f"{ARRAYS} and record the probes again."
        )

    _read_bytes(path)  # a directory or an unreadable file: named as such
    return read_jsonl_rows(path, order="step", required=("step", "seconds"), damaged=damaged)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    _read_bytes(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as error:  # numpy, zipfile and zlib raise many types for damaged files
        raise damaged(path, f"{type(error).__name__}: {str(error)[:120]}") from None
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):  # a member that is no .npy: numpy gives bytes
            raise damaged(path, f"its member {name!r} is not an array")
    if "steps" not in arrays:
        raise DynamicsError(f"{path} has no 'steps' array: it is not a jgeo dynamics file.")
    return arrays


def read_info(run_dir: Path) -> dict | None:
    """`recorder.json` of `run_dir` as a dict, or None if there is none.

    **Raises:** `DynamicsError` if it is not a UTF-8 JSON object."""
    path = run_dir / INFO
    if not path.exists():
        return None
    try:
        info = json.loads(_read_bytes(path).decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        info = None
    if not isinstance(info, dict):
        raise damaged(path, "not a JSON object")
    return info


def _count(value) -> bool:
    return is_int(value) and value >= 0


def _is_str(value) -> bool:
    return type(value) is str


def _is_bool(value) -> bool:
    return type(value) is bool


def _declaration(value) -> bool:
    """A probe's declaration as `AbstractProbe.declaration` writes it."""
    scalar = {"title": _is_str, "log": _is_bool, "reference": lambda v: v is None or _is_str(v),
              "panel": _is_bool}  # fmt: skip
    return (
        type(value) is dict
        and value.keys() == {"probe", "group", "per_layer", "scalars", "ragged", "options"}
        and type(value["options"]) is dict
        and all(
            _is_str(k) and (v is None or type(v) in (bool, int, float, str))
            for k, v in value["options"].items()
        )
        and _is_str(value["probe"])
        and _is_str(value["group"])
        and _is_bool(value["per_layer"])
        and type(value["ragged"]) is list
        and all(map(_is_str, value["ragged"]))
        and type(value["scalars"]) is dict
        and all(
            type(s) is dict and s.keys() == scalar.keys() and all(scalar[k](s[k]) for k in s)
            for s in value["scalars"].values()
        )
    )


# recorder.json: its keys and what the Recorder writes in each; `layers` is null until
# the first probe has shown the representation's shape.
_INFO_KEYS = {
    "format": lambda v: v == FORMAT,
    "samples": _count,
    "random_samples": _count,
    "every": _count,
    "seed": _count,
    "labels": _is_bool,
    "data_shape": lambda v: type(v) is list and all(_count(n) for n in v),
    "data_sha256": _is_str,
    "probes": lambda v: type(v) is list and all(map(_declaration, v)),
    "layers": lambda v: (
        v is None
        or (
            type(v) is dict and all(_is_str(k) and "/" not in k and _count(n) for k, n in v.items())
        )
    ),
    "arrays": lambda v: v is None or (type(v) is dict and all(map(_entry, v.values()))),
}


def _entry(value) -> bool:
    """An array of the manifest: [dtype, shape of one probe's entry (stacked) or of one
    row (ragged) or of the whole (static), kind]."""
    return (
        type(value) is list
        and len(value) == 3
        and _is_str(value[0])
        and type(value[1]) is list
        and all(map(_count, value[1]))
        and value[2] in ("stacked", "ragged", "static")
    )


def manifest(arrays: dict, ragged: set[str], static: set[str]) -> dict:
    """What `recorder.json` says of the arrays: each one's dtype, the shape of one
    probe's entry (stacked arrays), of one row (ragged) or of the whole (static), its kind."""

    def entry(name, array):
        if name in static:
            return [array.dtype.str, list(array.shape), "static"]
        kind = "ragged" if name in ragged else "stacked"
        return [array.dtype.str, list(array.shape[1:]), kind]

    return {name: entry(name, array) for name, array in sorted(arrays.items())}


def _check_info(path: Path, info: dict) -> None:
    fix = f"Delete the dynamics files ({ROWS}, {ARRAYS}, {INFO}) and record the probes again."
    for name, valid in _INFO_KEYS.items():
        if name not in info:
            raise damaged(path, f"no {name!r}", fix)
        if not valid(info[name]):
            raise damaged(path, f"{name!r} is {short(info[name])}", fix)
    if extra := sorted(info.keys() - _INFO_KEYS.keys()):
        raise damaged(path, f"keys the Recorder does not write: {', '.join(extra)}", fix)


def _check_arrays(path: Path, arrays: dict, info: dict) -> None:
    """The arrays of `dynamics.npz` are those `recorder.json` lists (each of its dtype,
    shape and kind: one entry per probe, ragged rows tagged with probed steps), and hold
    what the writer writes: increasing steps, indices of the data and samples, finite
    codes of the layers' widths."""
    steps = arrays["steps"]
    probes, samples, rows = len(steps), info["samples"], info["data_shape"][0]
    listed = info["arrays"]

    def check(name: str, ok: bool, why: str) -> None:
        if not ok:
            raise damaged(path, f"{name!r} {why}")

    if missing := sorted(listed.keys() - arrays.keys()):
        raise _disagree(path, f"no {', '.join(map(repr, missing))} array")
    if extra := sorted(arrays.keys() - listed.keys()):
        raise _disagree(path, f"{', '.join(map(repr, extra))}, which {INFO} does not list")
    for name, (dtype, shape, kind) in listed.items():
        array = arrays[name]
        check(name, array.dtype.str == dtype, f"has dtype {array.dtype}, not {dtype}")
        if kind == "static":
            check(name, list(array.shape) == shape, f"has shape {array.shape}")
        elif kind == "stacked":
            fits = array.ndim >= 1 and len(array) == probes and list(array.shape[1:]) == shape
            check(name, fits, f"has shape {array.shape}: {probes} of {tuple(shape)} expected")
        else:
            check(name, array.ndim == 2 and list(array.shape[1:]) == shape,
                  f"has shape {array.shape}")  # fmt: skip
            check(name, bool(np.all(np.isin(array[:, 0], steps))),
                  "holds rows tagged with a step that is no probe")  # fmt: skip
    check("steps", steps.ndim == 1 and steps.dtype.kind in "iu", f"has shape {steps.shape}")
    check("steps", bool(np.all(steps[1:] > steps[:-1])), "do not increase")
    check("steps", bool(np.all(steps % info["every"] == 0)), "are not multiples of every")
    if "epochs" in arrays:
        check("epochs", arrays["epochs"].dtype.kind in "iu", "are not integers")
    sizes = {"sample_index": samples, "random_index": info["random_samples"], "color": samples}
    sizes |= {"labels": samples} if info["labels"] else {}
    for name, size in sizes.items():
        check(name, name in arrays and arrays[name].shape == (size,), "is missing or misshapen")
    for name in ("sample_index", "random_index"):
        index = arrays[name]
        check(name, index.dtype.kind in "iu" and bool(np.all((0 <= index) & (index < rows))),
              f"holds indices outside the data's {rows} points")  # fmt: skip
    if info["labels"]:
        check("classes", "classes" in arrays and arrays["classes"].ndim == 1, "is missing")
    for layer, width in info["layers"].items():
        name = key("codes", layer)
        if (codes := arrays.get(name)) is not None:
            check(name, codes.shape[1:] == (samples, width), f"has shape {codes.shape}")
            check(name, codes.dtype.kind == "f" and bool(np.all(np.isfinite(codes))),
                  "holds values that are not finite numbers (no probe writes them)")  # fmt: skip
        name = key("pairs", layer)
        if (pairs := arrays.get(name)) is not None:
            inside = pairs.dtype.kind in "iu" and bool(np.all((0 <= pairs) & (pairs < samples)))
            check(name, inside, "holds no pairs of samples")


def _disagree(path: Path, why: str) -> DynamicsError:
    """The arrays do not match recorder.json: either may be damaged."""
    return DynamicsError(
        f"{path} does not match {INFO} ({why}): one of them is damaged. Delete {ROWS}, "
        f"{path.name} and {INFO} and record the probes again."
    )


def _check_files(run_dir: Path) -> bool:
    """Whether `run_dir` holds probe files: all three, or none.

    **Raises:** `DynamicsError` naming the missing ones where only some exist."""
    paths = [run_dir / name for name in (ROWS, ARRAYS, INFO)]
    present = [p.exists() for p in paths]
    if any(present) and not all(present):
        missing = ", ".join(p.name for p, there in zip(paths, present) if not there)
        kept = ", ".join(p.name for p, there in zip(paths, present) if there)
        raise DynamicsError(
            f"{run_dir} holds {kept} but not {missing}: the probes are incomplete. Restore "
            f"{missing}, or delete {kept} to record the probes again."
        )
    return all(present)


def load(run_dir: str | Path) -> Dynamics:
    """The probes recorded in the directory `run_dir`.

    **Arguments:**

    - `run_dir`: a directory written by `jgeo train`, a `Recorder` or `jgeo probe`.

    **Returns:** a `Dynamics`: `.rows`, `.arrays`, `.info`, `.layers`, `.series(key)`,
    `.diagram(dim, probe, layer)`.

    **Raises:** `DynamicsError` naming the file and the fix when the files are missing,
    truncated or damaged: a row that is not JSON or not UTF-8, lacks keys the other rows
    have or holds a value of another type than the writer writes; an array missing, of
    another length than the probes, or holding what no probe writes (codes that are not
    finite, indices outside the data); a `recorder.json` without the keys the writer
    writes.
    """
    run_dir = Path(run_dir)
    if not _check_files(run_dir):
        raise DynamicsError(
            f"{run_dir / ROWS} does not exist: record probes with `jgeo train` "
            "(`--probe-every` ≥ 1, the default) or with a `jgeo.dynamics.Recorder` in your "
            "own loop."
        )
    rows_path, arrays_path = run_dir / ROWS, run_dir / ARRAYS
    info, rows, arrays = read_info(run_dir), _read_rows(rows_path), _read_arrays(arrays_path)
    if "format" not in info:  # written before probes were objects
        from ._legacy import upgrade

        info, arrays = upgrade(run_dir / INFO, info, arrays)
    _check_info(run_dir / INFO, info)
    if info["layers"] is None or info["arrays"] is None:
        raise DynamicsError(f"{rows_path} holds no probes yet.")
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
    last = arrays["steps"][common - 1]
    return Dynamics(rows[:common], _cut(arrays, last, info["arrays"]), info)


def _cut(arrays: dict, last_step: int, listed: dict) -> dict:
    """The arrays of the probes up to `last_step`."""
    keep = arrays["steps"] <= last_step
    cut = {}
    for name, array in arrays.items():
        kind = listed[name][2]
        if kind == "ragged":
            cut[name] = array[array[:, 0] <= last_step]
        else:
            cut[name] = array[keep] if kind == "stacked" else array
    return cut


# -- writing -------------------------------------------------------------------------


class ProbeFiles:
    """The probe files of one directory, appended to probe by probe. Opened on files
    that already hold probes of the same probe set it continues them; `resume(step)`
    drops those after `step`.

    **Raises:** `DynamicsError` if the directory holds probes of another probe set
    (`info` differs from its `recorder.json`), of an older jgeo, or incomplete or
    damaged probe files."""

    def __init__(self, run_dir: Path, info: dict, static: dict[str, np.ndarray]):
        self.run_dir = run_dir
        self.rows: list[dict] = []
        self.stacked: dict[str, list] = {}  # per name, one entry per probe (None: absent)
        self.ragged: dict[str, list] = {}
        self.static = static
        self.info = info
        if not _check_files(run_dir):
            return
        stored = read_info(run_dir)
        if "format" not in stored:
            raise DynamicsError(
                f"{run_dir} holds probes recorded by an older jgeo, before probes were "
                f"objects: record into a new directory (`jgeo dynamics {run_dir}` still "
                "draws them)."
            )
        _check_info(run_dir / INFO, stored)
        learned = ("layers", "arrays")  # what the first probe adds to recorder.json
        ours = {k: v for k, v in info.items() if k not in learned}
        theirs = {k: v for k, v in stored.items() if k not in learned}
        if theirs != ours:
            changed = "; ".join(
                f"{k}: {short(theirs.get(k))} → {short(ours.get(k))}"
                for k in sorted(theirs.keys() | ours.keys())
                if theirs.get(k) != ours.get(k)
            )
            raise DynamicsError(
                f"{run_dir} holds probes of another probe set ({changed}). Record into a new "
                f"directory, or delete {ROWS}, {ARRAYS} and {INFO} there to start over."
            )
        self.info = stored
        if stored["layers"] is None or stored["arrays"] is None:
            return
        previous = load(run_dir)
        self.rows = list(previous.rows)
        for name, array in previous.arrays.items():
            kind = stored["arrays"][name][2]
            if kind == "ragged":
                self.ragged[name] = [array]
            elif kind == "stacked":
                self.stacked[name] = list(array)

    @property
    def last_step(self) -> int | None:
        return int(self.rows[-1]["step"]) if self.rows else None

    def last(self, name: str) -> np.ndarray | None:
        """The stacked array `name` of the last probe, or None."""
        entries = self.stacked.get(name)
        return entries[-1] if entries and entries[-1] is not None else None

    def first(self, name: str) -> np.ndarray | None:
        """The stacked array `name` of the first probe, or None."""
        entries = self.stacked.get(name)
        return entries[0] if entries and entries[0] is not None else None

    def set_layers(self, layers: dict[str, int]) -> None:
        """Record the layers' widths (at the first probe).

        **Raises:** `DynamicsError` if the stored probes are of other layers."""
        stored = self.info["layers"]
        if stored is not None and stored != layers:
            raise DynamicsError(
                f"{self.run_dir} holds probes of layers {stored}; `encode` now gives {layers} "
                "with these parameters. Probes of one directory compare one representation: "
                "record other layers into a new directory."
            )
        self.info = {**self.info, "layers": layers}

    def resume(self, step: int) -> None:
        """Drop the probes recorded after `step` (a run resumed from there records them again)."""
        if self.last_step is None or self.last_step <= step:
            return
        keep = sum(r["step"] <= step for r in self.rows)
        self.rows = self.rows[:keep]
        self.stacked = {name: entries[:keep] for name, entries in self.stacked.items()}
        self.ragged = {name: [np.concatenate(parts)[np.concatenate(parts)[:, 0] <= step]]
                       for name, parts in self.ragged.items()}  # fmt: skip

    def append(self, row: dict, stacked: dict, ragged: dict) -> None:
        """Append one probe: its row (with `step`, and `epoch` if known), its stacked
        arrays and its ragged ones (rows of a varying count). Rows keep the same keys and
        stacked arrays one entry per probe (`load` requires it): what a probe did not
        record at this step (or before) is None in the rows and NaN in the arrays."""
        if self.rows and row.keys() != self.rows[0].keys():
            keys = dict.fromkeys([*self.rows[0], *row])
            self.rows = [{k: r.get(k) for k in keys} for r in self.rows]
            row = {k: row.get(k) for k in keys}
        count = len(self.rows)
        self.rows.append(row)
        entries = {"steps": np.asarray(row["step"]), **stacked}
        if "epoch" in row:
            entries["epochs"] = np.asarray(row["epoch"])
        for name in self.stacked.keys() | entries.keys():
            self.stacked.setdefault(name, [None] * count).append(entries.get(name))
        for name, value in ragged.items():
            value = np.asarray(value, np.float64)
            value = value.reshape(len(value), int(np.prod(value.shape[1:])))  # rows (k, m)
            tagged = np.concatenate([np.full((len(value), 1), row["step"]), value], axis=1)
            self.ragged.setdefault(name, []).append(tagged)
        self.write()

    def write(self, compress: bool = False) -> None:
        """Rewrite the three files (the arrays compressed if `compress`)."""
        arrays = {name: _stack(entries) for name, entries in self.stacked.items()}
        for name, parts in self.ragged.items():
            arrays[name] = np.concatenate(parts)
        arrays |= self.static
        listed = manifest(arrays, set(self.ragged), set(self.static))
        self.info = {**self.info, "arrays": listed}
        buffer = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buffer, **arrays)
        write_atomic(self.run_dir / INFO, json.dumps(self.info, indent=2))
        write_atomic(self.run_dir / ARRAYS, buffer.getvalue())
        text = "".join(json.dumps(r) + "\n" for r in self.rows)
        write_atomic(self.run_dir / ROWS, text)


def _stack(entries: list) -> np.ndarray:
    """Entries of one array over probes, NaN where a probe did not record it."""
    like = next(e for e in entries if e is not None)
    if any(e is None for e in entries):
        gap = np.full(np.shape(like), np.nan)
        entries = [gap if e is None else e for e in entries]
    return np.stack(entries)
