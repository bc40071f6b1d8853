"""mkdocs hook: the notebooks live in `notebooks/` at the repository root (where the test
suite runs them); the site includes them from there instead of keeping a copy."""

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


@event_priority(100)  # before mkdocs-jupyter's on_files, which renders them
def on_files(files, config):
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{path.name}",
                src_dir=str(NOTEBOOKS.parent),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    return files
