"""What the report page reads of a run directory, without JAX: the probes
(`jgeo.dynamics.load`), `config.json`, `metrics.jsonl`, `report.json` and the arrays of
the final model `report.npz` — whichever are there — and the labels that tell several
runs apart."""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._io import RunError
from ..dynamics import Dynamics, load
from ._dynamics import _run_config

RESULTS = "report.npz"  # the final model's arrays the page draws (`jgeo report`)


class Run(NamedTuple):
    """One run as the page draws it.

    **Fields:**

    - `path`: its directory; `label`: its name on the page (what differs from the other
      runs on it, or the directory's name).
    - `config`: `config.json` of a `jgeo train` run, else what the `Recorder` probed.
    - `dynamics`: the probes, or None where there are none.
    - `metrics`: the rows of `metrics.jsonl` ([] outside `jgeo train` runs).
    - `report`: `report.json`, or None; `results`: the arrays of `report.npz` (codes,
      geodesics, the log-volume map, decoded images), or None.
    """

    path: Path
    label: str
    config: dict
    dynamics: Dynamics | None
    metrics: list[dict]
    report: dict | None
    results: dict | None


def read_results(run_dir: Path) -> dict | None:
    """The arrays of `report.npz` in `run_dir`, or None if there is none.

    **Raises:** `RunError` naming the file if it cannot be read."""
    path = run_dir / RESULTS
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as error:  # numpy, zipfile and zlib raise many types for damaged files
        raise RunError(
            f"{path} is damaged ({type(error).__name__}); delete it and run "
            f"`jgeo report {run_dir}` to write it again."
        ) from None


def read_run(run_dir: str | Path) -> Run:
    """Read what the page draws of `run_dir` (labelled with its name).

    **Raises:** `RunError` (`DynamicsError`) naming a damaged file, or if `run_dir` holds
    neither probes nor a `jgeo train` report."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a directory: give a run directory.")
    probes = None
    if any(
        (run_dir / name).exists() for name in ("dynamics.jsonl", "dynamics.npz", "recorder.json")
    ):
        probes = load(run_dir)
    config_path = run_dir / "config.json"
    if config_path.exists():
        config = _run_config(config_path)
    elif probes is not None:
        config = {k: v for k, v in probes.info.items() if k not in ("data_sha256", "probes")}
    else:
        config = {}
    metrics_path = run_dir / "metrics.jsonl"
    metrics = []
    if metrics_path.exists():
        from ..train import read_rows

        metrics = read_rows(metrics_path)
    report = _run_config(run_dir / "report.json") if (run_dir / "report.json").exists() else None
    results = read_results(run_dir) if report is not None else None
    if probes is None and report is None:
        raise RunError(
            f"{run_dir} holds neither probes (dynamics.jsonl) nor a report (report.json): "
            "give a directory written by `jgeo train`, a Recorder or `jgeo probe`."
        )
    return Run(run_dir, run_dir.name or str(run_dir), config, probes, metrics, report, results)


_SHOWN = (
    "data",
    "model",
    "likelihood",
    "regularizer",
    "weight",
    "latent_dim",
    "epochs",
    "seed",
    "n",
    "noise",
    "learning_rate",
    "batch_size",
    "probe_every",
    "samples",
    "every",
    "layers",
)


def labelled(runs: list[Run]) -> list[Run]:
    """The runs labelled by what differs between their configs ("regularizer none,
    seed 1"), or by their directories' names where the configs agree."""
    if len(runs) < 2:
        return runs
    keys = differences(runs)
    labels = [", ".join(f"{k} {_text(r.config.get(k))}" for k in keys) for r in runs]
    if not keys or len(set(labels)) < len(labels):  # the same config twice: the directories
        names = [r.path.name for r in runs]
        if len(set(names)) < len(names):
            names = [str(r.path) for r in runs]
        labels = [f"{n} ({label})" if label else n for n, label in zip(names, labels)]
    return [r._replace(label=label) for r, label in zip(runs, labels)]


def differences(runs: list[Run]) -> list[str]:
    """The config keys whose values differ between `runs`."""
    return [k for k in _SHOWN if len({json.dumps(r.config.get(k)) for r in runs}) > 1]


def _text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k or 'codes'} ({v})" for k, v in value.items())
    return "–" if value is None else str(value)


def shown_config(config: dict) -> dict:
    """The config entries the page lists, in a fixed order."""
    return {k: _text(config[k]) for k in _SHOWN if k in config}
