"""Probing after training: the probes of a `Recorder` over activations saved by any
framework, one `.npz` file per step (`jgeo probe DIR --out OUT`).

The files are checked whole before anything is written, then probed step by step: their
headers first (names, steps, layers, shapes, dtypes: nothing decompressed), then their
values, one file at a time (finite numbers, the same labels), then, one file at a time
again, the probes. A step's activations are the `params` of a `Recorder` whose `data`
are the indices of the inputs, and whose `encode` looks each layer's row up in them:
every step has parameters of the same shapes, so the probes compile once.
"""

import contextlib
import math
import re
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._io import reason
from .._labels import class_labels
from ._probe import AbstractProbe
from ._recorder import Recorder
from ._store import ARRAYS, INFO, ROWS, DynamicsError

LABELS = "labels"  # the one array of a step file that is not a layer
_STEP_FILE = re.compile(r"step_([0-9]+)\.npz", re.ASCII)
_STEP_LIMIT = 2**31 - 1  # the Recorder passes the step to the probes as an int32
_INDEX_LIMIT = 2**24  # the Recorder's data are float32: indices stay exact up to here
_FORMAT = "one step_<step>.npz per step (step_000100.npz), holding one array (N, ...) per layer"


class _Plan(NamedTuple):
    """What the headers of a directory of step files say: the files by step, each
    layer's shape per input and the dtype it is probed in, the number of inputs, and
    whether the files hold labels."""

    files: list[tuple[int, Path]]
    layers: dict[str, tuple[tuple[int, ...], np.dtype]]
    n: int
    labels: bool


def probe_activations(
    directory: str | Path,
    out: str | Path,
    *,
    probes: Sequence[AbstractProbe] | None = None,
    samples: int = 128,
    random_samples: int = 512,
    seed: int = 0,
) -> Path:
    """Run the probes over activations saved during training by any framework, after it:
    the same files (`dynamics.jsonl`, `dynamics.npz`, `recorder.json`) as a `Recorder`
    fed the same codes writes, drawn by `jgeo dynamics out`.

    `directory` holds one `step_<step>.npz` per probed step (`step_000100.npz`: the
    step is the integer in the name), as `numpy.savez` writes it — from PyTorch
    (`.detach().cpu().numpy()`), TensorFlow or JAX alike:

    ```python
    np.savez(f"acts/step_{step:06d}.npz", conv1=h1, fc=h2, labels=y)
    ```

    Each file holds one array (N, ...) per layer, for the same N inputs in the same
    order at every step (rows are flattened per input), and optionally `labels` (N,),
    integer classes, the same in every file. Every probe runs on every layer, its
    scalars keyed `"<layer>/<name>"`. Without the inputs, the fixed samples are maxmin
    landmarks of the input *indices* 0..N−1 — spread evenly over the files' order, a
    systematic sample, not landmarks of the data as a live `Recorder` chooses them — and
    the random sample is uniform over the indices; points are coloured by label, or by
    index. The probes see no decoder (the defaults: the codes, persistent homology, CKA
    to the previous probe, intrinsic dimension, rank, and with labels the class
    structure).

    The files are checked before anything is written (the names, steps, layers, shapes
    and dtypes from their headers, then the values, one file at a time), then probed one
    step at a time: one step's activations are in memory at once, and every file is read
    twice. Integer and float16 activations are probed as float32, float64 as float64
    where jax has x64 enabled (else float32).

    **Arguments:**

    - `directory`: the directory of step files. Files not ending in `.npz` (and hidden
      ones) are ignored; every `.npz` must be a step file.
    - `out`: the directory of the probe files (created), not `directory`, holding no
      probes yet.
    - `probes`: the probes, as for `Recorder` (None: the defaults above); a probe of a
      decoder's geometry applies to no layer here.
    - `samples`, `random_samples`, `seed`: as for `Recorder`.

    **Returns:** the path `out`.

    **Raises:** `DynamicsError` (exit code 2 on the command line) naming the file and
    the fix, before anything is written: no step files; a `.npz` not named
    `step_<integer>.npz`; a step named twice (`step_1.npz`, `step_001.npz`) or beyond
    2³¹ − 1; a damaged file, or a member that is no array; a layer missing at one step
    or an extra one; another number of inputs than the other steps (or fewer than 8);
    a layer whose shape per input changes; non-numeric arrays; NaN or infinite values;
    `labels` of another length, not integers, in some files only, or differing between
    files; `out` being `directory`, a file, or holding probes already. `ValueError` for
    bad `samples`, `random_samples`, `seed` or `probes`.
    """
    directory, out = Path(directory), Path(out)
    for name, value, least in [("samples", samples, 8), ("random_samples", random_samples, 16),
                               ("seed", seed, 0)]:  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            option = " (--samples)" if name == "samples" else " (--seed)" if name == "seed" else ""
            raise DynamicsError(f"`{name}`{option} must be an integer ≥ {least}, got {value!r}.")
    plan = _plan(directory)
    with probe_directory(out, directory):
        labels = None
        for _, path in plan.files:  # the values, one file at a time: nothing written yet
            _, labels = _read_step(path, plan, labels, plan.files[0][1])
        names = sorted(plan.layers)

        def encode(params, x):
            i = x[0].astype(jnp.int32)  # the input's index, exact below 2**24 in float32
            return {name: params[name][i] for name in names}

        index = np.arange(plan.n, dtype=np.int64)[:, None]
        with Recorder(out, index, encode=encode, labels=labels, probes=probes, samples=samples,
                      random_samples=random_samples, seed=seed) as recorder:  # fmt: skip
            for step, path in plan.files:
                layers, _ = _read_step(path, plan, labels, plan.files[0][1])
                recorder(step, {name: jnp.asarray(value) for name, value in layers.items()})
                del layers
    return out


