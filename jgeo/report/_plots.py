"""The report's interactive figures (Plotly), drawn from runs as `read_run` reads them.

Plotly because its figures are plain JSON that plotly.js draws in any browser, offline
from one HTML file, and the same objects display inline in Jupyter; zoom, pan and hover
come with every trace, sliders over probes are part of the figure itself (no server, no
kernel), and the Python package carries the JavaScript (no network at write time).

Every figure takes a list of runs and draws them on shared axes (a line colour per run)
or side by side (a column per run) with one colour scale for all of them."""

from typing import NamedTuple

import numpy as np

from ._dynamics import Panel, _field_limits as field_limits, panels, primary_layer
from ._runs import Run

# One colour per run (the lines of the scalars); classes take the categorical colours of
# tab10 so that the page and the PNGs agree.
RUN_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
]
CLASS_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]
# The sections of the scalars, in this order; other groups (your probes') after them.
GROUPS = [
    "training",
    "geometry",
    "classes",
    "intrinsic dimension",
    "topology",
    "similarity",
    "landscape",
]
MAX_FRAMES = 100  # probes on a slider (evenly spaced, first and last kept)


class Figure(NamedTuple):
    """One figure of the page: `id` (the HTML element's), `title`, `figure` (a Plotly
    `go.Figure`), `caption`, and `images`: the images hover shows beside it, or None."""

    id: str
    title: str
    figure: object
    caption: str
    images: dict | None = None


class Section(NamedTuple):
    """A group of figures under one heading (a probe group, the final model, ...); `note`
    lists what was folded away (constant series)."""

    title: str
    figures: list[Figure]
    note: str = ""


def _go():
    import plotly.graph_objects as go

    return go


def _subplots(**kwargs):
    """`make_subplots` on a figure that skips Plotly's validation of every assignment (a
    few seconds for a page; the browser test draws what is built)."""
    from plotly.subplots import make_subplots

    return make_subplots(figure=_go().Figure(_validate=False), **kwargs)


def _layout(fig, **kwargs) -> None:
    """The house style, light as `plotly_white` without its template's cost."""
    fig.update_layout(
        template="none",
        plot_bgcolor="white",
        paper_bgcolor="white",
        font=dict(family="system-ui, sans-serif", size=12),
        margin=dict(l=50, r=20, t=50, b=40),
        hoverlabel=dict(namelength=-1),
        **kwargs,
    )
    fig.update_xaxes(gridcolor="#eee", zerolinecolor="#ccc", linecolor="#999", showline=True)
    fig.update_yaxes(gridcolor="#eee", zerolinecolor="#ccc", linecolor="#999", showline=True)


def _data(entry: dict) -> dict:
    """A frame's entry for a trace, without its type (the trace's class gives it)."""
    return {k: v for k, v in entry.items() if k != "type"}


def _pick(count: int, k: int = MAX_FRAMES) -> list[int]:
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, min(k, count))})


# -- scalars over training -------------------------------------------------------------


def _constant(values: list[np.ndarray]) -> float | None:
    """The one value every finite entry takes, or None (NaN where nothing is finite)."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    if finite.size == 0:
        return np.nan
    return float(finite[0]) if np.ptp(finite) <= 1e-12 * max(1.0, abs(finite[0])) else None


def scalar_sections(runs: list[Run]) -> list[Section]:
    """A section per probe group (and one for the training losses of `jgeo train` runs):
    a panel per scalar, a line per run (colour) and layer (dash); the constant series
    (the same value at every probe of every run) folded into the section's note."""
    grouped: dict[str, dict[str, list]] = {}  # group → title → [(run index, panel)]
    for r, run in enumerate(runs):
        if run.metrics:
            keys = [
                k
                for k in run.metrics[0]
                if k not in ("epoch", "step", "seconds")
                and isinstance(run.metrics[0][k], int | float)
            ]
            for k in keys:
                panel = Panel("training", k, k.startswith(("loss", "recon")), {"": k}, {})
                grouped.setdefault("training", {}).setdefault(k, []).append((r, panel))
        if run.dynamics is not None:
            for panel in panels(run.dynamics):
                grouped.setdefault(panel.group, {}).setdefault(panel.title, []).append((r, panel))
    order = sorted(grouped, key=lambda g: GROUPS.index(g) if g in GROUPS else len(GROUPS))
    return [_group_section(group, grouped[group], runs) for group in order]


