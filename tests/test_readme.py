"""The README's usage example runs as written and computes what it says."""

import importlib.util
import re
from pathlib import Path

import jax.numpy as jnp

import jgeo

README = Path(__file__).parents[1] / "README.md"


def test_usage_example_runs():
    text = README.read_text()
    (example,) = re.findall(r"## Usage\n\n```python\n(.*?)```", text, flags=re.S)
    assert len(example.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["K_map"].shape == (32 * 32,)
    assert jnp.all(jnp.isfinite(namespace["K_map"]))
    point = namespace["grid"][100]
    expected = jgeo.gaussian_curvature(namespace["metric"], point)
    assert jnp.allclose(namespace["K_map"][100], expected, rtol=1e-6)
    grads = namespace["grads"]
    assert jnp.max(jnp.abs(grads.layers[0].weight)) > 0


def test_quick_start_is_two_lines():
    text = README.read_text()
    (block,) = re.findall(r"## Quick start\n\n```bash\n(.*?)```", text, flags=re.S)
    install, test = block.strip().splitlines()
    assert '".[train]"' in install and install.endswith("jgeo train")  # the application extra
    assert '".[test]"' in test and "pytest" in test


def test_benchmark_tables_are_written_from_their_results():
    # Numbers in the README's bench tables come from bench/results/*.json by script.
    spec = importlib.util.spec_from_file_location("tables", README.parent / "bench" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = README.read_text()
    assert tables.BLOCK.search(text), "the README has no bench table"
    assert tables.rewrite(text) == text, "a bench table differs: run `python bench/tables.py`"