@contextlib.contextmanager
def probe_directory(out: str | Path, source: str | Path) -> Iterator[Path]:
    """A new directory `out` for the probes of `source` (a run, or a directory of saved
    activations): checked on entry, and removed again if the block fails before it holds
    anything but its lock (a refused command leaves nothing behind). What
    `probe_activations` and `jgeo.experiment.probe_checkpoints` write into.

    **Arguments:** `out`, the directory for the probe files; `source`, the probed one.

    **Returns:** a context manager yielding `out` as a `Path`.

    **Raises:** `DynamicsError` naming the fix, on entry, if `out` is `source` itself, a
    file, or holds probes already.
    """
    out, source = Path(out), Path(source)
    if out.exists() and not out.is_dir():
        raise DynamicsError(f"--out {out} is a file, not a directory; choose a directory path.")
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise DynamicsError(
            f"--out {out} is the probed directory itself: choose another directory for the "
            "probe files."
        )
    if held := [name for name in (ROWS, ARRAYS, INFO) if (out / name).exists()]:
        raise DynamicsError(
            f"--out {out} holds probes already ({', '.join(held)}): choose a new --out "
            "directory, or delete those files there to probe again."
        )
    created = not out.exists()
    try:
        yield out
    except BaseException:
        if created and out.is_dir() and all(p.name == ".lock" for p in out.iterdir()):
            shutil.rmtree(out, ignore_errors=True)
        raise


# -- the headers ---------------------------------------------------------------------


def step_files(directory: Path) -> list[tuple[int, Path]]:
    """The step files of `directory`, by increasing step.

    **Raises:** `DynamicsError` for a missing directory, no step files, a `.npz` that is
    not named `step_<integer>.npz`, a step named twice or beyond 2³¹ − 1."""
    if not directory.exists():
        raise DynamicsError(
            f"{directory} does not exist: give a directory of activation files ({_FORMAT}), "
            "or a `jgeo train` run directory."
        )
    if not directory.is_dir():
        raise DynamicsError(
            f"{directory} is a file, not a directory of activation files ({_FORMAT})."
        )
    try:
        paths = sorted(p for p in directory.iterdir() if p.suffix == ".npz")
    except OSError as error:
        raise DynamicsError(f"{directory} cannot be read ({reason(error)}).") from None
    found: dict[int, Path] = {}
    for path in paths:
        if path.name.startswith("."):
            continue
        match = _STEP_FILE.fullmatch(path.name)
        if match is None:
            what = ("the step in its name is not an integer" if path.name.startswith("step_")
                    else "it is not an activation file")  # fmt: skip
            raise DynamicsError(
                f"{path}: {what}. Name each step's file step_<step>.npz with an integer step "
                f"(step_000100.npz), or move other .npz files out of {directory}."
            )
        step = int(match.group(1))
        if step in found:
            raise DynamicsError(
                f"{found[step]} and {path.name} both hold step {step}: keep one of them."
            )
        if step > _STEP_LIMIT:
            raise DynamicsError(
                f"{path}: step {step} is beyond 2**31 - 1, the largest step a probe takes: "
                "number the files by a smaller step (an epoch, or a step divided by the period)."
            )
        if not path.is_file():
            raise DynamicsError(f"{path} is not a file: move it out of {directory}.")
        found[step] = path
    if not found:
        raise DynamicsError(
            f"{directory} holds no activation files: write {_FORMAT} and optionally `labels` "
            "(N,), e.g. np.savez(f'step_{step:06d}.npz', layer1=h1, labels=y); or give a "
            "`jgeo train` run directory."
        )
    return sorted(found.items())


