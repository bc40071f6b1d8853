"""The screenshots of docs/report.md, taken with headless Chromium (tests/browser.py)
from the pages of three finished runs (trained with the commands on that page):

    python docs/screenshots.py RUN_D2 RUN_D16 RUN_A RUN_B

Writes docs/images/report-*.png, each a figure of a page, reduced to a palette to keep
the repository small."""

import io
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from browser import Chromium, find_chromium  # noqa: E402

from jgeo.report import write_page  # noqa: E402

IMAGES = Path(__file__).parent / "images"
DRAWN = "document.body.dataset.drawn"


def save(png: bytes, name: str, width: int = 1000) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image = image.quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path = IMAGES / f"report-{name}.png"
    image.save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


def main() -> None:
    d2, d16, a, b = sys.argv[1:5]
    IMAGES.mkdir(exist_ok=True)
    shots = [("d2", [d2], ["final", "codes", "scalars-geometry"]),
             ("d16", [d16], ["final", "codes", "classes"]),
             ("side-by-side", [a, b], ["final", "scalars-geometry"])]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, Chromium(find_chromium(), 1300, 1000) as browser:
        for name, runs, elements in shots:
            page = write_page(runs, Path(tmp) / name)
            browser.open(page, DRAWN)
            assert not browser.errors, browser.errors
            for element in elements:
                save(browser.screenshot(element=element), f"{name}-{element}")


if __name__ == "__main__":
    main()
