"""The documentation: the site builds offline in strict mode, every public function and
class is documented in one format and appears in the API reference, the examples run,
and the benchmark tables are the ones their results write."""

import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

import jgeo

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
# Every public module; the API reference has a page per area.
MODULES = [
    "jgeo", "jgeo.stats", "jgeo.optim", "jgeo.regularizers", "jgeo.diagnostics",
    "jgeo.sharding", "jgeo.representation", "jgeo.landscape", "jgeo.dynamics", "jgeo.nn",
    "jgeo.data", "jgeo.train", "jgeo.report", "jgeo.experiment",
]  # fmt: skip


def public_objects() -> dict:
    """Every public function and class, once, with all its public names
    (`jgeo.make_mesh` is `jgeo.sharding.make_mesh`)."""
    found: dict = {}
    for name in MODULES:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None) or [n for n in dir(module) if n[0] != "_"]
        for attr in names:
            obj = getattr(module, attr)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found.setdefault(id(obj), (obj, []))[1].append(f"{name}.{attr}")
    return {names[0]: (obj, set(names)) for obj, names in found.values()}


PUBLIC = public_objects()


def _undocumented(obj) -> str | None:
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return "no docstring"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return None  # raised, not called: a sentence says when
    if inspect.isclass(obj):
        if "**Arguments:**" not in doc and "**Fields:**" not in doc:
            return "a class needs **Arguments:** (what it is built from) or **Fields:**"
        return None
    missing = [s for s in ("**Arguments:**", "**Returns:**") if s not in doc]
    return f"missing {', '.join(missing)}" if missing else None


def test_every_public_callable_has_arguments_and_returns():
    problems = [f"{n}: {p}" for n, (o, _) in PUBLIC.items() if (p := _undocumented(o))]
    assert not problems, "\n".join(problems)


def test_every_public_callable_is_in_the_api_reference():
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: ([\w.]+)$", text, flags=re.M))
    missing = [name for name, (_, aliases) in PUBLIC.items() if not aliases & documented]
    assert not missing, f"add to docs/api/: {missing}"


def test_every_train_option_is_documented():
    # `jgeo train --help` against the CLI page: an option added without docs fails here.
    import argparse

    from jgeo.cli import _train_parser

    parser = _train_parser(argparse.ArgumentParser().add_subparsers())
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    text = (DOCS / "training.md").read_text()
    assert options - {"--help"}, "no options found"
    assert not [o for o in sorted(options - {"--help"}) if not re.search(f"`{o}[` ]", text)]


@pytest.mark.slow
def test_the_site_builds_offline_in_strict_mode(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                      "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    reference = (tmp_path / "api" / "kernels" / "index.html").read_text()
    assert "Rᵃ_bcd" in reference  # rendered from riemann's docstring
    assert (tmp_path / "notebooks" / "01_curvature" / "index.html").exists()


@pytest.mark.slow
def test_getting_started_examples_run():
    text = (DOCS / "index.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/index.md", "exec"), namespace)
    assert namespace["K_map"].shape == (32 * 32,) and jnp.all(jnp.isfinite(namespace["K_map"]))
    point = namespace["grid"][100]
    expected = jgeo.gaussian_curvature(namespace["metric"], point)
    assert jnp.allclose(namespace["K_map"][100], expected, rtol=1e-6)
    assert jnp.max(jnp.abs(namespace["grads"].layers[0].weight)) > 0
    sol, v = namespace["sol"], namespace["v"]
    assert bool(sol.converged)
    end = jgeo.exp_map(namespace["metric"], namespace["x"], v)
    assert jnp.allclose(end, namespace["y"], atol=1e-6)


@pytest.mark.parametrize("page", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))])  # fmt: skip
def test_benchmark_tables_are_written_from_their_results(page):
    spec = importlib.util.spec_from_file_location("tables", ROOT / "bench" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = (ROOT / page).read_text()
    assert tables.rewrite(text) == text, f"{page}: a bench table differs: run bench/tables.py"
