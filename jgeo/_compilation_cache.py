"""JAX's persistent compilation cache, opt-in: XLA programs written to a directory and
loaded by later processes instead of compiled again.

`import jgeo` never turns it on (a library should not write to the user's disk
unasked); the `jgeo` command does, unless `JGEO_COMPILATION_CACHE=0`.
"""

import os
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache

# Programs that compile faster than this are not written: reading an entry back costs a
# few milliseconds, and the many small programs around a solve would fill the directory.
_MIN_COMPILE_TIME_SECS = 0.2
_OFF = ("0", "false", "no", "off")


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/jgeo/xla`, or `~/.cache/jgeo/xla` where XDG_CACHE_HOME is unset."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "jgeo" / "xla"


def enable_compilation_cache(
    path: str | os.PathLike | None = None,
    *,
    min_compile_time_secs: float = _MIN_COMPILE_TIME_SECS,
) -> Path | None:
    """Turn on JAX's persistent compilation cache, so that a program compiled in one
    process is loaded from disk by the next instead of compiled again.

    Off unless called: `import jgeo` writes nothing. The `jgeo` command calls it at
    start-up. What it saves depends on the program: XLA does not write programs that
    call back into Python (`jax.pure_callback`), and the run-time error checks of
    equinox (`eqx.error_if`, which jgeo's kernels and diffrax's solves use) are such
    callbacks; and tracing is never cached. The FAQ ("Why is the first call so slow?")
    and the benchmarks page give the measured effect.

    **Arguments:**

    - `path`: the cache directory, created if missing. None: the directory JAX is
      already configured with (`JAX_COMPILATION_CACHE_DIR` or
      `jax.config.jax_compilation_cache_dir`, which then keeps its own settings), else
      `$XDG_CACHE_HOME/jgeo/xla` (`~/.cache/jgeo/xla`).
    - `min_compile_time_secs`: programs that compile in less time are not written
      (JAX's `jax_persistent_cache_min_compile_time_secs`, whose own default is 1 s).

    **Returns:** the cache directory, or None where the environment variable
    `JGEO_COMPILATION_CACHE` is `0` (or `false`, `no`, `off`): then nothing is changed.
    The directory only grows; delete it to clear the cache.

    **Raises:** `OSError` if the directory cannot be created; `ValueError` for a
    `min_compile_time_secs` that is not a finite number ≥ 0.
    """
    if (
        isinstance(min_compile_time_secs, bool)
        or not isinstance(min_compile_time_secs, int | float)
        or not 0 <= min_compile_time_secs < float("inf")
    ):
        raise ValueError(
            f"`min_compile_time_secs` must be a finite number of seconds ≥ 0, got "
            f"{min_compile_time_secs!r}."
        )
    if os.environ.get("JGEO_COMPILATION_CACHE", "").strip().lower() in _OFF:
        return None
    configured = jax.config.jax_compilation_cache_dir
    if path is None and configured:
        return Path(configured)
    path = Path(default_cache_dir() if path is None else path).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    if configured != str(path):
        jax.config.update("jax_compilation_cache_dir", str(path))
        # JAX opens its cache once, at the first compilation with a directory set; a
        # new directory needs a fresh start.
        compilation_cache.reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    return path


def enable_for_command() -> Path | None:
    """The `jgeo` command's cache: `enable_compilation_cache()`, so that
    `JGEO_COMPILATION_CACHE=0` turns it off and a `JAX_COMPILATION_CACHE_DIR` wins.

    Loading a program from the cache makes XLA log on stderr, once per program: a
    warning ("Assume version compatibility") and, on CPUs with AVX-512, two errors that
    are not ("Target machine feature +prefer-no-gather is not supported", jax#38445: a
    tuning flag mistaken for a missing instruction set; the program loads and runs). The
    command's stderr is for its own one-line errors, so while the cache is on XLA's C++
    log keeps fatal messages only, unless `TF_CPP_MIN_LOG_LEVEL` is set to another level
    than 1 (which `import jax` sets where it is unset). A directory that cannot be made
    (no home, a read-only disk) leaves the cache off: the command runs as without it.
    """
    try:
        path = enable_compilation_cache()
    except (OSError, RuntimeError):  # RuntimeError: Path.home() without a home
        return None
    if path is not None and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1") == "1":
        _quiet_xla_log()
    return path


def _quiet_xla_log() -> None:
    # The environment variable is read when jaxlib loads, before `main` runs; this sets
    # the same threshold afterwards (as `jax_logging_level` does, without also silencing
    # JAX's Python loggers).
    try:
        from jax._src.lib import utils
    except ImportError:
        return
    set_level = getattr(utils, "absl_set_min_log_level", None)
    if set_level is not None:
        set_level(3)
