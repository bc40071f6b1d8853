"""The similarity figures of the page: the layer × layer CKA matrix at each probe (the
`Similarity` probe's `cka_layers`) and each layer's convergence to its own final state
(linear CKA of its recorded codes to the last probe's: Raghu et al. 2017's bottom-up
picture)."""

import jax
import numpy as np

from .. import representation
from ..dynamics import Dynamics
from ._plots import Figure, Section, _aligned, _data, _go, _layout, _slider, _subplots
from ._runs import Run


def layer_matrices(dynamics: Dynamics) -> tuple[list[str], np.ndarray] | None:
    """The layers (sorted names) and their CKA matrices (P, L, L) over the probes, from
    the rows `cka_layers` the `Similarity` probe records per layer, or None."""
    names = sorted(dynamics.layers)
    rows = [dynamics.arrays.get(Dynamics.key("cka_layers", name)) for name in names]
    if len(names) < 2 or any(r is None or r.shape[1:] != (len(names),) for r in rows):
        return None
    return names, np.stack(rows, axis=1)


def convergence(dynamics: Dynamics) -> dict[str, np.ndarray]:
    """Per layer with recorded codes, linear CKA of its codes at each probe to its codes
    at the last probe (P,): 1 at the end, how early it got there before."""
    to_last = jax.jit(jax.vmap(representation.linear_cka, in_axes=(0, None)))
    out = {}
    for layer in dynamics.layers:
        codes = dynamics.arrays.get(Dynamics.key("codes", layer))
        if codes is not None and len(codes) > 1:
            out[layer] = np.asarray(to_last(codes, codes[-1]), float)
    return out


def _layer_colours(count: int) -> list[str]:
    """Colours from dark to light, in the layers' order."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Viridis", list(np.linspace(0, 0.85, max(count, 2))))[:count]


def similarity_section(runs: list[Run]) -> Section | None:
    """Convergence lines (a panel per run, a line per layer) and, where recorded, the
    layer × layer CKA heat maps with a slider over probes (a column per run)."""
    go = _go()
    figures = []
    curves = [(run, convergence(run.dynamics)) for run in runs if run.dynamics is not None]
    curves = [(run, c) for run, c in curves if c]
    if curves:
        fig = _subplots(rows=1, cols=len(curves), subplot_titles=[r.label for r, _ in curves]
                        if len(curves) > 1 else None, shared_yaxes=True)  # fmt: skip
        for col, (run, lines) in enumerate(curves):
            label, times = run.dynamics.time
            colours = _layer_colours(len(lines))
            for colour, (layer, values) in zip(colours, lines.items()):
                name = layer or "codes"
                fig.add_trace(
                    go.Scatter(
                        x=times, y=values, name=name, legendgroup=name, showlegend=col == 0,
                        mode="lines+markers" if len(times) < 40 else "lines",
                        line=dict(color=colour, width=1.5), marker=dict(size=4),
                        hovertemplate=f"{name}<br>{label} %{{x}}<br>CKA to final %{{y:.4f}}"
                        "<extra></extra>",
                    ),
                    row=1, col=col + 1,
                )  # fmt: skip
            fig.update_xaxes(title_text=label, row=1, col=col + 1)
        fig.update_yaxes(title_text="linear CKA to final", row=1, col=1)
        _layout(fig, height=360)
        caption = (
            "Convergence: each layer's linear CKA between its fixed samples' codes at each "
            "probe and at the last one. Layers that reach 1 early stopped changing early "
            "(Raghu et al. 2017 saw lower layers settle first)."
        )
        figures.append(Figure("convergence", "convergence to the final state", fig, caption))
    matrices = [(run, m) for run in runs if run.dynamics and (m := layer_matrices(run.dynamics))]
    if matrices:
        views = [(run.dynamics, None) for run, _ in matrices]
        label, times, index = _aligned([run for run, _ in matrices], views)
        fig = _subplots(rows=1, cols=len(matrices), horizontal_spacing=0.12,
                        subplot_titles=[r.label for r, _ in matrices] if len(matrices) > 1
                        else None)  # fmt: skip
        frames = [
            [dict(type="heatmap", z=m[index[c][k]]) for c, (_, (_, m)) in enumerate(matrices)]
            for k in range(len(times))
        ]
        for c, (_, (names, _)) in enumerate(matrices):
            fig.add_trace(
                go.Heatmap(
                    **_data(frames[-1][c]), x=names, y=names, zmin=0, zmax=1,
                    colorscale="Viridis", showscale=c == len(matrices) - 1,
                    hovertemplate="%{y} – %{x}: CKA %{z:.3f}<extra></extra>",
                ),
                row=1, col=c + 1,
            )  # fmt: skip
            fig.update_yaxes(autorange="reversed", row=1, col=c + 1)
        _slider(fig, frames, label, times, 30)
        _layout(fig, height=420)
        caption = (
            "Linear CKA between every two layers' codes of the fixed samples at each probe "
            "(slider): which layers represent the inputs alike."
        )
        figures.append(Figure("layer-similarity", "layer × layer similarity", fig, caption))
    return Section("similarity between layers and over time", figures) if figures else None
