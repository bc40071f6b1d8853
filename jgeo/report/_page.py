"""The run's web page, `DIR/index.html`: one self-contained HTML file — plotly.js, the
figures' data and the hover images embedded, gzip-compressed and base64-encoded (the
browser inflates them with its own `DecompressionStream`), so the page opens from a
copied or mailed file with no network and no sibling files.

plotly.js alone is 4.8 MB; compressed it is about 1.5 MB, which keeps the page of the
default run well under 5 MB (bench/report_page.py measures it)."""

import base64
import functools
import gzip
import html
import json
from pathlib import Path

import numpy as np

from .._io import RunError, write_atomic
from ._plots import Section, sections
from ._runs import Run, differences, labelled, read_run, shown_config

PAGE = "index.html"


@functools.cache
def _plotly_js() -> str:
    """plotly.js of the installed plotly package, gzip-compressed, base64."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return base64.b64encode(gzip.compress(path.read_bytes(), 6, mtime=0)).decode("ascii")


def _packed(value) -> str:
    return base64.b64encode(gzip.compress(value.encode("utf-8"), 6, mtime=0)).decode("ascii")


def _figures_json(drawn: list[Section]) -> str:
    import plotly.io as pio

    figures = {}
    for section in drawn:
        for f in section.figures:
            figures[f.id] = json.loads(pio.to_json(f.figure, validate=False))
    return json.dumps(figures, separators=(",", ":"))


def _images_json(drawn: list[Section]) -> str:
    """The hover images, `{key: {shape, data, decoded}}` with uint8 pixels as base64."""
    out = {}
    for section in drawn:
        for f in section.figures:
            for key, entry in (f.images or {}).items():
                out[key] = {
                    "shape": entry["shape"],
                    "count": int(len(entry["data"])),
                    "data": base64.b64encode(np.ascontiguousarray(entry["data"])).decode(),
                    "decoded": base64.b64encode(np.ascontiguousarray(entry["decoded"])).decode(),
                }
    return json.dumps(out)


def _items(d: dict) -> str:
    def text(v):
        return html.escape(f"{v:.4g}" if isinstance(v, float) else str(v))

    return "".join(f"<li><b>{html.escape(str(k))}</b>: {text(v)}</li>" for k, v in d.items())


def _runs_html(runs: list[Run], summaries: dict) -> str:
    parts = []
    differ = differences(runs) if len(runs) > 1 else []
    if len(runs) > 1:
        what = ", ".join(differ) if differ else "nothing in their configs (their directories)"
        parts.append(
            f"<p>{len(runs)} runs on shared axes and colour scales; they differ in "
            f"<b>{html.escape(what)}</b>.</p>"
        )
    for i, run in enumerate(runs):
        from ._plots import RUN_COLOURS

        swatch = (
            f'<span class="swatch" style="background:{RUN_COLOURS[i % 10]}"></span>'
            if len(runs) > 1
            else ""
        )
        facts = shown_config(run.config)
        if run.report is not None:
            facts |= {
                k: run.report[k]
                for k in (
                    "recon_mse",
                    "mcn",
                    "vor",
                    "logdet_var",
                    "geodesic_ratio",
                    "spearman_geodesic",
                )
                if k in run.report
            }
        facts |= summaries.get(run.path, {})
        parts.append(
            f"<details{' open' if len(runs) == 1 else ''}><summary>{swatch}<b>"
            f"{html.escape(run.label)}</b> — <code>{html.escape(run.path.name)}</code>"
            f"</summary><ul class='facts'>{_items(facts)}</ul></details>"
        )
    return "\n".join(parts)


def _table(run: Run) -> str:
    dynamics = run.dynamics
    keys = list(dynamics.rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)

    def cell(value):
        if value is None:
            return "<td>–</td>"
        return f"<td>{value:.4g}</td>" if isinstance(value, float) else f"<td>{value}</td>"

    body = "".join("<tr>" + "".join(cell(r[k]) for k in keys) + "</tr>\n" for r in dynamics.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _static_figures(run: Run, out: Path) -> str:
    """Links to the run's PNG figures (for papers), where the page sits in the run."""
    folder = run.path / "figures"
    if not folder.is_dir() or run.path.resolve() != out.resolve():
        return ""
    names = sorted(p.name for p in folder.iterdir() if p.suffix in (".png", ".gif"))
    links = " · ".join(f'<a href="figures/{html.escape(n)}">{html.escape(n)}</a>' for n in names)
    return f"<p>Static figures for papers (beside this page): {links}</p>" if names else ""


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222;
  padding: 0 1em; }
