"""A user's own data set from a `.npz` or `.npy` file, checked before anything trains.

`.npz`: array `x` (required), optional `labels` (integers) and `color` (numbers), one
per point. `.npy`: `x` alone. `x` is vectors (N, D) or images (N, H, W) / (N, H, W, C),
flattened to (N, H·W·C) for training (the conv model reshapes them back).

The scaling x ↦ (x − shift) / scale uses two scalars, so the data's geometry is only
rescaled, never distorted: for images, and for any data under a Bernoulli likelihood
(which reads them as intensities), shift = min and scale = max − min (values in [0, 1],
as for digits); for other vectors the mean and standard deviation over all coordinates.
They are computed once, from the file, and recorded in the run's config with the file's
SHA-256, so a rerun or a report uses the same scaling and notices a file that has
changed since; the report gives the reconstruction error in the file's own units too.

jgeo trains in float32: a file's values must fit it (|x| ≤ 3.4e38) and must vary (a
spread, max − min or the standard deviation, of at least float32's smallest normal
number, 1.2e-38); other files are refused with the factor to rescale them by.
"""

import hashlib
import lzma
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._io import RunError
from ._labels import class_labels

SUFFIXES = (".npz", ".npy")


class DataFileError(RunError, ValueError):
    """A data file that cannot be used; the message names the file and the problem."""


def is_data_file(name: str) -> bool:
    return str(name).endswith(SUFFIXES)


def digest(path: str | Path) -> str:
    """The SHA-256 of the file at `path`."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise DataFileError(f"data file {path}: does not exist.") from None
    except OSError as error:
        raise DataFileError(f"data file {path}: cannot be read ({error.strerror}).") from None


def read(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a data file, validated: `x` (N ≥ 1, ...) finite numbers of rank 2–4
    with at least one feature, that fit float32 and vary; `labels` (integers) and `color`
    (numbers) of length N where present.

    **Raises:** `DataFileError` naming the file and what is wrong with it."""
    path = Path(path)
    where = f"data file {path}"
    if not is_data_file(path.name):
        raise DataFileError(f"{where}: use a .npz (arrays x, labels, color) or a .npy (x) file.")
    try:
        _check_headers(path)
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a .npy file
            arrays = {"x": loaded}
        else:
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except FileNotFoundError:
        raise DataFileError(f"{where}: does not exist.") from None
    # a damaged compressed member fails in its decompressor (zlib, lzma; bz2 raises OSError),
    # and a compression method zipfile lacks raises NotImplementedError
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError,
            NotImplementedError) as error:  # fmt: skip
        raise DataFileError(f"{where}: unreadable as {path.suffix} ({error}).") from None
    for name, value in arrays.items():  # np.load gives a member that is no .npy as bytes
        if not isinstance(value, np.ndarray):
            raise DataFileError(f"{where}: member {name!r} is not a NumPy array (.npy).")
    if "x" not in arrays:
        found = ", ".join(arrays) or "none"
        raise DataFileError(f"{where}: has no array `x` (found: {found}); save the points as x.")
    x = arrays["x"]
    if not _real(x):
        raise DataFileError(f"{where}: `x` must hold real numbers, got dtype {x.dtype}.")
    if x.ndim not in (2, 3, 4):
        raise DataFileError(
            f"{where}: `x` has shape {x.shape}; give vectors (N, D) or images (N, H, W) or "
            "(N, H, W, C)."
        )
    if x.size == 0:
        what = "no points" if len(x) == 0 else "no features"
        raise DataFileError(f"{where}: `x` has shape {x.shape}: {what}.")
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)))
        raise DataFileError(f"{where}: `x` has NaN or infinite values in {bad} points; drop them.")
    _check_scale(x, where)
    for name in ("labels", "color"):
        if name in arrays and arrays[name].shape != (len(x),):
            raise DataFileError(
                f"{where}: `{name}` has shape {arrays[name].shape}, but `x` has {len(x)} points: "
                f"give one {name[:-1] if name == 'labels' else name} per point, shape ({len(x)},)."
            )
    if "color" in arrays and not (_real(arrays["color"]) or arrays["color"].dtype == bool):
        raise DataFileError(
            f"{where}: `color` must hold numbers (one per point), got dtype "
            f"{arrays['color'].dtype}."
        )
    if "labels" in arrays:
        try:
            class_labels(arrays["labels"], len(x))
        except ValueError as error:
            raise DataFileError(f"{where}: {error}") from None
    return arrays


def _real(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.number) and not np.issubdtype(a.dtype, np.complexfloating)


_FLOAT32_MAX, _FLOAT32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)


