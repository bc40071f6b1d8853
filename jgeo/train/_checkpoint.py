"""Checkpoints with orbax, sealed by a manifest.

Orbax writes each step to a temporary directory and renames it when complete, so an
interrupted save never replaces the last good checkpoint. It does not notice damage
afterwards: bytes changed inside a data file load as wrong numbers. So every step gets
a manifest, `checkpoints/STEP/jgeo_manifest.json`, written atomically once orbax has
finished: the SHA-256 of every file of the step, the configuration the run was
trained with, and the SHA-256 of those (so that a damaged manifest is caught too). A
step whose files do not match its manifest (or that has none: the process died between
the two writes, or whose manifest is damaged) is damaged; a run resumes from the newest
step that verifies, and a report never reads a damaged one.
"""

import contextlib
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from .._io import RunError, is_writer, write_atomic

MANIFEST = "jgeo_manifest.json"


class CheckpointError(RunError, RuntimeError):
    """A checkpoint that cannot be read; the command line exits with code 2."""


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sealed(manifest: dict) -> str:
    """The SHA-256 of a manifest's `step`, `config` and `files` (canonical JSON, as
    they read back from the file)."""
    body = {k: manifest[k] for k in ("step", "config", "files")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _manifest_problem(manifest, step: int) -> str | None:
    """What is wrong with the structure of `step`'s manifest (None if nothing): a dict
    of `step`, `config` (a dict), `files` (relative path → SHA-256) and `sha256`, the
    checksum of the other three (absent from the manifests of older jgeo versions)."""
    if not isinstance(manifest, dict):
        return f"a {type(manifest).__name__}, not a manifest"
    keys = set(manifest)
    if keys - {"sha256"} != {"step", "config", "files"}:
        return f"keys {sorted(keys)}, not step, config, files and sha256"
    if type(manifest["step"]) is not int or manifest["step"] != step:
        return f"step {manifest['step']!r} in the manifest of step {step}"
    if not isinstance(manifest["config"], dict):
        return "its config is not a table of keys"
    files = manifest["files"]
    if not isinstance(files, dict) or not all(
        isinstance(d, str) and _SHA256.fullmatch(d) for d in files.values()
    ):
        return "its files are not paths with SHA-256 checksums"
    if "sha256" in manifest and manifest["sha256"] != _sealed(manifest):
        return "it does not match its own checksum"
    return None


@contextlib.contextmanager
def _orbax_log_held(drop: bool = False):
    """Hold back what orbax logs (through absl's logger) inside the block: on a full disk
    its background threads log pages of tracebacks before the save raises, and the
    `CheckpointError` says it in one line. Dropped if the block raises or `drop`; else
    its warnings and errors are logged after the block."""
    held = []
    logger = logging.getLogger("absl")

    class Hold(logging.Filter):
        def filter(self, record):
            held.append(record)
            return False

    hold = Hold()
    logger.addFilter(hold)
    try:
        yield
    except BaseException:
        drop = True
        raise
    finally:
        logger.removeFilter(hold)
        for record in [] if drop else held:
            if record.levelno >= logging.WARNING:
                logger.handle(record)


def _digests(step_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under `step_dir` but the manifest, by relative path."""
    digests = {}
    for path in sorted(step_dir.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            digests[path.relative_to(step_dir).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return digests


class Checkpoints:
    """The `checkpoints/` directory of a run: steps named by the epoch they completed,
    the last `keep` kept, and with `keep_every` every step divisible by it too, each
    sealed by a manifest holding the run's configuration (and the SHA-256 of every
    file), so that a damaged one is found before it is restored.

    **Arguments:**

    - `directory`: the run's `checkpoints/` directory (created at the first save).
    - `keep`: how many of the newest checkpoints to keep.
    - `keep_every`: also keep every step divisible by it (0: none).
    """

    def __init__(self, directory: str | Path, keep: int = 2, keep_every: int = 0):
        self.directory = Path(directory).absolute()
        self.keep, self.keep_every = keep, keep_every
        self._manager = None  # opened on first use: scanning creates nothing
        self._failed = False  # a save failed (and said so): orbax's logs add nothing

    @property
    def manager(self) -> ocp.CheckpointManager:
        if self._manager is None:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.keep, keep_period=self.keep_every or None, create=True
            )
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        return self._manager

    def steps(self) -> list[int]:
        """The steps on disk, newest first (orbax's unfinished temporaries and hidden
        files excluded).

        **Raises:** `CheckpointError` naming anything else in the directory: a step is a
        directory named by its number (`12`, not `012` or `12x`), and orbax, which lists
        the directory too, must not meet anything else there; and `checkpoints` itself
        if it is not a directory."""
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(
                f"{self.directory} is a file, not the run's checkpoint directory: move it out "
                "of the way (restore the directory if you have it), then rerun the command."
            )
        if not self.directory.is_dir():
            return []
        steps = []
        for path in self.directory.iterdir():
            name = path.name
            if name.startswith(".") or ".orbax-checkpoint-tmp" in name:
                continue
            if not (re.fullmatch(r"0|[1-9][0-9]*", name) and path.is_dir()):
                raise CheckpointError(
                    f"{path} is not a checkpoint step (a directory named by its epoch, like "
                    f"12). Move it out of {self.directory}, then rerun the command."
                )
            steps.append(int(name))
        return sorted(steps, reverse=True)

    def problem(self, step: int) -> str | None:
        """What is wrong with `step` (None if its files match its manifest and the
        manifest matches its own checksum)."""
        step_dir = self.directory / str(step)
        try:
            manifest = json.loads((step_dir / MANIFEST).read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return "it has no manifest (the process stopped before sealing it)"
        except (OSError, ValueError, RecursionError) as error:
            return f"its manifest is unreadable ({type(error).__name__})"
        if (problem := _manifest_problem(manifest, step)) is not None:
            return f"its manifest is damaged ({problem})"
        expected = manifest["files"]
        actual = _digests(step_dir)
        for name in sorted(expected.keys() | actual.keys()):
            if name not in actual:
                return f"file {name} is missing"
            if name not in expected:
                return f"file {name} is not in its manifest"
            if actual[name] != expected[name]:
                return f"file {name} does not match its checksum"
        return None

    def config(self, step: int) -> dict:
        """The configuration stored in `step`'s manifest.

        **Raises:** `CheckpointError` if the manifest is unreadable or damaged."""
        path = self.directory / str(step) / MANIFEST
        try:
            manifest = json.loads(path.read_bytes().decode("utf-8"))
            problem = _manifest_problem(manifest, step)
        except (OSError, ValueError, RecursionError) as error:
            problem = f"unreadable: {type(error).__name__}"
        if problem is not None:
            raise CheckpointError(
                f"{path} is damaged ({problem}). Delete that step's directory to resume from "
                "an earlier one, or use a new --out directory."
            )
        return manifest["config"]

    def newest_sound(self) -> tuple[int | None, list[tuple[int, str]]]:
        """The newest step that verifies (None if no step does), and the damaged steps
        newer than it as (step, problem)."""
        damaged = []
        for step in self.steps():
            problem = self.problem(step)
            if problem is None:
                return step, damaged
            damaged.append((step, problem))
        return None, damaged

    def set_aside(self, step: int, place: Path) -> Path:
        """Move the damaged `step` to `place/STEP` (kept for inspection, out of orbax's
        way, so that the step can be trained and saved again)."""
        target = place / str(step)
        if is_writer():
            place.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            (self.directory / str(step)).rename(target)
        return target

    def remove_unfinished(self) -> None:
        """Delete the temporaries of saves that never finished (the process was killed
        in one): orbax would delete each when saving its step again, with a warning."""
        if not (is_writer() and self.directory.is_dir()):
            return
        for path in self.directory.iterdir():
            if ".orbax-checkpoint-tmp" not in path.name:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def save(self, step: int, tree, config: dict) -> None:
        """Save `tree` at `step` and seal it with a manifest holding `config`.

        **Raises:** `CheckpointError` if the disk lacks room for it (checked first: orbax
        fails on a full disk in its background threads, with pages of tracebacks) or the
        write fails."""
        self._check_space(step, tree)
        try:
            with _orbax_log_held():
                self.manager.save(step, args=ocp.args.StandardSave(tree))
                self.manager.wait_until_finished()
            step_dir = self.directory / str(step)
            # sealed as it reads back (tuples as lists)
            manifest = json.loads(json.dumps({"step": step, "config": config,
                                              "files": _digests(step_dir)}))  # fmt: skip
            manifest["sha256"] = _sealed(manifest)
            write_atomic(step_dir / MANIFEST, json.dumps(manifest, indent=1))
        except Exception as error:  # a full or read-only disk surfaces as many types
            self._failed = True
            raise CheckpointError(
                f"checkpoint {step} could not be written to {self.directory} "
                f"({type(error).__name__}: {str(error)[:200]}). Free space or fix the file "
                "system, then rerun the same command: it resumes from the last checkpoint."
            ) from None

    def _check_space(self, step: int, tree) -> None:
        needed = 2 * sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(tree)) + 2**20
        self.directory.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise CheckpointError(
                f"no room for checkpoint {step} in {self.directory}: {free / 2**20:.1f} MiB "
                f"free, about {needed / 2**20:.1f} MiB needed. Free space, then rerun the "
                "same command: it resumes from the last checkpoint."
            )

    def restore(self, step: int, like):
        """The tree saved at `step`, with the structure of `like`."""
        try:
            with _orbax_log_held():
                return self.manager.restore(step, args=ocp.args.StandardRestore(like))
        except Exception as error:  # orbax raises many types for damaged files
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} cannot be read ({type(error).__name__}: "
                f"{str(error)[:200]}). Delete that step's directory to resume from an earlier "
                "one, or use a new --out directory."
            ) from None

    def close(self) -> None:
        if self._manager is not None:
            try:
                with _orbax_log_held(drop=self._failed):
                    self._manager.close()
            except Exception:  # a failed save was reported already; closing adds nothing
                pass
