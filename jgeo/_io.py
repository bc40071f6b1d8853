"""Files written so that no interruption leaves a half-written one, by one writer.

In a multi-host run (`jax.distributed.initialize`) every process runs the same program;
run files are written by process 0 alone, so processes sharing a file system never race
on the same file. Orbax checkpoints are the exception: every process takes part in them.
"""

import contextlib
import dataclasses
import io
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax

try:  # POSIX advisory locks; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


class RunError(Exception):
    """A run directory, option or file that cannot be used as asked. The command line
    prints the message (which names the problem and the fix) and exits with code 2."""


class RunLocked(RunError):
    """Another live process is writing the run directory."""


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


@contextlib.contextmanager
def _on_sigint(handler):
    """Ctrl-C (SIGINT) calls `handler` inside the block, then the previous handler is
    back. Python delivers signals to the main thread only: elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def deferred_interrupt():
    """Hold Ctrl-C (SIGINT) back until the block ends, then raise `KeyboardInterrupt`: a
    checkpoint and its manifest are written whole, not left half-sealed with an orbax
    traceback. Only in the main thread (where Python delivers signals)."""
    caught = []
    with _on_sigint(lambda *_: caught.append(True)):
        yield
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def remembered_interrupts():
    """Ctrl-C raises `KeyboardInterrupt` as usual, and is remembered: the block gets a
    `check()` that raises it again. Python drops an exception raised inside a garbage
    collector callback (jax registers one) or a `__del__` after printing it, so a signal
    landing there would otherwise be lost and a long run would go on; calling `check()`
    at each safe point (an epoch's end) stops it there. Only in the main thread."""
    seen = []

    def handler(*_):
        seen.append(True)
        raise KeyboardInterrupt

    def check():
        if seen:
            raise KeyboardInterrupt

    with _on_sigint(handler):
        yield check


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """A matplotlib figure written atomically (format from the suffix), then closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip("."), dpi=dpi)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


_INT_LIMIT = 2**63  # integers in run files are int64: a longer one is damage


def is_int(value) -> bool:
    """An integer as jgeo writes one to a JSON run file: not a bool, within int64."""
    return type(value) is int and -_INT_LIMIT <= value < _INT_LIMIT


def is_scalar(value) -> bool:
    """A value as jgeo writes one in a row: a number (NaN and ±inf included), None (not
    measured there) or a bool."""
    return value is None or type(value) in (bool, float) or is_int(value)


def read_jsonl_rows(
    path: Path, *, order: str, required: Sequence[str], damaged: Callable[[int, str], RunError]
) -> list[dict]:
    """The rows of a JSONL file of scalars as jgeo writes them (`metrics.jsonl`,
    `dynamics.jsonl`), checked: each line a UTF-8 JSON object with the keys of the first
    row and the `required` ones, integer `step` and `epoch` where present, increasing
    `order`, and every value a scalar (`is_scalar`). Blank lines are skipped.

    **Raises:** the error `damaged(line_number, why)` makes, naming the line's problem.
    """
    rows: list[dict] = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
            raise damaged(number, "is truncated or not JSON") from None
        if not isinstance(row, dict):
            raise damaged(number, f"is not a row (a {type(row).__name__})")
        if rows and row.keys() != rows[0].keys():
            missing = ", ".join(sorted(rows[0].keys() - row.keys())) or "none"
            extra = ", ".join(sorted(row.keys() - rows[0].keys())) or "none"
            raise damaged(
                number, f"has other keys than the first row (missing: {missing}; extra: {extra})"
            )
        if absent := [k for k in required if k not in row]:
            raise damaged(number, f"is not a row (no {', '.join(absent)})")
        for key, value in row.items():
            if key in ("step", "epoch") and not is_int(value):
                raise damaged(number, f"has {key} {short(value)}, not an integer")
            if not is_scalar(value):
                raise damaged(number, f"has {key!r} = {short(value)}, not a number, null or bool")
        if rows and row[order] <= rows[-1][order]:
            raise damaged(number, f"goes back to {order} {row[order]}")
        rows.append(row)
    return rows


def short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


LOCK = ".lock"


@dataclasses.dataclass
class _Hold:
    """A run directory held by this process: by `command`, and lent to `borrower`."""

    command: str
    lends: bool
    borrower: str | None = None


_held: dict[Path, _Hold] = {}  # lock path → its holder in this process


@contextlib.contextmanager
def run_lock(directory: Path, command: str, *, create: bool = True, lend: bool = False):
    """Hold the run directory `directory` for one writer, creating it if `create`.

    An exclusive `flock` on `directory/.lock`, which the kernel releases when the process
    ends in any way (kill -9 too), so a dead writer never leaves a stale lock. The file
    says who holds it: another process is refused with `RunLocked` naming the holder.
    Within this process a second holder is refused the same way (two `Recorder`s on one
    directory would each rewrite the other's files), except that a holder opened with
    `lend=True` lends the directory to one holder inside it: `jgeo train` lends its run
    directory to the run's own `Recorder`. On processes other than the writer, a no-op.

    **Raises:** `RunLocked`; `RunError` if the directory cannot be created or written.
    """
    path = Path(directory).absolute() / LOCK
    if not is_writer():
        yield
        return
    if (hold := _held.get(path)) is not None:
        if not hold.lends or hold.borrower is not None:
            raise RunLocked(
                f"{path.parent} is in use by `{hold.borrower or hold.command}` in this process; "
                "close that first (a Recorder's `close()`, the end of its `with` block), or "
                "choose another directory."
            )
        hold.borrower = command
        try:
            yield
        finally:
            hold.borrower = None
        return
    if not create and not path.parent.is_dir():
        raise RunError(f"{path.parent} is not a jgeo run directory (it does not exist).")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunError(
            f"cannot use {path.parent} as a run directory: {reason(error)}; choose a "
            "writable --out directory."
        ) from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RunLocked(
                    f"{path.parent} is in use by another jgeo process ({_holder(path)}); wait "
                    "for it to finish or stop it, or choose another --out directory."
                ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        _held[path] = _Hold(command, lend)
        try:
            yield
        finally:
            del _held[path]
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text())
        return f"`{h['command']}`, pid {h['pid']} on {h['host']}, since {h['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def reason(error: OSError) -> str:
    """An OSError as one short clause: its message and the path it names."""
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or error}{where}"