def _series(run: Run, panel: Panel):
    """(x label, [(layer, x, y, reference?)]) of one panel of one run."""
    if panel.group == "training":
        key = panel.keys[""]
        y = np.array([np.nan if m[key] is None else m[key] for m in run.metrics], float)
        return "epoch", [("", np.array([m["epoch"] for m in run.metrics]), y, False)]
    label, times = run.dynamics.time
    lines = [(layer, times, run.dynamics.series(k), False) for layer, k in panel.keys.items()]
    lines += [(layer, times, run.dynamics.series(k), True) for layer, k in panel.reference.items()]
    return label, lines


def _group_section(group: str, titles: dict, runs: list[Run]) -> Section:

    go = _go()
    drawn, folded = [], []
    for title, entries in titles.items():
        lines = [(r, _series(runs[r], p)) for r, p in entries]
        value = _constant([y for _, (_, ls) in lines for *_, y, _ in ls])
        if value is None:
            drawn.append((title, entries, lines))
        else:
            folded.append(f"{title} = {value:.4g}" if np.isfinite(value) else f"{title}: none")
    note = ("Constant over training (not drawn): " + "; ".join(folded) + ".") if folded else ""
    if not drawn:
        return Section(group, [], note)
    cols = min(3, len(drawn))
    rows = -(-len(drawn) // cols)
    fig = _subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[t for t, *_ in drawn],
        horizontal_spacing=0.08,
        vertical_spacing=min(0.3 / rows + 0.05, 0.2),
    )
    seen = set()
    for i, (title, entries, lines) in enumerate(drawn):
        row, col = divmod(i, cols)
        for (r, panel), (_, (xlabel, series)) in zip(entries, lines):
            layers = sorted({layer for layer, *_ in series})
            for layer, x, y, reference in series:
                name = runs[r].label if len(runs) > 1 else (layer or title)
                if reference:
                    name += " reference"
                legend = (runs[r].label, layer, reference)
                kept = np.isfinite(y)
                fig.add_trace(
                    go.Scatter(
                        x=np.asarray(x)[kept],
                        y=y[kept],
                        name=name,
                        mode="lines+markers" if kept.sum() < 40 else "lines",
                        line=dict(
                            color="black" if reference and len(runs) == 1 else RUN_COLOURS[r % 10],
                            dash="dash" if reference else DASHES[layers.index(layer) % len(DASHES)],
                            width=1.5,
                        ),
                        marker=dict(size=4),
                        legendgroup=name,
                        showlegend=(len(runs) > 1 or len(layers) > 1 or reference)
                        and legend not in seen,
                        meta={
                            "key": panel.keys.get(layer, "")
                            if not reference
                            else panel.reference[layer],
                            "run": r,
                        },
                        hovertemplate=f"{name}<br>{xlabel} %{{x}}<br>{title} %{{y:.4g}}"
                        "<extra></extra>",
                    ),
                    row=row + 1,
                    col=col + 1,
                )
                seen.add(legend)
            fig.update_xaxes(title_text=xlabel, row=row + 1, col=col + 1, title_standoff=2)
        if entries[0][1].log and all(
            np.nanmin(y) > 0 for _, (_, s) in lines for *_, y, _ in s if np.isfinite(y).any()
        ):
            fig.update_yaxes(type="log", row=row + 1, col=col + 1)
    fig.update_xaxes(nticks=6)
    fig.update_yaxes(nticks=6, exponentformat="power")
    fig.update_annotations(font_size=12)
    _layout(fig, height=230 * rows + 80, legend=dict(orientation="h", y=-0.12 / rows))
    caption = (
        f"The {group} probes' scalars over training"
        + (", a colour per run" if len(runs) > 1 else "")
        + "."
    )
    return Section(group, [Figure(f"scalars-{_slug(group)}", group, fig, caption)], note)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


# -- projections -----------------------------------------------------------------------


class Projection(NamedTuple):
    """A fixed linear view of d-dimensional codes in 2-D: `mean`, `axes` (d, 2) and the
    axis titles (with the fraction of variance each principal axis explains)."""

    mean: np.ndarray
    axes: np.ndarray
    titles: tuple[str, str]

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return (codes - self.mean) @ self.axes


