"""Probe directories written before probes were objects (jgeo 0.1, no `format` in
`recorder.json`): read as the built-in probes of their day wrote them, so that
`jgeo dynamics` still draws them. They are not continued: a Recorder refuses them."""

from pathlib import Path

import numpy as np

from .._io import is_int, short
from ._classes import ClassGeodesics, ClassStructure
from ._codes import Codes
from ._dimension import IntrinsicDimension, Rank
from ._geometry import PullbackGeometry
from ._loss_landscape import LearningRate, LossLandscape
from ._probe import declare
from ._similarity import CKAToPrevious
from ._store import ARRAYS, FORMAT, damaged as _damaged, manifest
from ._topology import PersistentHomology


def _count(value) -> bool:
    return is_int(value) and value >= 0


# The keys of an old recorder.json and what its Recorder wrote in each.
_KEYS = {
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


def upgrade(path: Path, info: dict, arrays: dict) -> tuple[dict, dict]:
    """`recorder.json` and the arrays of an old directory in today's form.

    **Raises:** `DynamicsError` naming `path` where the old file lacks what its writer wrote."""
    for name, valid in _KEYS.items():
        if name not in info:
            raise _damaged(path, f"no {name!r}")
        if not valid(info[name]):
            raise _damaged(path, f"{name!r} is {short(info[name])}")
    probes = [Codes, PersistentHomology, CKAToPrevious, IntrinsicDimension, Rank]
    probes += [ClassStructure] if info["labels"] else []
    probes += [PullbackGeometry] if info["decoder"] else []
    probes += [ClassGeodesics] if info["class_geodesics"] else []
    probes += [LossLandscape, LearningRate] if info["landscape_every"] else []
    codes = arrays.get("codes")
    if codes is None:
        raise _damaged(path.with_name(ARRAYS), "no 'codes' array")
    if codes.ndim != 3:
        raise _damaged(path.with_name(ARRAYS), f"'codes' has shape {codes.shape}, not rank 3")
    arrays = dict(arrays)
    if "pairs" in arrays:  # one set of pairs for the run, now an entry per probe
        pairs = arrays.pop("pairs")
        if info["decoder"]:
            arrays["pairs"] = np.broadcast_to(pairs, (len(arrays["steps"]), *pairs.shape))
    if info["labels"] and "labels" in arrays:
        arrays["classes"] = np.arange(int(arrays["labels"].max(initial=-1)) + 1)
    upgraded = {
        "format": FORMAT,
        **{k: info[k] for k in ("samples", "random_samples", "every", "seed", "labels",
                                "data_shape", "data_sha256")},
        "probes": [declare(p) for p in probes],
        "layers": {"": int(codes.shape[2])},
    }  # fmt: skip
    static = {"sample_index", "random_index", "color", "labels", "classes"} & arrays.keys()
    upgraded["arrays"] = manifest(arrays, {"h0", "h1"} & arrays.keys(), static)
    return upgraded, arrays