def _damaged(path: Path, why: str) -> DynamicsError:
    return DynamicsError(f"{path} is damaged ({why}): write it again with numpy.savez.")


def _headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's shape and dtype, from the `.npy` headers of the npz `path`."""
    try:
        archive = zipfile.ZipFile(path)
    except OSError as error:
        raise DynamicsError(f"{path} cannot be read ({reason(error)}).") from None
    except Exception as error:  # zipfile raises several types for what is no zip
        raise _damaged(path, f"not an .npz archive: {type(error).__name__}") from None
    headers = {}
    with archive:
        for member in archive.infolist():
            if not member.filename.endswith(".npy") or member.is_dir():
                raise DynamicsError(
                    f"{path}: its member {member.filename!r} is not a NumPy array: save the "
                    "arrays alone, with numpy.savez."
                )
            name = member.filename[: -len(".npy")]
            if name in headers:
                raise _damaged(path, f"two members named {name!r}")
            try:
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)  # fmt: skip
                    shape, _, dtype = read(f)
                    start = f.tell()
            except Exception as error:  # numpy, zipfile and zlib raise many types
                raise _damaged(path, f"{name!r}: {type(error).__name__}: {error}"[:160]) from None
            if not dtype.hasobject:
                held, declared = member.file_size - start, math.prod(shape) * dtype.itemsize
                if held != declared:
                    raise _damaged(
                        path, f"{name!r} declares shape {shape} of {dtype}, {declared} bytes, "
                        f"but holds {held}"
                    )  # fmt: skip
            headers[name] = (shape, dtype)
    return headers


def _plan(directory: Path) -> _Plan:
    """What the step files of `directory` hold, from their headers, checked."""
    files = step_files(directory)
    first = files[0][1]
    layers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    n = None
    has_labels = None
    wide: dict[str, bool] = {}  # whether a step holds a layer in float64 (or wider)
    for _, path in files:
        headers = _headers(path)
        label = headers.pop(LABELS, None)
        if has_labels is None:
            has_labels = label is not None
        elif has_labels != (label is not None):
            which = (first, path) if has_labels else (path, first)
            raise DynamicsError(
                f"{which[0]} holds `labels` and {which[1]} does not: write them in every file "
                "or in none."
            )
        if not headers:
            raise DynamicsError(
                f"{path} holds no layer's activations: save one array (N, ...) per layer."
            )
        if not layers:  # the first file's layers: the others must match them
            layers = {name: (shape[1:], dtype) for name, (shape, dtype) in headers.items()}
        if missing := sorted(layers.keys() - headers.keys()):
            raise DynamicsError(
                f"{path} lacks layer{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}, "
                f"which {first.name} holds: every step holds the same layers."
            )
        if extra := sorted(headers.keys() - layers.keys()):
            raise DynamicsError(
                f"{path} holds layer{'s' * (len(extra) > 1)} {', '.join(map(repr, extra))}, "
                f"which {first.name} does not: every step holds the same layers."
            )
        for name, (shape, dtype) in headers.items():
            where = f"{path}: layer {name!r}"
            if not name or "/" in name:
                raise DynamicsError(
                    f"{where}: a layer's name must be non-empty and without '/': rename it."
                )
            if dtype.kind not in "fiu" or dtype.hasobject:
                raise DynamicsError(
                    f"{where} holds {dtype} values, not real numbers: save the activations "
                    "as floats."
                )
            if len(shape) == 0:
                raise DynamicsError(
                    f"{where} is a scalar: save an array (N, ...), a row per input."
                )
            if math.prod(shape[1:]) == 0:
                raise DynamicsError(f"{where} has shape {shape}: no values per input.")
            if n is None:
                n = shape[0]
            if shape[0] != n:
                raise DynamicsError(
                    f"{where} holds {shape[0]} inputs, and {first.name} {n}: every layer of "
                    "every step holds the same inputs, in the same order."
                )
            if shape[1:] != layers[name][0]:
                raise DynamicsError(
                    f"{where} has shape {shape[1:]} per input, and {layers[name][0]} "
                    f"in {first.name}: a layer keeps its shape over the steps."
                )
            wide[name] = wide.get(name, False) or (dtype.kind == "f" and dtype.itemsize >= 8)
        if label is not None and label[0] != (n,):
            raise DynamicsError(
                f"{path}: `labels` has shape {label[0]}, but the layers hold {n} inputs: save "
                "one integer class per input."
            )
        if label is not None and label[1].kind not in "biu":
            raise DynamicsError(
                f"{path}: `labels` holds {label[1]} values: save the classes as integers."
            )
    if n < 8:
        raise DynamicsError(f"{first} holds {n} inputs: the probes need at least 8.")
    if n > _INDEX_LIMIT:
        raise DynamicsError(
            f"{first} holds {n} inputs, more than 2**24, the most a probe can index: save "
            "the activations of a subset (the same inputs at every step)."
        )
    # probed in float64 where a step holds float64 and jax has x64 on, else in float32
    x64 = jax.config.jax_enable_x64
    dtypes = {name: np.dtype(np.float64 if x64 and wide[name] else np.float32) for name in layers}
    layers = {name: (shape, dtypes[name]) for name, (shape, _) in layers.items()}
    return _Plan(files, layers, n, bool(has_labels))


