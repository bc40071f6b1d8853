"""What importing jgeo costs: the core loads no application stack, and the library
imports under `python -OO` (docstrings stripped). One interpreter answers both."""

import importlib
import inspect
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

HEAVY = ["flax", "orbax", "sklearn", "matplotlib", "ripser", "jgeo.train", "jgeo.dynamics"]
SCRIPT = f"""
import json, sys
import jgeo
lean = [m for m in {HEAVY!r} if m in sys.modules]
import jgeo.train, jgeo.dynamics, jgeo.report, jgeo.experiment
# jgeo.landscape and jgeo.representation load on first use, as attributes of jgeo.
lazy = [jgeo.landscape.__name__, jgeo.representation.__name__]
print(json.dumps({{"loaded_by_import_jgeo": lean, "lazy": lazy}}))
"""


@pytest.fixture(scope="module")
def imported():
    done = subprocess.run([sys.executable, "-OO", "-c", SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_jgeo_loads_no_application_stack(imported):
    assert imported["loaded_by_import_jgeo"] == []


@pytest.mark.slow
def test_every_package_imports_without_docstrings(imported):
    assert imported["lazy"] == ["jgeo.landscape", "jgeo.representation"]


def test_the_core_declares_no_application_dependency():
    # `pip install jgeo` is the core; the application is the `train` extra, which the
    # test, bench and notebooks extras pull in.
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=\[ ;]", d)[0] for d in project["dependencies"]}
    application = {re.split(r"[<>=\[ ;]", d)[0] for d in project["optional-dependencies"]["train"]}
    assert application == {
        "flax",
        "orbax-checkpoint",
        "scikit-learn",
        "matplotlib",
        "tqdm",
        "ripser",
        "plotly",
    }
    assert core.isdisjoint(application) and "lineax" in core  # jgeo.metric_operator's
    for extra in ["test", "bench", "notebooks"]:
        assert "jgeo[train]" in project["optional-dependencies"][extra]


CORE_MODULES = ["diagnostics", "landscape", "optim", "regularizers", "representation", "sharding",
                "stats"]  # fmt: skip
# Public modules implemented by more than one private module.
PRIVATE = {"representation": ["jgeo._similarity"]}


@pytest.mark.parametrize("name", CORE_MODULES)
def test_public_modules_export_only_their_own_api(name):
    # `jgeo.regularizers.Pullback` or `jgeo.stats.jnp` would be imports leaking out: each
    # public module re-exports what its private implementation `jgeo._<name>` defines.
    module = importlib.import_module(f"jgeo.{name}")
    exported = [a for a in dir(module) if not a.startswith("__")]
    assert exported
    for attr in exported:
        value = getattr(module, attr)
        assert not inspect.ismodule(value), f"jgeo.{name}.{attr} is a module"
        own = {f"jgeo._{name}", *PRIVATE.get(name, ())}
        assert getattr(value, "__module__", f"jgeo._{name}") in own, attr
