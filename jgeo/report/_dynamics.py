"""`jgeo dynamics DIR`: figures of the probes in a directory and a static HTML page.

It reads the probe files (`jgeo.dynamics.load`); where the directory is also a
`jgeo train` run, it adds the reconstruction error of `metrics.jsonl` and the lengths
of the trajectories under the final checkpoint's metric."""

import html
import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._fisher import FisherPullback
from .._geodesics import curve_length
from .._io import RunError, is_writer, save_figure, write_atomic
from .._pullback import Pullback
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


def trajectory_lengths(dynamics: Dynamics, decoder, likelihood: str | None = None) -> np.ndarray:
    """Length of each fixed sample's path through latent space over training (its codes
    at successive probes joined by segments), measured by the pullback metric of
    `decoder` — usually the final one: how far a code moved in the geometry the model
    ends with.

    **Arguments:**

    - `dynamics`: the probes (`jgeo.dynamics.load`), with their codes.
    - `decoder`: one latent point (d,) → one output.
    - `likelihood`: None for JᵀJ, or a `jgeo.FisherPullback` family for its Fisher–Rao
      pullback.

    **Returns:** the lengths, shape (samples,).
    """
    codes = jnp.asarray(np.swapaxes(dynamics.arrays["codes"], 0, 1))  # (S, P, d)
    metric = Pullback(decoder) if likelihood is None else FisherPullback(decoder, likelihood)
    return np.asarray(jax.jit(jax.vmap(lambda c: curve_length(metric, c)))(codes))


def _scalars_figure(plt, dynamics: Dynamics, metrics: list[dict]):
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
    from ..train._figures import _plane

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
    divided by its mean, at the first and the last probe."""
    a = dynamics.arrays
    fig, axes = plt.subplots(2, 2, figsize=(8.4, 7.6), squeeze=False)
    for c, p in enumerate([0, len(a["steps"]) - 1]):
        for r, (key, label) in enumerate([("class_distances", "geodesic"),
                                          ("class_distances_euclidean", "Euclidean")]):  # fmt: skip
            matrix = a[key][p]
            scale = np.nanmean(matrix[~np.eye(len(matrix), dtype=bool)])
            image = axes[r, c].imshow(matrix / scale, cmap="viridis", vmin=0)
            axes[r, c].set_title(f"{label}, {_when(dynamics, p)}", fontsize=9)
            axes[r, c].set_xlabel("class", fontsize=8)
            fig.colorbar(image, ax=axes[r, c], shrink=0.8, label="distance / mean")
    fig.tight_layout()
    return fig


def _table(dynamics: Dynamics) -> str:
    shown = [name for panel in panels(dynamics) for name in panel.keys.values()]
    keys = [*[k for k in ("epoch", "step") if k in dynamics.rows[0]], *shown, "seconds"]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)

    def cell(value):
        if value is None:
            return "<td>–</td>"
        return f"<td>{value:.4g}</td>" if isinstance(value, float) else f"<td>{value}</td>"

    body = "".join("<tr>" + "".join(cell(r[k]) for k in keys) + "</tr>\n" for r in dynamics.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


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
    likelihood = None if config.likelihood == "gaussian" else config.likelihood
    return metrics, trajectory_lengths(dynamics, model.decoder, likelihood)


def write_dynamics_report(run_dir: str | Path, *, threshold: float = 0.1) -> Path:
    """Draw the probes in `run_dir` (written by `jgeo train` or by a
    `jgeo.dynamics.Recorder`) into `run_dir/figures/dynamics_*.png` — scalar time series;
    with a decoder, log-volume and curvature maps and their GIF for d = 2; trajectories
    of the fixed samples; persistence diagrams — and write `run_dir/dynamics.html`, a
    static page of them with the table of probes.

    Only the probe files are needed. In a `jgeo train` run the reconstruction error
    joins the scalars and the trajectory lengths under the final checkpoint's metric
    the summary.

    **Arguments:**

    - `run_dir`: the directory of the probes.
    - `threshold`: the persistence threshold of the topology figures.

    **Returns:** the path of `dynamics.html`.

    **Raises:** `DynamicsError` for missing or damaged dynamics files; `RunError` for a
    damaged `metrics.jsonl` or `config.json` beside them (read before anything is drawn).
    """
    from ..train._figures import _plt

    run_dir = Path(run_dir)
    dynamics = load(run_dir)
    shown = dynamics.layer(_primary(dynamics))  # the layer of the figures of arrays
    metrics, lengths = _run_extras(run_dir, shown)
    if (run_dir / "config.json").exists():  # every file is read before anything is written
        config = _run_config(run_dir / "config.json")
    else:  # a Recorder's directory: what it probed
        config = {k: v for k, v in dynamics.info.items() if k not in ("data_sha256", "probes")}
    figures = run_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    picks = _pick(len(dynamics.rows), 6)
    drawn = {}
    of_layer = f" (layer {_primary(dynamics)!r})" if len(dynamics.layers) > 1 else ""

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
             "(bottom), relative to their mean, at the first and last probe"
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
    page = _page(run_dir, config, summary, drawn, _table(dynamics))
    path = run_dir / "dynamics.html"
    write_atomic(path, page)
    return path


def _primary(dynamics: Dynamics) -> str:
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


def _page(run_dir: Path, config: dict, summary: dict, figures: dict, table: str) -> str:
    def items(d):
        def text(v):
            return html.escape(f"{v:.4g}" if isinstance(v, float) else str(v))

        return "".join(f"<li><b>{html.escape(str(k))}</b>: {text(v)}</li>" for k, v in d.items())

    keys = [
        "data",
        "model",
        "regularizer",
        "weight",
        "latent_dim",
        "epochs",
        "seed",
        "probe_every",
        "data_shape",
        "samples",
        "pairs",
        "every",
        "landscape_every",
        "labels",
    ]
    shown = {k: config[k] for k in keys if k in config}
    images = "".join(
        f'<figure><img src="figures/{html.escape(name)}" alt="{html.escape(name)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>\n"
        for name, caption in figures.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>jgeo dynamics: {html.escape(run_dir.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
img {{ max-width: 100%; }} figure {{ margin: 1.5em 0; }} figcaption {{ color: #555; }}
table {{ border-collapse: collapse; font-size: 12px; }} td, th {{ border: 1px solid #ccc;
padding: 2px 6px; text-align: right; }} .scroll {{ max-height: 480px; overflow: auto; }}
</style></head><body>
<h1>Learning dynamics of the representation</h1>
<p>Run <code>{html.escape(str(run_dir))}</code></p>
<ul>{items(shown)}</ul>
<ul>{items(summary)}</ul>
{images}
<h2>Probes</h2>
<div class="scroll">{table}</div>
</body></html>
"""
