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
    packages = ("jgeo, jgeo.train, jgeo.dynamics, jgeo.report, jgeo.experiment, "
                "jgeo.representation, jgeo.landscape")  # fmt: skip
    subprocess.run([sys.executable, "-OO", "-c", f"import {packages}"], check=True)


def test_the_application_modules_load_on_first_use():
    code = "import jgeo; print(jgeo.landscape.__name__, jgeo.representation.__name__)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["jgeo.landscape", "jgeo.representation"]
