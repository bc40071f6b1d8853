"""The notebooks run top to bottom (small size, `JGEO_QUICK=1`), and are stored clean.

Each notebook asserts what it shows (closed forms, Gauss–Bonnet, which regularizer
lowers which measure, the topology found), so a notebook that runs but shows the wrong
thing fails here too.
"""

from pathlib import Path

import nbformat
import pytest
from helpers import run_notebook

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    names = [p.stem for p in NOTEBOOKS]
    assert names == [
        "01_curvature",
        "02_latent_geodesics",
        "03_regularized_training",
        "04_learning_dynamics",
        "05_your_own_model",
        "06_comparing_representations",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} is stored with outputs: clear them before committing."
            )


# The notebooks run in two files, so that the test processes share them (a file runs in
# one process): these three here, the learning-dynamics ones in test_notebooks_dynamics.py.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS[:3], ids=lambda p: p.stem)
def test_runs(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)
