"""Checkpoints with orbax: written to a temporary directory and renamed when complete,
so an interrupted save never replaces the last good checkpoint."""

from pathlib import Path

import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the command line exits with code 2."""


class Checkpoints:
    """The `checkpoints/` directory of a run: one step per completed epoch, the last
    `keep` kept."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, tree) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(tree))
        self._manager.wait_until_finished()

    def restore(self, step: int, like):
        """The tree saved at `step`, with the structure of `like`."""
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(like))
        except Exception as error:  # orbax raises many types for damaged files
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} cannot be read ({type(error).__name__}: "
                f"{str(error)[:200]}). Delete that step's directory to resume from an earlier "
                "one, or use a new --out directory."
            ) from None

    def close(self) -> None:
        self._manager.close()
