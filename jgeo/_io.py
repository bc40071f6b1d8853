"""Files written so that no interruption leaves a half-written one, by one writer.

In a multi-host run (`jax.distributed.initialize`) every process runs the same program;
run files are written by process 0 alone, so processes sharing a file system never race
on the same file. Orbax checkpoints are the exception: every process takes part in them.
"""

import _weakrefset
import contextlib
import dataclasses
import gc
import io
import json
import os
import signal
import socket
import threading
import time
import weakref
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
def deferred_interrupt(*, raise_after: bool = True):
    """Hold Ctrl-C (SIGINT) back until the block ends, then raise `KeyboardInterrupt` (if
    `raise_after`; else it is only remembered, for the `check()` of an enclosing
    `remembered_interrupts`): a checkpoint and its manifest are written whole, not left
    half-sealed with an orbax traceback. Only in the main thread (where Python delivers
    signals)."""
    caught = []

    def hold(*_):
        _interrupts[0] += 1
        caught.append(True)

    with _on_sigint(hold):
        yield
    if caught and raise_after:
        raise KeyboardInterrupt
    if caught:
        _pending[0] += 1


# Ctrl-Cs seen in this process by the handlers here (main thread only); how many of them
# are pending: not raised yet (the next safe point raises them); and how many
# `remembered_interrupts` blocks are open (outside them, nothing is pending).
_interrupts, _pending, _depth = [0], [0], [0]
_WEAKREF_FILES = {weakref.__file__, _weakrefset.__file__}


def _drops_exceptions(frame) -> bool:
    """Whether `frame` runs inside code where Python prints an exception ("Exception
    ignored in ...") and drops it: a garbage-collector callback (jax registers one), a
    weak-reference callback or a `__del__`, or a function they call."""
    dropping = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        code = frame.f_code
        if code in dropping or code.co_name == "__del__" or code.co_filename in _WEAKREF_FILES:
            return True
        frame = frame.f_back
    return False


def _remember(signum, frame):
    _interrupts[0] += 1
    if _drops_exceptions(frame):
        _pending[0] += 1
        if _resender:  # a write to a pipe: safe in a signal handler (no lock)
            os.write(_resender[1], b"\0")
    else:
        _pending[0] = 0
        raise KeyboardInterrupt


_resender: list = []  # the pid that started the resender thread, and its pipe's write end


def _start_resender() -> None:
    """Start (once per process) the thread that sends a Ctrl-C which `_remember` could
    only remember back to this process 10 ms later: by then the callback it landed in
    has returned, so the signal is raised promptly instead of at the next safe point.
    (It cannot be sent from the handler itself: `os.kill` runs the handler again at once,
    still inside the callback.)"""
    if _resender and _resender[0] == os.getpid():
        return
    read, write = os.pipe()
    _resender[:] = [os.getpid(), write]
    threading.Thread(target=_resend, args=(read,), name="jgeo-ctrl-c", daemon=True).start()


def _resend(read: int) -> None:
    while os.read(read, 64):
        time.sleep(0.01)
        if _pending[0] and _depth[0]:
            os.kill(os.getpid(), signal.SIGINT)


@contextlib.contextmanager
def remembered_interrupts():
    """Ctrl-C raises `KeyboardInterrupt` as usual, and is remembered: the block gets a
    `check()` that raises it again. Where Python would drop the exception after printing
    it (a Ctrl-C landing in a garbage-collector callback, which jax registers, or in a
    weak-reference callback or a `__del__`), nothing is raised or printed there: it is
    remembered, and sent again once the callback has returned (`_start_resender`); and
    calling `check()` at each safe point (an epoch's end) stops the work there, so no
    Ctrl-C is lost. `check()` raises for a Ctrl-C seen since the block began (also
    one raised and swallowed: a callback's `except KeyboardInterrupt`), and for one still
    pending from before it (only remembered, in an enclosing block). Blocks nest: an outer
    `check()` sees the Ctrl-Cs an inner block saw. Only in the main thread."""
    seen = _interrupts[0]

    def check():
        if _interrupts[0] > seen:
            _pending[0] = 0
            raise KeyboardInterrupt
        raise_pending_interrupt()

    if threading.current_thread() is threading.main_thread():
        _start_resender()
    _depth[0] += 1
    try:
        with _on_sigint(_remember):
            yield check
    finally:
        _depth[0] -= 1
        if not _depth[0]:
            _pending[0] = 0


def raise_pending_interrupt() -> None:
    """A safe point: raise `KeyboardInterrupt` for a Ctrl-C that a `remembered_interrupts`
    block only remembered (it landed where Python drops exceptions), if there is one."""
    if _pending[0]:
        _pending[0] = 0
        raise KeyboardInterrupt


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """A matplotlib figure written atomically (format from the suffix), then closed; then
    a pending Ctrl-C (see `raise_pending_interrupt`) is raised."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip("."), dpi=dpi)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    raise_pending_interrupt()  # between figures: a report stops there on Ctrl-C


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
def run_lock(
    directory: Path, command: str, *, create: bool = True, lend: bool = False, borrow: bool = False
):
    """Hold the run directory `directory` for one writer, creating it if `create`.

    An exclusive `flock` on `directory/.lock`, which the kernel releases when the process
    ends in any way (kill -9 too), so a dead writer never leaves a stale lock. The file
    says who holds it: another process is refused with `RunLocked` naming the holder.
    Within this process a second holder is refused the same way (two `Recorder`s on one
    directory would each rewrite the other's files, as would a run started inside a
    run), except that a holder opened with `lend=True` lends the directory to one holder
    inside it that asks with `borrow=True`: `jgeo train` lends its run directory to the
    run's `Recorder`, whose files are its own. On processes other than the writer, a
    no-op.

    **Raises:** `RunLocked`; `RunError` if the directory cannot be created or written.
    """
    path = Path(directory).absolute() / LOCK
    if not is_writer():
        yield
        return
    if (hold := _held.get(path)) is not None:
        if not (hold.lends and borrow) or hold.borrower is not None:
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
