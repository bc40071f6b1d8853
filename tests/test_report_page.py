"""The run's web page (`DIR/index.html`, jgeo.report): self-contained, drawn from the run's
files, several runs on shared axes; and opened in a real headless Chromium (Debian's
package, `.ci/install-browser`), which skips with its reason where there is none."""

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from jgeo import dynamics
from jgeo.cli import main
from jgeo.report import figures, results_current
from jgeo.report._plots import projection, scalar_sections
from jgeo.report._runs import Run, labelled

RUN = dict(data="digits", n=300, epochs=4, batch_size=100, probe_samples=32)


# -- without a browser -----------------------------------------------------------------


def test_the_projection_is_labelled_and_fixed():
    codes = np.random.default_rng(0).normal(size=(3, 50, 5)) * np.array([3.0, 2, 1, 0.5, 0.1])
    view = projection(codes.reshape(-1, 5))
    assert view.titles[0].startswith("PC1 (") and view.titles[0].endswith("% of variance)")
    share = [float(re.search(r"\(([\d.]+) %", t).group(1)) for t in view.titles]
    assert share[0] > share[1] > 10 and sum(share) < 100
    # One view for every probe: the codes of a probe land where the stacked fit put them.
    np.testing.assert_allclose(view(codes[1]), view(codes.reshape(-1, 5))[50:100])
    flat = projection(codes[0, :, :2])  # d = 2: the coordinates themselves
    assert flat.titles == ("z₁", "z₂") and np.array_equal(flat(codes[0, :, :2]), codes[0, :, :2])


def _run(config: dict, name: str = "run") -> Run:
    return Run(Path(f"runs/{name}"), name, config, None, [], None, None)


def test_runs_are_labelled_by_what_differs():
    a, b = (
        _run({"data": "digits", "regularizer": "none", "seed": 0}, "a"),
        _run({"data": "digits", "regularizer": "isometry", "seed": 0}, "b"),
    )
    assert [r.label for r in labelled([a, b])] == ["regularizer none", "regularizer isometry"]
    same = labelled([a, a._replace(path=Path("other/a"))])  # same config: the directories
    assert [r.label for r in same] == ["runs/a", "other/a"]


def test_constant_series_are_folded_away():
    rows = [{"step": s, "seconds": 0.1, "active": 2, "betti0": 1, "moving": s / 10} for s in (1, 2)]
    info = {"layers": {"": 2}, "probes": [{"group": "geometry", "per_layer": True,
            "scalars": {"active": {"title": "active dimensions", "log": False,
                                   "reference": None, "panel": True},
                        "moving": {"title": "moving", "log": False, "reference": None,
                                   "panel": True}}}]}  # fmt: skip
    record = dynamics.Dynamics(rows, {"steps": np.array([1, 2])}, info)
    sections = {s.title: s for s in scalar_sections([_run({})._replace(dynamics=record)])}
    geometry = sections["geometry"]
    assert "active dimensions = 2" in geometry.note
    titles = geometry.figures[0].figure.layout.annotations
    assert [a.text for a in titles] == ["moving"]
    assert "betti0 = 1" in sections["your own"].note and not sections["your own"].figures


# -- a trained run ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from jgeo.experiment import run
    from jgeo.train import make_config

    out = tmp_path_factory.mktemp("page") / "run"
    run(make_config(RUN), out, progress=False)
    return out


@pytest.mark.slow
def test_the_page_is_one_self_contained_file(trained):
    page = trained / "index.html"
    text = page.read_text()
    assert page.stat().st_size < 5e6
    # Nothing is fetched: no script, image, style or frame from elsewhere.
    assert not re.search(r"<(script|img|link|iframe)[^>]*\b(src|href)=", text)
    assert "<th>step</th>" in text and text.count("<tr>") == 1 + RUN["epochs"]
    drawn = figures(trained)
    assert {"final", "codes", "scalars-geometry", "scalars-training"} <= drawn.keys()
    # The latent map's slider has a frame per probe; hover images sit beside the map.
    assert len(drawn["codes"].frames) == RUN["epochs"]
    assert 'id="final-decoded"' in text


@pytest.mark.slow
def test_report_redraws_from_stored_results(trained, capsys):
    assert results_current(trained)
    report = (trained / "report.json").stat().st_mtime_ns
    assert main(["report", str(trained)]) == 0
    assert "redrew the page from report.json and report.npz" in capsys.readouterr().out
    assert (trained / "report.json").stat().st_mtime_ns == report  # not recomputed
    config = json.loads((trained / "config.json").read_text())
    (trained / "config.json").write_text(json.dumps(config, indent=1))  # any change counts
    assert not results_current(trained)
    assert main(["report", str(trained)]) == 0
    assert "recon_mse" in capsys.readouterr().out and results_current(trained)


@pytest.mark.slow
def test_runs_side_by_side_share_one_page(trained, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "seed": 7}))
    assert main(["dynamics", str(trained), str(other), "--out", str(tmp_path / "both")]) == 0
    text = (tmp_path / "both" / "index.html").read_text()
    assert "they differ in <b>seed</b>" in text and "seed 7" in text
    drawn = figures([trained, other])
    geometry = drawn["scalars-geometry"]
    assert {t.name for t in geometry.data} == {"seed 0", "seed 7"}
    titles = [a.text for a in drawn["codes"].layout.annotations]  # a column per run
    assert [t.split(":")[0] for t in titles] == ["seed 0", "seed 7"] * 2


# -- in a browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from browser import Chromium, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium: run .ci/install-browser (Debian's chromium package)")
    with Chromium(executable, width=1300, height=1400) as chromium:
        yield chromium


_DRAWN = (
    'document.body.dataset.drawn || document.getElementById("status").textContent.startsWith("The")'
)


def _png_pixels(data: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(data), format="png")


@pytest.mark.slow
def test_the_page_renders_in_a_browser_from_a_lone_copy(trained, browser, tmp_path):
    alone = tmp_path / "copy" / "page.html"  # no sibling files: figures/ and the data are gone
    alone.parent.mkdir()
    shutil.copy(trained / "index.html", alone)
    browser.open(alone, _DRAWN)
    assert browser.evaluate('document.getElementById("status").textContent') == ""
    assert browser.errors == []
    # A plot's points are the run's dynamics.jsonl.
    record = dynamics.load(trained)
    traces = browser.evaluate(
        'document.getElementById("scalars-geometry")._fullData.map('
        "(t) => [t.meta.key, Array.from(t.x), Array.from(t.y)])"
    )
    assert traces
    for key, x, y in traces:
        kept = np.isfinite(record.series(key))
        np.testing.assert_array_equal(x, record.arrays["epochs"][kept])
        np.testing.assert_allclose(y, record.series(key)[kept], rtol=1e-12)
    # Hovering a code shows its data image and the decoded one.
    point = browser.evaluate(
        '(() => { const d = document.getElementById("final"); d.scrollIntoView();'
        " const t = d._fullData[1], xa = d._fullLayout.xaxis, ya = d._fullLayout.yaxis,"
        " b = d.getBoundingClientRect();"
        " return [b.left + xa._offset + xa.l2p(t.x[3]), b.top + ya._offset + ya.l2p(t.y[3])]; })()"
    )
    browser.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": point[0], "y": point[1]},
                 session=True)  # fmt: skip
    browser.wait('document.getElementById("final-decoded").width === 8', timeout=10)
    shot = _png_pixels(browser.screenshot())
    assert shot.shape[0] == 1400 and shot[..., :3].std() > 0.05  # not blank
    assert len(np.unique(shot[..., :3].reshape(-1, 3), axis=0)) > 100
