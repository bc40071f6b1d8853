"""The learning-dynamics notebooks (04, 05, 06) run top to bottom with `JGEO_QUICK=1`
(apart from tests/test_notebooks.py, so that two test processes share the notebooks)."""

from pathlib import Path

import pytest
from helpers import run_notebook

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("0[456]_*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)