def _check_scale(x: np.ndarray, where: str) -> None:
    """Refuse values beyond float32 and data without spread (nothing to learn). Measured
    in float64, or in `x`'s own dtype where it is wider (a long double's 1e400 is finite)."""
    wide = x.astype(np.promote_types(x.dtype, np.float64))
    largest = np.max(np.abs(wide))
    if largest > _FLOAT32_MAX:
        raise DataFileError(
            f"{where}: `x` holds values up to {_number(largest)}, beyond float32 (±3.4e38), "
            f"in which jgeo trains: divide it by {_power_of_ten(np.log10(largest))}."
        )
    spread = np.ptp(wide)
    if spread == 0:
        raise DataFileError(
            f"{where}: `x` is constant (every value {x.flat[0].item()!r}): nothing to learn."
        )
    # the smaller of the two scales `scaling` uses; the std of values in [0, 1], scaled
    # back (the variance of values below 1e-154 underflows to 0)
    std = np.std((wide - np.min(wide)) / spread) * spread
    spread = min(spread, std) if std > 0 else spread
    if spread < _FLOAT32_TINY:
        raise DataFileError(
            f"{where}: `x` varies by only {_number(spread)}, below float32's smallest normal "
            f"number (1.2e-38), in which jgeo trains: multiply it by "
            f"{_power_of_ten(-np.log10(spread))}."
        )


def _number(value: np.floating) -> str:
    """A positive number in three significant digits, also beyond float64 (1.23e+400)."""
    return np.format_float_scientific(value, precision=2, trim="-")


def _power_of_ten(exponent: np.floating) -> str:
    """10 to the power of `exponent` rounded down, as 1e+N (N beyond float64's too)."""
    return f"1e{int(np.floor(exponent)):+03d}"


def check_scaling(x: np.ndarray, shift: float, scale: float, where: str) -> None:
    """Refuse a recorded scaling (`data_scaling`) that takes `x` beyond float32 or to a
    constant there: the scaling of a run is computed from its file, so only an edited
    config holds such a one.

    **Raises:** `DataFileError` naming `data_scaling`."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        scaled = ((x - shift) / scale).astype(np.float32)
        usable = scale > 0 and np.all(np.isfinite(scaled)) and np.ptp(scaled) > 0
    if not usable:
        raise DataFileError(
            f"{where}: `data_scaling` [{shift!r}, {scale!r}] takes `x` beyond float32 or to "
            "a constant: the scaling is recorded from the file when a run starts, not chosen; "
            "leave `data_scaling` out of the config."
        )


def _check_headers(path: Path) -> None:
    """Refuse a .npy (or .npz member) whose header declares more data than it holds, before
    NumPy tries to allocate it (a damaged header can ask for terabytes)."""
    if path.suffix == ".npy":
        with open(path, "rb") as stream:
            _check_header(stream, path.stat().st_size, "")
        return
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.filename.endswith(".npy"):
                with archive.open(member) as stream:
                    _check_header(stream, member.file_size, f"member {member.filename!r}: ")


def _check_header(stream, size: int, what: str) -> None:
    if stream.read(6) != b"\x93NUMPY":
        return  # not a .npy: np.load says so (or returns the member's bytes)
    stream.seek(0)
    version = np.lib.format.read_magic(stream)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
        version, np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read_header(stream)
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > size - stream.tell():
        raise ValueError(
            f"{what}its header declares an array of shape {shape} ({declared:.3g} bytes), but "
            f"it holds {size - stream.tell()} bytes: damaged or truncated"
        )


def image_shape(x: np.ndarray) -> tuple[int, ...] | None:
    """(H, W), or (H, W, C) for several channels, of image data; None for vectors."""
    if x.ndim == 2:
        return None
    return tuple(x.shape[1:3]) if x.ndim == 3 or x.shape[3] == 1 else tuple(x.shape[1:])


def scaling(x: np.ndarray, likelihood: str = "gaussian") -> tuple[float, float]:
    """(shift, scale): min and range for images and under a Bernoulli `likelihood`
    (intensities in [0, 1]), else the mean and standard deviation over all coordinates.
    `x` is a file's `x` as `read` returns it (finite, fits float32, not constant)."""
    x = x.astype(np.float64)
    if x.ndim > 2 or likelihood == "bernoulli":
        return float(x.min()), float(x.max() - x.min())
    return float(x.mean()), float(x.std())


def describe_scaling(shift: float, scale: float, images: bool, likelihood: str) -> str:
    """The scaling of a data file in words, for the report."""
    how = "min and range" if images or likelihood == "bernoulli" else "mean and std"
    return f"x ↦ (x − {shift:.6g}) / {scale:.6g} (the file's {how} over all coordinates)"
