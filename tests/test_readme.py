"""The README: its usage example runs as written and computes what it says, and its
Quick start is the two lines CI runs. (Its bench tables, if any: tests/test_docs.py.)"""

import re
from pathlib import Path

import jax.numpy as jnp
import pytest

import jgeo

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
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


def test_readme_stays_a_front_door():
    # The reference lives in docs/; the README says what jgeo is and links there.
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (README.parent / link).exists(), link
