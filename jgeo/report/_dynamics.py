"""`jgeo dynamics DIR`: figures of the probes in a directory (PNG) and its web page.

It reads the probe files (`jgeo.dynamics.load`); where the directory is also a
`jgeo train` run, it adds the reconstruction error of `metrics.jsonl` and the lengths
of the trajectories under the final checkpoint's metric."""

import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import curve_length, likelihoods
from .._io import RunError, is_writer, save_figure
from ..dynamics import Dynamics, load


class Panel(NamedTuple):
    """One panel of the scalars figure: a declared scalar, one line per layer."""

    group: str
    title: str
    log: bool
    keys: dict[str, str]  # layer → row key
    reference: dict[str, str]  # layer → row key of the dashed reference line


_HEAD = ("step", "epoch", "seconds")


def panels(dynamics: Dynamics) -> list[Panel]:
    """The panels of a recording, from what its probes declare (`recorder.json`): one
    per declared scalar that the rows hold, in the probes' order, a line per layer; then
    one per scalar nobody declared (your probes' undeclared names, your loop's own)."""
    rows, out, claimed = dynamics.rows[0], [], set(_HEAD)
    for declared in dynamics.info["probes"]:
        layers = dynamics.layers if declared["per_layer"] else [""]
        for name, scalar in declared["scalars"].items():
            keys = {layer: Dynamics.key(name, layer) for layer in layers}
            keys = {layer: k for layer, k in keys.items() if k in rows}
            claimed |= set(keys.values())
            if not keys or not scalar["panel"]:
                continue
            reference = scalar["reference"]
            refs = {layer: Dynamics.key(reference, layer) for layer in keys} if reference else {}
            refs = {layer: k for layer, k in refs.items() if k in rows}
            out.append(Panel(declared["group"], scalar["title"], scalar["log"], keys, refs))
    for name in rows:
        if name not in claimed:
            out.append(Panel("your own", name, False, {"": name}, {}))
    return out


def _pick(count: int, k: int) -> list[int]:
    """Up to `k` evenly spaced probe positions, first and last included."""
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, min(k, count))})


def trajectory_lengths(
    dynamics: Dynamics, decoder, likelihood: "likelihoods.AbstractLikelihood | str | None" = None
) -> np.ndarray:
    """Length of each fixed sample's path through latent space over training (its codes
    at successive probes joined by segments), measured by the pullback metric of
    `decoder` — usually the final one: how far a code moved in the geometry the model
    ends with.

    **Arguments:**

    - `dynamics`: the probes (`jgeo.dynamics.load`), with their codes.
    - `decoder`: one latent point (d,) → one output.
    - `likelihood`: the decoder's `jgeo.likelihoods` object (or its name), whose latent
      metric measures the lengths; None for JᵀJ (`Gaussian()`).

    **Returns:** the lengths, shape (samples,).
    """
    codes = jnp.asarray(np.swapaxes(dynamics.arrays["codes"], 0, 1))  # (S, P, d)
    likelihood = likelihoods.Gaussian() if likelihood is None else likelihoods.get(likelihood)
    metric = likelihood.latent_metric(decoder)
    return np.asarray(jax.jit(jax.vmap(lambda c: curve_length(metric, c)))(codes))


