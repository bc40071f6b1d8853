"""The report of a trained `jgeo train` run: its final measurements (`report.json`)
and figures."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import _data_file as data_file, diagnostics, likelihoods
from .._io import is_writer, write_atomic
from ..data import Dataset, class_pairs
from ..train import TrainConfig, eval_index

NUM_PAIRS = 8


def geodesic_pairs(config: TrainConfig, data: Dataset) -> np.ndarray:
    """Fixed pairs of data indices for geodesics, of different classes where labelled."""
    rng = np.random.default_rng(config.seed + 2)
    return class_pairs(len(data.x), data.labels, NUM_PAIRS, rng)


def evaluate_run(config: TrainConfig, data: Dataset, model) -> tuple[dict, dict]:
    """Final measurements of a trained model, and the arrays the figures are drawn from.

    **Arguments:**

    - `config`: the run; `data`: its `Dataset`; `model`: the trained NNX model.

    **Returns:** `(report, arrays)`: the scalars of `report.json` (`recon_mse` in the
    units trained on, `scaling` (how the data were scaled for training) and, for a data
    file, `recon_mse_data_units` (the same error in the file's own units), `mcn`, `vor`,
    `logdet_mean`, `logdet_var`, `geodesic_ratio`, and `spearman_geodesic` where the data
    have ground truth) and a dict of arrays for the figures.
    """
    x = jnp.asarray(data.x)
    codes = jax.jit(jax.vmap(model.encode))(x)
    likelihood = likelihoods.get(config.likelihood)
    recon = likelihood.mean(jax.jit(jax.vmap(model))(x))
    index = eval_index(config, len(x))
    metric = likelihood.latent_metric(model.decoder)
    eval_codes = codes[index]
    summary = jax.jit(diagnostics.metric_summary)(metric, eval_codes)
    pairs = geodesic_pairs(config, data)
    starts, ends = codes[pairs[:, 0]], codes[pairs[:, 1]]
    ratios, geodesics = jax.jit(diagnostics.geodesic_ratios)(metric, starts, ends)
    report = {
        "data": config.data,
        "regularizer": config.regularizer,
        "weight": config.weight,
        "seed": config.seed,
        "epochs": config.epochs,
        "likelihood": config.likelihood,
        "latent_metric": likelihood.metric_name,
        "recon_mse": (mse := float(jnp.mean((recon - x) ** 2))),
        **_in_data_units(config, data, mse),
        **{k: float(v) for k, v in summary.items()},
        "geodesic_ratio": float(np.nanmean(np.asarray(ratios))),
        "geodesics_converged": f"{int(np.sum(np.asarray(geodesics.converged)))}/{len(pairs)}",
    }
    truth = data.geodesic_distances(index)
    if truth is not None:
        report["spearman_geodesic"] = diagnostics.distance_spearman(eval_codes, truth)
    arrays = {"codes": np.asarray(codes), "pairs": pairs, "curves": np.asarray(geodesics.curve)}
    return report, arrays


def _in_data_units(config: TrainConfig, data: Dataset, mse: float) -> dict:
    """How the data were scaled for training (`scaling`) and, for a data file, the
    reconstruction error `mse` in the file's own units (scale² × mse)."""
    if config.data_scaling is None:
        kind = "intensities in [0, 1]" if data.image_shape else "centred, unit variance"
        return {"scaling": f"the built-in data set as jgeo.data.load gives it ({kind})"}
    shift, scale = config.data_scaling
    how = data_file.describe_scaling(shift, scale, data.image_shape is not None, config.likelihood)
    return {"scaling": how, "recon_mse_data_units": scale**2 * mse}


def write_run_report(out: str | Path, config: TrainConfig, data: Dataset, model) -> dict:
    """Write `report.json`, `figures/*.png`, `report.npz` (the arrays the page draws, with
    the fingerprint of the config and checkpoints they came from) and the run's page
    `index.html` for the trained `model`.

    **Arguments:**

    - `out`: the run directory.
    - `config`, `data`, `model`: as for `evaluate_run` (`jgeo.train.load_run(out)` gives
      them for a finished run).

    **Returns:** the report (a dict, as written to `report.json`).
    """
    from ._figures import draw_all
    from ._page import write_page
    from ._results import store_results

    out = Path(out)
    report, arrays = evaluate_run(config, data, model)
    figures = draw_all(out / "figures", config, data, model, arrays) if is_writer() else []
    report["figures"] = figures
    if is_writer():  # what the page draws, redrawn from there while nothing changes
        store_results(out, data, model, config.likelihood, arrays)
    write_atomic(out / "report.json", json.dumps(report, indent=2))
    if is_writer():
        write_page(out)
    return report