h2 { border-bottom: 1px solid #ddd; margin-top: 1.6em; } figcaption, .note { color: #555; }
.plot { width: 100%; } .swatch { display: inline-block; width: 1em; height: 0.7em;
  margin-right: 0.4em; } .row { display: flex; gap: 1em; align-items: flex-start; }
.row .plot { flex: 1; } .hover { width: 150px; font-size: 12px; color: #555; }
.hover canvas { width: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 12px; } td, th { border: 1px solid #ccc;
  padding: 2px 6px; text-align: right; } .scroll { max-height: 420px; overflow: auto; }
#status { color: #a00; } ul.facts { columns: 4 18em; font-size: 14px; }
"""

# Inflates plotly.js and the figures, draws them, and shows the images of a hovered code.
_SCRIPT = """
async function inflate(id) {
  const text = document.getElementById(id).textContent.trim();
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}
function draw(canvas, pixels, shape, index) {
  const [h, w] = shape, c = shape.length > 2 ? shape[2] : 1, size = h * w * c;
  canvas.width = w; canvas.height = h;
  const context = canvas.getContext("2d"), image = context.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) {
      const v = c === 3 ? pixels[index * size + 3 * i + k] : pixels[index * size + i * c];
      image.data[4 * i + k] = c === 3 ? v : 255 - v;
    }
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}
(async () => {
  (0, eval)(await inflate("plotly-js"));
  const figures = JSON.parse(await inflate("figures"));
  const images = JSON.parse(await inflate("images"));
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  for (const entry of Object.values(images)) {
    entry.data = bytes(entry.data); entry.decoded = bytes(entry.decoded);
  }
  for (const [id, figure] of Object.entries(figures)) {
    const div = document.getElementById(id);
    await Plotly.newPlot(div, figure.data, figure.layout, {responsive: true, displaylogo: false});
    if (figure.frames) await Plotly.addFrames(div, figure.frames);
    div.on("plotly_hover", (event) => {
      const point = event.points[0], key = point.data.meta && point.data.meta.images;
      const entry = images[key], index = point.customdata;
      if (!entry || index === undefined || index >= entry.count) return;
      draw(document.getElementById(id + "-data"), entry.data, entry.shape, index);
      draw(document.getElementById(id + "-decoded"), entry.decoded, entry.shape, index);
      document.getElementById(id + "-which").textContent = point.text || "";
    });
  }
  document.getElementById("status").textContent = "";
  document.body.dataset.drawn = Object.keys(figures).length;
})().catch((error) => {
  document.getElementById("status").textContent = "The figures could not be drawn: " + error;
  console.error(error);
});
"""


def _section_html(section: Section) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    for f in section.figures:
        plot = f'<div class="plot" id="{f.id}"></div>'
        if f.images:
            plot = (
                f'<div class="row">{plot}<div class="hover">hover a code:<br>data<br>'
                f'<canvas id="{f.id}-data"></canvas><br>decoded<br>'
                f'<canvas id="{f.id}-decoded"></canvas><br><span id="{f.id}-which">'
                "</span></div></div>"
            )
        parts.append(f"<figure>{plot}<figcaption>{html.escape(f.caption)}</figcaption></figure>")
    if section.note:
        parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    return "\n".join(parts)


def page_html(runs: list[Run], out: Path, summaries: dict | None = None) -> str:
    """The page of `runs` (one or several, drawn on shared axes) as HTML text."""
    drawn = sections(runs)
    title = runs[0].label if len(runs) == 1 else f"{len(runs)} runs"
    tables = "".join(
        f"<details><summary>Probes of {html.escape(run.label)} (table)</summary>"
        f'<div class="scroll">{_table(run)}</div></details>'
        for run in runs
        if run.dynamics is not None
    )
    static = "".join(_static_figures(run, out) for run in runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>jgeo: {html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>jgeo report: {html.escape(title)}</h1>
<p id="status">Drawing the figures… (this page needs JavaScript)</p>
{_runs_html(runs, summaries or {})}
{"".join(_section_html(s) for s in drawn)}
<h2>Data</h2>
{tables}
{static}
<script type="application/octet-stream" id="plotly-js">{_plotly_js()}</script>
<script type="application/octet-stream" id="figures">{_packed(_figures_json(drawn))}</script>
<script type="application/octet-stream" id="images">{_packed(_images_json(drawn))}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def read_runs(run_dirs: list[str | Path]) -> list[Run]:
    """The runs of `run_dirs`, read and labelled by what differs between them.

    **Raises:** `RunError` if a directory is given twice or a run's files are damaged."""
    paths = [Path(d) for d in run_dirs]
    if not paths:
        raise RunError("no run directory given: name one or more.")
    seen = {}
    for path in paths:
        if path.resolve() in seen:
            raise RunError(
                f"{path} is given twice (as {seen[path.resolve()]}): name each run once."
            )
        seen[path.resolve()] = path
    return labelled([read_run(p) for p in paths])


def write_page(run_dirs, out: str | Path | None = None, *, summaries: dict | None = None) -> Path:
    """Write the web page of one run or of several side by side: `out/index.html`.

    **Arguments:**

    - `run_dirs`: a run directory, or a list of them (drawn on shared axes, labelled by
      what differs between their configs).
    - `out`: the page's directory (default: the run's own, for one run).
    - `summaries`: extra facts listed under each run, `{run path: {name: value}}`.

    **Returns:** the path of `index.html`.

    **Raises:** `RunError` for a directory given twice, damaged run or probe files, or
    several runs without `out`.
    """
    dirs = [run_dirs] if isinstance(run_dirs, str | Path) else list(run_dirs)
    runs = read_runs(dirs)
    if out is None:
        if len(runs) > 1:
            raise RunError("several runs go on one page: name its directory (`out`, --out DIR).")
        out = runs[0].path
    out = Path(out)
    text = page_html(runs, out, {Path(k): v for k, v in (summaries or {}).items()})
    out.mkdir(parents=True, exist_ok=True)
    path = out / PAGE
    write_atomic(path, text)
    return path


def figures(run_dirs) -> dict[str, object]:
    """The page's interactive figures of one run or several, as Plotly figures keyed by
    name (`"final"`, `"codes"`, `"classes"`, `"scalars-<group>"`), to display inline in a
    notebook (a figure shows itself as a cell's last value, or with `.show()`).

    **Arguments:** `run_dirs`: a run directory or a list of them (drawn side by side).

    **Returns:** `{name: plotly.graph_objects.Figure}`.
    """
    from ._plots import figures as build

    dirs = [run_dirs] if isinstance(run_dirs, str | Path) else list(run_dirs)
    return build(read_runs(dirs))