def _scalars_figure(plt, dynamics: Dynamics, metrics: list[dict]):
    from matplotlib.ticker import MaxNLocator

    drawn = panels(dynamics)
    if metrics and "recon_mse" in metrics[0]:
        drawn.insert(0, Panel("training", "reconstruction MSE", True, {"": "recon_mse"}, {}))
    cols, rows = 4, -(-len(drawn) // 4)
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.6 * rows), squeeze=False)
    label, times = dynamics.time
    for ax, panel in zip(axes.flat, drawn):
        lines = []
        if panel.keys == {"": "recon_mse"}:
            errors = [np.nan if r["recon_mse"] is None else r["recon_mse"] for r in metrics]
            lines.append(([r["epoch"] for r in metrics], np.array(errors, float), "k-", None))
        else:  # scalars some probes leave out (the landscape's) are None there
            for layer, name in panel.keys.items():
                lines.append((times, dynamics.series(name), "-", layer or None))
            for layer, name in panel.reference.items():
                lines.append((times, dynamics.series(name), "k--", f"{layer} reference".strip()))
        values = []
        for x, y, style, legend in lines:
            kept = np.isfinite(y)
            ax.plot(np.asarray(x)[kept], y[kept], style, label=legend,
                    marker="." if kept.sum() < 40 and style != "k--" else None)  # fmt: skip
            values.append(y[kept])
        values = np.concatenate(values) if values else np.zeros(0)
        if panel.log and values.size and np.min(values) > 0:
            ax.set_yscale("log")
        if len(lines) > 1:
            ax.legend(fontsize=6)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))  # no overlapping labels
        if ax.get_yscale() == "linear":
            ax.yaxis.set_major_locator(MaxNLocator(5))
    for ax in list(axes.flat)[len(drawn) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _field_limits(fields: np.ndarray, symmetric: bool):
    finite = fields[np.isfinite(fields)]
    if finite.size == 0:
        return -1.0, 1.0
    if symmetric:  # curvature: a few huge values near folds would wash out the map
        # (floored: below 1e-6 the values of a flat metric are float32 rounding noise)
        bound = max(float(np.percentile(np.abs(finite), 95)), 1e-6)
        return -bound, bound
    return float(np.percentile(finite, 1)), float(np.percentile(finite, 99))


def _fields_figure(plt, dynamics: Dynamics, picks: list[int]):
    a = dynamics.arrays
    rows = [("log_volume", "log-volume", "magma", False),
            ("gaussian_curvature", "Gaussian curvature", "RdBu_r", True)]  # fmt: skip
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks) + 1, 5.4), squeeze=False)
    for r, (key, label, cmap, symmetric) in enumerate(rows):
        vmin, vmax = _field_limits(a[key], symmetric)
        for c, p in enumerate(picks):
            ax = axes[r, c]
            image = ax.imshow(a[key][p], origin="lower", extent=a["extent"][p], cmap=cmap,
                              vmin=vmin, vmax=vmax, aspect="auto")  # fmt: skip
            ax.scatter(*a["codes"][p].T, s=1, c="white" if r == 0 else "black", alpha=0.5)
            ax.set_title(_when(dynamics, p), fontsize=9)
            ax.tick_params(labelsize=6)
        fig.colorbar(image, ax=axes[r].tolist(), label=label, shrink=0.9)
    return fig


def _fields_animation(plt, dynamics: Dynamics, path: Path, frames: int = 60) -> None:
    from matplotlib.animation import FuncAnimation, PillowWriter

    a = dynamics.arrays
    vmin, vmax = _field_limits(a["log_volume"], symmetric=False)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    image = ax.imshow(a["log_volume"][0], origin="lower", extent=a["extent"][0], cmap="magma",
                      vmin=vmin, vmax=vmax, aspect="auto")  # fmt: skip
    dots = ax.scatter(*a["codes"][0].T, s=2, c="white", alpha=0.6)
    fig.colorbar(image, ax=ax, label="log-volume")

    def frame(p):
        image.set_data(a["log_volume"][p])
        image.set_extent(a["extent"][p])
        ax.set_xlim(a["extent"][p][:2])
        ax.set_ylim(a["extent"][p][2:])
        dots.set_offsets(a["codes"][p])
        ax.set_title(_when(dynamics, p))
        return image, dots

    animation = FuncAnimation(fig, frame, frames=_pick(len(a["steps"]), frames), blit=False)
    if is_writer():  # PillowWriter writes to a path: a hidden one, then renamed
        hidden = path.with_name("." + path.name)
        animation.save(hidden, writer=PillowWriter(fps=8))
        os.replace(hidden, path)
    plt.close(fig)


def _trajectories_figure(plt, dynamics: Dynamics, lengths: np.ndarray | None):
    from ._figures import _plane

    a = dynamics.arrays
    codes = a["codes"]  # (P, S, d)
    flat = _plane(codes.reshape(-1, codes.shape[-1])).reshape(*codes.shape[:2], 2)
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    if "log_volume" in a:
        image = ax.imshow(a["log_volume"][-1], origin="lower", extent=a["extent"][-1],
                          cmap="magma", aspect="auto", alpha=0.85)  # fmt: skip
        fig.colorbar(image, ax=ax, label="final log-volume")
    colour = plt.get_cmap("tab10" if np.allclose(a["color"], np.round(a["color"])) else "viridis")
    span = np.ptp(a["color"]) or 1.0
    for s in range(codes.shape[1]):
        c = colour((a["color"][s] - a["color"].min()) / span if colour.name == "viridis"
                   else int(a["color"][s]) % 10)  # fmt: skip
        ax.plot(flat[:, s, 0], flat[:, s, 1], "-", color=c, lw=0.6, alpha=0.7)
        ax.plot(flat[-1, s, 0], flat[-1, s, 1], "o", color=c, ms=2.5)
    title = "trajectories of fixed samples over training"
    if lengths is not None:
        title += (
            f"\nlength under the final metric: median {np.median(lengths):.3g}, "
            f"max {np.max(lengths):.3g}"
        )
    ax.set_title(title, fontsize=9)
    if codes.shape[-1] != 2:
        ax.set_xlabel("principal axis 1")
        ax.set_ylabel("principal axis 2")
    return fig


