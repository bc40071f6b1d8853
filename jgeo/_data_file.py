"""A user's own data set from a `.npz` or `.npy` file, checked before anything trains.

`.npz`: array `x` (required), optional `labels` (integers) and `color` (numbers), one
per point. `.npy`: `x` alone. `x` is vectors (N, D) or images (N, H, W) / (N, H, W, C),
flattened to (N, H·W·C) for training (the conv model reshapes them back).

The scaling x ↦ (x − shift) / scale uses two scalars, so the data's geometry is only
rescaled, never distorted: for images shift = min and scale = max − min (pixels in
[0, 1], as for digits); for vectors the mean and standard deviation over all
coordinates. They are computed once, from the file, and recorded in the run's config
with the file's SHA-256, so a rerun or a report uses the same scaling and notices a
file that has changed since.
"""

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ._io import RunError

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
    """The arrays of a data file, validated: `x` (N, ...) finite numbers of rank 2–4,
    and `labels` / `color` of length N where present.

    **Raises:** `DataFileError` naming the file and what is wrong with it."""
    path = Path(path)
    where = f"data file {path}"
    if not is_data_file(path.name):
        raise DataFileError(f"{where}: use a .npz (arrays x, labels, color) or a .npy (x) file.")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a .npy file
            arrays = {"x": loaded}
        else:
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except FileNotFoundError:
        raise DataFileError(f"{where}: does not exist.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataFileError(f"{where}: unreadable as {path.suffix} ({error}).") from None
    if "x" not in arrays:
        found = ", ".join(arrays) or "none"
        raise DataFileError(f"{where}: has no array `x` (found: {found}); save the points as x.")
    x = arrays["x"]
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise DataFileError(f"{where}: `x` must hold real numbers, got dtype {x.dtype}.")
    if x.ndim not in (2, 3, 4):
        raise DataFileError(
            f"{where}: `x` has shape {x.shape}; give vectors (N, D) or images (N, H, W) or "
            "(N, H, W, C)."
        )
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)))
        raise DataFileError(f"{where}: `x` has NaN or infinite values in {bad} points; drop them.")
    for name in ("labels", "color"):
        if name in arrays and arrays[name].shape != (len(x),):
            raise DataFileError(
                f"{where}: `{name}` has shape {arrays[name].shape}, but `x` has {len(x)} points: "
                f"give one {name[:-1] if name == 'labels' else name} per point, shape ({len(x)},)."
            )
    if "labels" in arrays and not np.issubdtype(arrays["labels"].dtype, np.integer):
        raise DataFileError(f"{where}: `labels` must be integers, got {arrays['labels'].dtype}.")
    return arrays


def image_shape(x: np.ndarray) -> tuple[int, ...] | None:
    """(H, W), or (H, W, C) for several channels, of image data; None for vectors."""
    if x.ndim == 2:
        return None
    return tuple(x.shape[1:3]) if x.ndim == 3 or x.shape[3] == 1 else tuple(x.shape[1:])


def scaling(x: np.ndarray) -> tuple[float, float]:
    """(shift, scale): min and range for images, mean and std over all coordinates for
    vectors (scale 1 where the data are constant)."""
    x = x.astype(np.float64)
    if x.ndim > 2:
        shift, scale = float(x.min()), float(x.max() - x.min())
    else:
        shift, scale = float(x.mean()), float(x.std())
    return shift, scale if scale > 0 else 1.0