def projection(codes: np.ndarray) -> Projection:
    """The codes themselves for d = 2, else their first two principal axes, fitted once
    on `codes` (n, d) — every probe's codes stacked — so that motion between probes is
    motion of the codes, not of the view."""
    d = codes.shape[-1]
    if d == 1:
        return Projection(np.zeros(1), np.array([[1.0, 0.0]]), ("z₁", ""))
    if d == 2:
        return Projection(np.zeros(2), np.eye(2), ("z₁", "z₂"))
    mean = codes.mean(0)
    _, s, vt = np.linalg.svd(codes - mean, full_matrices=False)
    share = s**2 / max(np.sum(s**2), 1e-300)
    titles = tuple(f"PC{i + 1} ({100 * share[i]:.1f} % of variance)" for i in range(2))
    return Projection(mean, vt[:2].T, titles)


def _colours(arrays: dict) -> dict:
    """Marker colours: by class (tab10, by the class's rank) where labelled, else the
    data's colour (viridis)."""
    labels = arrays.get("labels")
    if labels is not None:
        classes = arrays.get("classes", np.unique(labels))
        rank = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
        return dict(color=[CLASS_COLOURS[int(r) % 10] for r in rank])
    return dict(color=arrays["color"], colorscale="Viridis", showscale=False)


def _class_legend(fig, arrays: dict) -> None:
    """Legend entries naming the class of each colour (traces without points, added after
    the drawn ones so that the frames' trace order is kept)."""
    go = _go()
    labels = arrays.get("labels")
    if labels is None:
        return
    for r, value in enumerate(arrays.get("classes", np.unique(labels))):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"class {value}",
                marker=dict(color=CLASS_COLOURS[r % 10], size=8),
                hoverinfo="skip",
            )
        )


def _field_limits(values: list[np.ndarray], symmetric: bool) -> tuple[float, float]:
    """One colour scale for every map in `values` (`jgeo dynamics`' PNGs' own)."""
    flat = np.concatenate([v.ravel() for v in values]) if values else np.zeros(0)
    return field_limits(flat, symmetric)


def _class_names(arrays: dict) -> list[str] | None:
    """Each point's class, as text, or None without labels."""
    labels = arrays.get("labels")
    return None if labels is None else [str(v) for v in labels]


def _slider(fig, frames: list[list[dict]], label: str, times: np.ndarray, pad: int) -> None:
    """Frames of the figure's first traces, one per probe, and a slider over them that
    starts at the last; the steps' labels are hidden (a hundred overlap), the current
    one is written above."""
    go = _go()
    fig.frames = [go.Frame(data=data, name=str(k)) for k, data in enumerate(frames)]
    now = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    steps = [
        dict(method="animate", label=str(int(t)), args=[[str(k)], now]) for k, t in enumerate(times)
    ]
    fig.update_layout(
        sliders=[
            dict(
                active=len(times) - 1,
                steps=steps,
                pad=dict(t=pad),
                font=dict(color="rgba(0,0,0,0)"),
                ticklen=3,
                currentvalue=dict(prefix=f"{label} ", font=dict(color="#333")),
            )
        ]
    )


# -- the codes over training -----------------------------------------------------------


def _probe_view(run: Run):
    """(layer's Dynamics, codes (P, S, d)) of the run's primary layer, or None."""
    if run.dynamics is None:
        return None
    shown = run.dynamics.layer(primary_layer(run.dynamics))
    return (shown, shown.arrays["codes"]) if "codes" in shown.arrays else None


def _aligned(runs: list[Run], views: list) -> tuple[str, np.ndarray, list[list[int]]]:
    """The slider's times (those of the run with the most probes, at most MAX_FRAMES) and,
    per run, the index of its probe at or just before each."""
    longest = max(range(len(runs)), key=lambda i: len(views[i][0].rows))
    label, times = views[longest][0].time
    times = times[_pick(len(times))]
    index = []
    for shown, _ in views:
        own = shown.time[1]
        index.append([max(0, int(np.searchsorted(own, t, side="right")) - 1) for t in times])
    return label, times, index


