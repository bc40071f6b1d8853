"""Files written so that no interruption leaves a half-written one, by one writer.

In a multi-host run (`jax.distributed.initialize`) every process runs the same program;
run files are written by process 0 alone, so processes sharing a file system never race
on the same file. Orbax checkpoints are the exception: every process takes part in them.
"""

import contextlib
import io
import json
import os
import signal
import socket
import threading
import time
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


LOCK = ".lock"
_held: dict[Path, int] = {}  # lock path → depth, so the holder may lock again


@contextlib.contextmanager
def run_lock(directory: Path, command: str, *, create: bool = True):
    """Hold the run directory `directory` for one writer, creating it if `create`.

    An exclusive `flock` on `directory/.lock`, which the kernel releases when the process
    ends in any way (kill -9 too), so a dead writer never leaves a stale lock. The file
    says who holds it: another process is refused with `RunLocked` naming the holder.
    Re-entrant within a process. On processes other than the writer, a no-op.

    **Raises:** `RunLocked`; `RunError` if the directory cannot be created or written.
    """
    path = Path(directory).absolute() / LOCK
    if not is_writer() or fcntl is None or path in _held:
        _held[path] = _held.get(path, 0) + 1
        try:
            yield
        finally:
            _held[path] -= 1
            if not _held[path]:
                del _held[path]
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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunLocked(
                f"{path.parent} is in use by another jgeo process ({_holder(path)}); wait for "
                "it to finish or stop it, or choose another --out directory."
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        _held[path] = 1
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