# -- the values ----------------------------------------------------------------------


def _read_step(path: Path, plan: _Plan, labels, first: Path):
    """The layers of step file `path` in the dtypes they are probed in, and its labels,
    checked against `plan` and the `labels` of the steps before (None at the first)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except OSError as error:
        raise DynamicsError(f"{path} cannot be read ({reason(error)}).") from None
    except Exception as error:  # numpy, zipfile and zlib raise many types for damage
        raise _damaged(path, f"{type(error).__name__}: {error}"[:160]) from None
    label = arrays.pop(LABELS, None)
    changed = DynamicsError(
        f"{path} changed while it was probed: rerun the command once the files are written."
    )
    if arrays.keys() != plan.layers.keys() or (label is not None) != plan.labels:
        raise changed
    layers = {}
    for name, value in arrays.items():
        shape, dtype = plan.layers[name]
        if value.shape != (plan.n, *shape):
            raise changed
        with np.errstate(over="ignore"):  # beyond the dtype: refused just below
            cast = value.astype(dtype)
        if not np.all(np.isfinite(cast)):
            raise _not_finite(path, name, value, dtype)
        layers[name] = cast
    if label is not None:
        if label.shape != (plan.n,):
            raise changed
        try:
            class_labels(label, plan.n)
        except ValueError as error:
            raise DynamicsError(f"{path}: {error}") from None
        if labels is None and path != first:
            raise changed
        if labels is not None and not np.array_equal(label, labels):
            count = int(np.sum(label != labels))
            raise DynamicsError(
                f"{path}: `labels` differ from {first.name}'s at {count} of {plan.n} inputs: "
                "every step holds the same inputs, in the same order."
            )
    return layers, label


def _not_finite(path: Path, name: str, value: np.ndarray, dtype: np.dtype) -> DynamicsError:
    where = f"{path}: layer {name!r}"
    finite = np.isfinite(value)
    if np.all(finite):  # finite in its own dtype, beyond the one it is probed in
        largest = np.format_float_scientific(np.max(np.abs(value)), precision=2, trim="-")
        return DynamicsError(
            f"{where} holds values up to {largest}, beyond {dtype} (±"
            f"{float(np.finfo(dtype).max):.2g}), in which it is probed: scale it."
        )
    bad = int(value.size - np.count_nonzero(finite))
    return DynamicsError(
        f"{where} holds NaN or infinite values ({bad} of {value.size}): fix that step's "
        "file, or move it out of the directory to probe the others."
    )
