"""The final model's arrays that the page draws, stored beside `report.json` in
`report.npz` with a fingerprint of what they were computed from (the run's config and its
checkpoints), so that `jgeo report` redraws from them when nothing changed."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from .._io import RunError, write_atomic
from ._runs import RESULTS, read_results

MAX_PIXELS = 1_500_000  # images kept for hover (points × pixels), about 1.5 MB as uint8
FIELD_CELLS = 80  # the log-volume map's cells along the longer side (d = 2)


def fingerprint(run_dir: str | Path) -> str:
    """A digest of what the final report is computed from: `config.json` and the
    checkpoint files (their bytes), and the data file the config names (its size and
    modification time)."""
    run_dir = Path(run_dir)
    digest = hashlib.sha256()
    config = run_dir / "config.json"
    text = config.read_bytes() if config.is_file() else b""
    digest.update(text)
    try:
        data = Path(json.loads(text).get("data", ""))
    except (ValueError, AttributeError, TypeError):
        data = None
    if data is not None and data.name and data.is_file():
        stat = data.stat()
        digest.update(f"data\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        for path in sorted(checkpoints.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(checkpoints).as_posix().encode() + b"\0")
                with path.open("rb") as file:
                    digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def results_current(run_dir: str | Path) -> bool:
    """Whether `jgeo report` can redraw the run's page without the model: `report.json`
    and `report.npz` were computed from the run's present config and checkpoints (the
    fingerprint `report.npz` stores), and the figures `report.json` lists are there.

    **Arguments:**

    - `run_dir`: a `jgeo train` run directory.

    **Returns:** True if nothing changed since its report; False if the report is missing,
    damaged or out of date (then `jgeo report` evaluates the model again).
    """
    run_dir = Path(run_dir)
    try:
        report = json.loads((run_dir / "report.json").read_text("utf-8"))
        stored = read_results(run_dir)
    except (OSError, ValueError, RunError):  # missing or damaged: computed again
        return False
    if stored is None or not isinstance(report, dict):
        return False
    figures = report.get("figures", [])
    if not all(isinstance(f, str) and (run_dir / "figures" / f).is_file() for f in figures):
        return False
    return str(stored.get("fingerprint")) == fingerprint(run_dir)


def _to_bytes(images: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.round(255 * np.clip((images - lo) / max(hi - lo, 1e-12), 0, 1)).astype(np.uint8)


def final_arrays(data, model, likelihood: str, arrays: dict) -> dict[str, np.ndarray]:
    """What the page draws of a trained model, from `jgeo.train.evaluate`'s `arrays`
    (codes, pairs, geodesics): the data's colours and labels, for d = 2 the log-volume
    map over the codes, and for image data the images and their reconstructions (uint8,
    scaled by the data's range) of at most `MAX_PIXELS` pixels' worth of points."""
    import jax
    import jax.numpy as jnp

    from .. import diagnostics, likelihoods
    from ._figures import _grid

    codes = np.asarray(arrays["codes"])
    out = {
        "codes": codes.astype(np.float32),
        "pairs": np.asarray(arrays["pairs"]),
        "curves": np.asarray(arrays["curves"], np.float32),
        "color": np.asarray(data.color, np.float32),
    }
    if data.labels is not None:
        out["labels"] = np.asarray(data.labels)
        out["classes"] = np.unique(data.labels)
    kind = likelihoods.get(likelihood)
    if codes.shape[1] == 2:
        (xs, ys), points = _grid(codes, FIELD_CELLS)
        metric = kind.latent_metric(model.decoder)
        field = jax.jit(diagnostics.log_volumes)(metric, jnp.asarray(points))
        out["field"] = (0.5 * np.asarray(field).reshape(len(ys), len(xs))).astype(np.float32)
        out["field_x"], out["field_y"] = xs.astype(np.float32), ys.astype(np.float32)
    if data.image_shape is not None:
        pixels = int(np.prod(data.image_shape))
        count = min(len(data.x), MAX_PIXELS // pixels)
        x = np.asarray(data.x[:count])
        decoded = np.asarray(jax.jit(jax.vmap(lambda v: kind.mean(model(v))))(jnp.asarray(x)))
        lo, hi = float(x.min()), float(x.max())
        out["images"] = _to_bytes(x, lo, hi).reshape(count, pixels)
        out["decoded"] = _to_bytes(decoded, lo, hi).reshape(count, pixels)
        out["image_shape"] = np.asarray(data.image_shape)
    return out


def store_results(run_dir: str | Path, data, model, likelihood: str, arrays: dict) -> None:
    """Write `report.npz` in `run_dir`: `final_arrays` and the run's `fingerprint`."""
    run_dir = Path(run_dir)
    stored = final_arrays(data, model, likelihood, arrays)
    stored["fingerprint"] = np.asarray(fingerprint(run_dir))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **stored)
    write_atomic(run_dir / RESULTS, buffer.getvalue())
