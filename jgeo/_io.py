"""Files written so that no interruption leaves a half-written one, by one writer.

In a multi-host run (`jax.distributed.initialize`) every process runs the same program;
run files are written by process 0 alone, so processes sharing a file system never race
on the same file. Orbax checkpoints are the exception: every process takes part in them.
"""

import io
import os
from pathlib import Path

import jax


def is_writer() -> bool:
    """Whether this process writes run files: process 0 (the only one on one host)."""
    return jax.process_index() == 0


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (an
    atomic replacement on POSIX and Windows): readers see the old or the new file.
    A no-op on processes other than the writer."""
    if not is_writer():
        return
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """A matplotlib figure written atomically (format from the suffix), then closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip("."), dpi=dpi)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