def codes_section(runs: list[Run]) -> Section | None:
    """The fixed samples' codes at every probe (a slider), a column per run, coloured by
    class; with a decoder's fields (d = 2) the log-volume and curvature maps beneath."""

    go = _go()
    kept = [(run, v) for run in runs if (v := _probe_view(run)) is not None]
    if not kept:
        return None
    runs, views = [r for r, _ in kept], [v for _, v in kept]
    fields = [
        ("log_volume", "log-volume ½ log det G", "Magma", False),
        ("gaussian_curvature", "Gaussian curvature", "RdBu_r", True),
    ]
    fields = [f for f in fields if any(f[0] in v[0].arrays for v in views)]
    label, times, index = _aligned(runs, views)
    limits = {
        key: _field_limits([v[0].arrays[key] for v in views if key in v[0].arrays], sym)
        for key, _, _, sym in fields
    }
    rows, cols = max(1, len(fields)), len(runs)
    titles = [
        f"{run.label}: {name}" if fields else run.label
        for _, name, *_ in (fields or [(None, "codes")])
        for run in runs
    ]
    fig = _subplots(
        rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.12
    )
    projections = [projection(codes.reshape(-1, codes.shape[-1])) for _, codes in views]

    def frame_data(k: int) -> list[dict]:
        out = []
        for c, ((shown, codes), proj) in enumerate(zip(views, projections)):
            p = index[c][k]
            flat = proj(codes[p])
            for key, *_ in fields or [(None,)]:
                if key is not None and key in shown.arrays:
                    e = shown.arrays["extent"][p]
                    z = shown.arrays[key][p]
                    out.append(
                        dict(
                            type="heatmap",
                            z=z,
                            x=np.linspace(e[0], e[1], z.shape[1]),
                            y=np.linspace(e[2], e[3], z.shape[0]),
                        )
                    )
                y = flat[:, 1] if flat.shape[1] > 1 else flat[:, 0]
                out.append(dict(type="scatter", x=flat[:, 0], y=y))
        return out

    first = frame_data(len(times) - 1)
    position = 0
    for c, ((shown, codes), proj) in enumerate(zip(views, projections)):
        names = _class_names(shown.arrays)
        for r, (key, name, scale, _) in enumerate(fields or [(None, "", "", False)]):
            if key is not None and key in shown.arrays:
                lo, hi = limits[key]
                fig.add_trace(
                    go.Heatmap(
                        **_data(first[position]),
                        colorscale=scale,
                        zmin=lo,
                        zmax=hi,
                        colorbar=dict(
                            len=0.9 / rows,
                            y=1 - (r + 0.5) / rows,
                            title=dict(text=name, side="right"),
                        ),
                        showscale=c == cols - 1,
                        hovertemplate=f"{name} %{{z:.3g}}<extra></extra>",
                    ),
                    row=r + 1,
                    col=c + 1,
                )
                position += 1
            text = [
                f"sample {i}" + (f", class {names[i]}" if names else "")
                for i in range(codes.shape[1])
            ]
            fig.add_trace(
                go.Scatter(
                    **_data(first[position]),
                    mode="markers",
                    text=text,
                    marker=dict(
                        size=5,
                        line=dict(width=0.5, color="white"),
                        **_colours(shown.arrays),
                    ),
                    customdata=shown.arrays["sample_index"],
                    name=runs[c].label,
                    showlegend=False,
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
            position += 1
            fig.update_xaxes(title_text=proj.titles[0], row=r + 1, col=c + 1)
            fig.update_yaxes(title_text=proj.titles[1], row=r + 1, col=c + 1)
    _slider(fig, [frame_data(k) for k in range(len(times))], label, times, 40)
    _class_legend(fig, views[0][0].arrays)
    _layout(
        fig,
        height=420 * rows + 120,
        legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", yref="container"),
    )
    d = views[0][1].shape[-1]
    caption = (
        "The fixed samples' codes at each probe (slider), coloured by class"
        + (
            ", over the log-volume and curvature maps of the decoder at that probe (one colour "
            "scale for every probe and run; curvature clipped at its 95th percentile)"
            if fields
            else ""
        )
        + (
            ". d > 2: the first two principal axes of the codes of every probe, fitted once "
            "(the motion is the codes', not the view's)"
            if d > 2
            else ""
        )
        + ". Zoom by dragging, double-click to reset; hover a code for its sample."
    )
    return Section("codes over training", [Figure("codes", "codes over training", fig, caption)])


# -- class distances -------------------------------------------------------------------


def classes_section(runs: list[Run]) -> Section | None:
    """Distances between class centres along geodesics and in coordinates (each divided
    by its mean) and their difference, at every probe (a slider), a row per run."""

    go = _go()
    kept = [
        (run, v)
        for run in runs
        if (v := _probe_view(run)) is not None and "class_distances" in v[0].arrays
    ]
    if not kept:
        return None
    runs, views = [r for r, _ in kept], [v for _, v in kept]
    label, times, index = _aligned(runs, views)

    def relative(matrix):
        off = ~np.eye(len(matrix), dtype=bool)
        return matrix / np.nanmean(matrix[off])

    def panels_at(k):
        out = []
        for c, (shown, _) in enumerate(views):
            p = index[c][k]
            g = relative(shown.arrays["class_distances"][p])
            e = relative(shown.arrays["class_distances_euclidean"][p])
            out += [dict(type="heatmap", z=z) for z in (g, e, g - e)]
        return out

    data = [panels_at(k) for k in range(len(times))]
    top = max(
        float(np.nanmax(frame[i]["z"])) for frame in data for i in range(len(frame)) if i % 3 < 2
    )
    diffs = [frame[i]["z"] for frame in data for i in range(2, len(frame), 3)]
    bound = max(float(np.nanmax(np.abs(np.stack(diffs)))), 1e-6)
    titles = [
        f"{run.label}: {t}" if len(runs) > 1 else t
        for run in runs
        for t in ("geodesic / mean", "Euclidean / mean", "geodesic − Euclidean")
    ]
    fig = _subplots(rows=len(runs), cols=3, subplot_titles=titles, horizontal_spacing=0.09)
    for r, (shown, _) in enumerate(views):
        classes = [str(c) for c in shown.arrays.get("classes", range(len(data[0][3 * r]["z"])))]
        for c in range(3):
            z = data[-1][3 * r + c]
            scale = (
                dict(colorscale="RdBu_r", zmin=-bound, zmax=bound)
                if c == 2
                else dict(colorscale="Viridis", zmin=0, zmax=top)
            )
            fig.add_trace(
                go.Heatmap(
                    **_data(z),
                    x=classes,
                    y=classes,
                    **scale,
                    showscale=r == 0 and c in (1, 2),
                    colorbar=dict(x=0.64 if c == 1 else 1.0, len=0.8),
                    hovertemplate="classes %{y} – %{x}: %{z:.3g}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
            fig.update_yaxes(autorange="reversed", row=r + 1, col=c + 1)
    _slider(fig, data, label, times, 30)
    _layout(fig, height=330 * len(runs) + 110)
    caption = (
        "Distances between class centres along geodesics of the decoder's metric and "
        "in coordinates, each divided by its mean, and their difference (red: classes "
        "further apart along the manifold than in coordinates), at each probe (slider)."
    )
    return Section("classes", [Figure("classes", "class distances", fig, caption)])


# -- the final model -------------------------------------------------------------------


def final_section(runs: list[Run]) -> Section | None:
    """The final model of `jgeo train` runs (`report.npz`): every code coloured by class,
    the log-volume map beneath (d = 2), the geodesics between fixed pairs with their
    endpoints and classes marked beside the straight lines, a column per run; hovering a
    code shows its data image and the decoded one (image data)."""

    go = _go()
    kept = [run for run in runs if run.results is not None]
    if not kept:
        return None
    fields = [r.results["field"] for r in kept if "field" in r.results]
    lo, hi = _field_limits(fields, symmetric=False)
    fig = _subplots(
        rows=1, cols=len(kept), subplot_titles=[r.label for r in kept], horizontal_spacing=0.1
    )
    images = {}
    for c, run in enumerate(kept):
        a = run.results
        codes = a["codes"]
        proj = projection(codes)
        flat = proj(codes)
        names = _class_names(a)
        if "field" in a:
            fig.add_trace(
                go.Heatmap(
                    z=a["field"],
                    x=a["field_x"],
                    y=a["field_y"],
                    colorscale="Magma",
                    zmin=lo,
                    zmax=hi,
                    showscale=c == len(kept) - 1,
                    colorbar=dict(title=dict(text="½ log det G", side="right")),
                    hovertemplate="½ log det G %{z:.3g}<extra></extra>",
                ),
                row=1,
                col=c + 1,
            )
        text = [f"point {i}" + (f", class {names[i]}" if names else "") for i in range(len(codes))]
        fig.add_trace(
            go.Scatter(
                x=flat[:, 0],
                y=flat[:, 1],
                mode="markers",
                text=text,
                customdata=np.arange(len(codes)),
                name="codes",
                marker=dict(size=4, opacity=0.8, **_colours(a)),
                showlegend=False,
                meta={"images": f"final-{c}"},
                hovertemplate="%{text}<extra></extra>",
            ),
            row=1,
            col=c + 1,
        )
        pairs, curves = a["pairs"], a["curves"]
        for k, (i, j) in enumerate(pairs):
            ends = flat[[i, j]]
            what = f"class {names[i]} → class {names[j]}" if names else f"point {i} → point {j}"
            fig.add_trace(
                go.Scatter(
                    x=ends[:, 0],
                    y=ends[:, 1],
                    mode="lines",
                    line=dict(color="#00bcd4", dash="dash", width=1),
                    name="straight line",
                    legendgroup="straight",
                    showlegend=c == 0 and k == 0,
                    hoverinfo="skip",
                ),
                row=1,
                col=c + 1,
            )
            if np.all(np.isfinite(curves[k])):
                curve = proj(curves[k])
                fig.add_trace(
                    go.Scatter(
                        x=curve[:, 0],
                        y=curve[:, 1],
                        mode="lines",
                        line=dict(color="#ffd54f" if "field" in a else "black", width=2),
                        name="geodesic",
                        legendgroup="geodesic",
                        showlegend=c == 0 and k == 0,
                        hovertemplate=f"geodesic {what}<extra></extra>",
                    ),
                    row=1,
                    col=c + 1,
                )
            fig.add_trace(
                go.Scatter(
                    x=ends[:, 0],
                    y=ends[:, 1],
                    mode="markers+text",
                    text=[names[i], names[j]] if names else None,
                    textposition="top center",
                    textfont=dict(color="#00bcd4"),
                    marker=dict(
                        symbol="diamond", size=9, color="#00bcd4", line=dict(width=1, color="black")
                    ),
                    name="endpoints",
                    legendgroup="ends",
                    showlegend=c == 0 and k == 0,
                    hovertemplate=f"endpoint: {what}<extra></extra>",
                ),
                row=1,
                col=c + 1,
            )
        fig.update_xaxes(title_text=proj.titles[0], row=1, col=c + 1)
        fig.update_yaxes(title_text=proj.titles[1], row=1, col=c + 1)
        if "decoded" in a:
            images[f"final-{c}"] = {
                "shape": [int(n) for n in a["image_shape"]],
                "data": a["images"],
                "decoded": a["decoded"],
            }
    _class_legend(fig, kept[0].results)
    _layout(fig, height=520, legend=dict(orientation="h", y=-0.15))
    d = kept[0].results["codes"].shape[-1]
    caption = (
        "The final model: the code of every data point, coloured by class"
        + (", over the log-volume map of the decoder's metric (one colour scale)" if fields else "")
        + ", and geodesics (solid) between fixed pairs beside the straight lines (dashed), "
        "their endpoints marked with their classes"
        + (
            ". d > 2: the first two principal axes of the codes, the geodesics in the same view"
            if d > 2
            else ""
        )
        + (
            ". Hover a code to see its data image and the decoder's image of its code."
            if images
            else "."
        )
    )
    return Section("final model", [Figure("final", "final model", fig, caption, images)])


def sections(runs: list[Run]) -> list[Section]:
    """Every section of the page of `runs`, in the page's order."""
    from ._similarity import similarity_section  # it draws with this module's helpers

    out = [final_section(runs), codes_section(runs), classes_section(runs)]
    out = [s for s in out + [similarity_section(runs)] if s is not None]
    return out + scalar_sections(runs)


def figures(runs: list[Run]) -> dict[str, object]:
    """The Plotly figures of `runs` by their ids (for notebooks)."""
    return {f.id: f.figure for section in sections(runs) for f in section.figures}
