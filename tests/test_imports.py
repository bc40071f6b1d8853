"""What importing jgeo costs: the core loads no application stack, and the library
imports under `python -OO` (docstrings stripped)."""

import subprocess
import sys


def test_import_jgeo_loads_no_application_stack():
    heavy = ["flax", "orbax", "sklearn", "matplotlib", "ripser", "jgeo.train", "jgeo.dynamics"]
    code = f"import sys, jgeo; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_every_package_imports_without_docstrings():
    packages = "jgeo, jgeo.train, jgeo.dynamics, jgeo.report, jgeo.experiment"
    # jgeo.landscape and jgeo.representation load on first use, as attributes of jgeo.
    code = f"import {packages}; print(jgeo.landscape.__name__, jgeo.representation.__name__)"
    out = subprocess.run([sys.executable, "-OO", "-c", code], check=True, capture_output=True,
                         text=True)  # fmt: skip
    assert out.stdout.split() == ["jgeo.landscape", "jgeo.representation"]
