"""The README: its usage example is the getting-started example the docs tests run, its
Quick start is the two lines CI runs, and it stays a front door. (Bench tables, if any:
tests/test_docs.py.)"""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_usage_example_is_the_one_the_docs_run():
    # tests/test_docs.py executes the getting-started page's examples and checks what they
    # compute; the README's usage example is the first of them, character for character.
    text = README.read_text()
    (example,) = re.findall(r"## Usage\n\n```python\n(.*?)```", text, flags=re.S)
    assert len(example.strip().splitlines()) <= 10
    docs = (README.parent / "docs" / "index.md").read_text()
    assert example == re.findall(r"```python\n(.*?)```", docs, flags=re.S)[0]


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