def _persistence_figure(plt, dynamics: Dynamics, picks: list[int], threshold: float):
    fig, axes = plt.subplots(1, len(picks), figsize=(3 * len(picks), 3.2), squeeze=False)
    for ax, p in zip(axes[0], picks):
        for dim, colour in [(0, "tab:blue"), (1, "tab:orange")]:
            pairs = dynamics.diagram(dim, p)
            ax.scatter(pairs[:, 0], pairs[:, 1], s=8, c=colour, label=f"H{dim}")
        top = max(1e-3, *[dynamics.diagram(d, p)[:, 1].max(initial=0) for d in (0, 1)])
        ax.plot([0, top], [0, top], "k-", lw=0.5)
        ax.plot([0, top], [threshold, top + threshold], "k:", lw=0.5)
        row = dynamics.rows[p]
        ax.set_title(
            f"{_when(dynamics, p)}: β0 = {row['betti0']}, β1 = {row['betti1']}", fontsize=9
        )
        ax.set_xlabel("birth (fraction of diameter)", fontsize=8)
        ax.set_ylabel("death", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _landscape_figure(plt, dynamics: Dynamics):
    """Sharpness over training beside 2/η, gradient descent's stability threshold for
    the learning rate in force (where the rows carry it)."""
    label, times = dynamics.time
    sharpness = dynamics.series("sharpness")
    kept = np.isfinite(sharpness)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(times[kept], sharpness[kept], ".-", label="sharpness λ_max")
    if "learning_rate" in dynamics.rows[0]:
        rate = dynamics.series("learning_rate")
        positive = rate > 0  # a warm-up from η = 0 has no threshold
        ax.plot(times[positive], 2 / rate[positive], "k--", label="2/η (gradient descent)")
    if np.all(sharpness[kept] > 0):
        ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_title("top eigenvalue of the loss Hessian", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _classes_figure(plt, dynamics: Dynamics):
    """The distances between class centres under the metric and in coordinates, each
    divided by its mean, and their difference, at the first and the last probe: one colour
    scale for the distances, one (centred) for the differences."""
    a = dynamics.arrays
    probes = [0, len(a["steps"]) - 1]

    def relative(key, p):
        matrix = a[key][p]
        return matrix / np.nanmean(matrix[~np.eye(len(matrix), dtype=bool)])

    shown = {(key, p): relative(key, p) for p in probes
             for key in ("class_distances", "class_distances_euclidean")}  # fmt: skip
    top = max(float(np.nanmax(m)) for m in shown.values())
    diffs = [shown["class_distances", p] - shown["class_distances_euclidean", p] for p in probes]
    bound = max(float(np.nanmax(np.abs(diffs))), 1e-6)
    fig, axes = plt.subplots(3, 2, figsize=(8.4, 11), squeeze=False)
    labels = [("class_distances", "geodesic / mean"), ("class_distances_euclidean",
              "Euclidean / mean"), (None, "geodesic − Euclidean")]  # fmt: skip
    for c, p in enumerate(probes):
        for r, (key, label) in enumerate(labels):
            matrix = diffs[c] if key is None else shown[key, p]
            scale = dict(cmap="RdBu_r", vmin=-bound, vmax=bound) if key is None else dict(
                cmap="viridis", vmin=0, vmax=top)  # fmt: skip
            image = axes[r, c].imshow(matrix, **scale)
            axes[r, c].set_title(f"{label}, {_when(dynamics, p)}", fontsize=9)
            axes[r, c].set_xlabel("class", fontsize=8)
            fig.colorbar(image, ax=axes[r, c], shrink=0.8)
    fig.tight_layout()
    return fig


def _when(dynamics: Dynamics, probe: int) -> str:
    label, times = dynamics.time
    return f"{label} {times[probe]}"


def _run_extras(run_dir: Path, dynamics: Dynamics):
    """The reconstruction errors and trajectory lengths under the final metric, where
    `run_dir` is a `jgeo train` run with a checkpoint ([] and None where not)."""
    if not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").is_dir():
        return [], None  # a Recorder's directory
    from ..train import load_run, read_rows

    metrics = read_rows(run_dir / "metrics.jsonl")
    if "codes" not in dynamics.arrays:
        return metrics, None
    try:
        config, _, model = load_run(run_dir)
    except (RunError, ValueError, OSError):  # no checkpoint that verifies (yet): the
        return metrics, None  # probes are drawn without the lengths, `jgeo report` says why
    return metrics, trajectory_lengths(dynamics, model.decoder, config.likelihood)


def write_dynamics_report(run_dir: str | Path, *, threshold: float = 0.1) -> Path:
    """Draw the probes in `run_dir` (written by `jgeo train` or by a
    `jgeo.dynamics.Recorder`) into `run_dir/figures/dynamics_*.png` — scalar time series;
    with a decoder, log-volume and curvature maps and their GIF for d = 2; trajectories
    of the fixed samples; persistence diagrams (for papers) — and write the run's
    interactive page `run_dir/index.html` (`jgeo.report.write_page`), self-contained.

    Only the probe files are needed. In a `jgeo train` run the reconstruction error
    joins the scalars and the trajectory lengths under the final checkpoint's metric
    the summary.

    **Arguments:**

    - `run_dir`: the directory of the probes.
    - `threshold`: the persistence threshold of the topology figures.

    **Returns:** the path of `index.html`.

    **Raises:** `DynamicsError` for missing or damaged dynamics files; `RunError` for a
    damaged `metrics.jsonl` or `config.json` beside them (read before anything is drawn).
    """
    from ._figures import _plt

    run_dir = Path(run_dir)
    dynamics = load(run_dir)
    shown = dynamics.layer(primary_layer(dynamics))  # the layer of the figures of arrays
    metrics, lengths = _run_extras(run_dir, shown)
    if (run_dir / "config.json").exists():  # every file is read before anything is written
        _run_config(run_dir / "config.json")
    figures = run_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    picks = _pick(len(dynamics.rows), 6)
    drawn = {}
    of_layer = f" (layer {primary_layer(dynamics)!r})" if len(dynamics.layers) > 1 else ""

    def save(name, fig, caption):
        save_figure(fig, figures / name)
        drawn[name] = caption

    save("dynamics_scalars.png", _scalars_figure(plt, dynamics, metrics),
         "Scalars of every probe over training, a line per layer.")  # fmt: skip
    if "log_volume" in shown.arrays:
        save("dynamics_fields.png", _fields_figure(plt, shown, picks),
             "Log-volume (top) and Gaussian curvature (bottom) on the latent grid, which "
             "follows the codes (dots); curvature clipped at its 95th percentile"
             f"{of_layer}.")  # fmt: skip
        _fields_animation(plt, shown, figures / "dynamics_fields.gif")
        drawn["dynamics_fields.gif"] = "The log-volume map and the codes at every probe."
    if "codes" in shown.arrays:
        save("dynamics_trajectories.png", _trajectories_figure(plt, shown, lengths),
             "Paths of the fixed samples' codes over training, ending at the dots"
             f"{of_layer}.")  # fmt: skip
    if "sharpness" in dynamics.rows[0]:
        save("dynamics_landscape.png", _landscape_figure(plt, dynamics),
             "Sharpness (largest eigenvalue of the loss Hessian, Lanczos) at the landscape "
             "probes, beside 2/η for the learning rate in force: gradient descent's edge of "
             "stability (Cohen et al. 2021); Adam's is on the preconditioned Hessian.")  # fmt: skip
    if "class_distances" in shown.arrays:
        save("dynamics_classes.png", _classes_figure(plt, shown),
             "Distances between class centres along geodesics (top) and in coordinates "
             "(middle), relative to their mean, and their difference (bottom), at the first "
             "and last probe"
             f"{of_layer}.")  # fmt: skip
    if "h0" in shown.arrays and "betti0" in shown.rows[0]:
        save("dynamics_persistence.png",
             _persistence_figure(plt, shown, _pick(len(dynamics.rows), 4), threshold),
             f"Persistence diagrams of the codes (scaled to unit diameter); points above the "
             f"dotted line (lifetime > {threshold}) count in the Betti numbers"
             f"{of_layer}.")  # fmt: skip

    label, times = dynamics.time
    widths = dynamics.info["layers"]
    summary = {"probes": len(dynamics.rows), f"first {label}": int(times[0]),
               f"last {label}": int(times[-1]), "samples": dynamics.info["samples"],
               **({"latent dimension": widths[""]} if list(widths) == [""] else
                  {"layers": ", ".join(f"{k} ({v})" for k, v in widths.items())}),
               "probe seconds (median)": float(np.median(dynamics.series("seconds")))}  # fmt: skip
    if lengths is not None:
        summary["trajectory length, final metric (median)"] = float(np.median(lengths))
        summary["trajectory length, final metric (max)"] = float(np.max(lengths))
    from ._page import write_page

    return write_page(run_dir, summaries={run_dir: summary})


def primary_layer(dynamics: Dynamics) -> str:
    """The layer whose arrays the figures draw: the first with a decoder's fields or
    geodesics, else the first with codes, else the first."""
    for wanted in (("log_volume", "ratios"), ("codes",)):
        for layer in dynamics.layers:
            if any(Dynamics.key(name, layer) in dynamics.arrays for name in wanted):
                return layer
    return dynamics.layers[0]


def _run_config(path: Path) -> dict:
    """A run's `config.json` (shown on the page).

    **Raises:** `RunError` naming the file if it is not a UTF-8 JSON object."""
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        config = None
    if not isinstance(config, dict):
        raise RunError(f"{path} is damaged (not a JSON object); restore it, or delete it.")
    return config
