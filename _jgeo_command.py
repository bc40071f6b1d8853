"""The console entry point of the `jgeo` command (`[project.scripts]`).

A module of its own, outside the `jgeo` package, so that it runs before jgeo is
imported: importing jgeo (jax, equinox, diffrax, ...) takes seconds, and a Ctrl-C in
them would otherwise print a traceback, or be dropped in jax's garbage-collector callback
and let the command run to its end. Here Ctrl-C is only remembered until `jgeo.cli.main`
takes over, which then ends the command with exit code 130 and one line.
"""

import os
import signal
import sys


class _Remember:
    """A SIGINT handler that notes the signal and raises nothing."""

    interrupted = False

    def __call__(self, signum, frame) -> None:
        self.interrupted = True


def main() -> int:
    early = _Remember()
    signal.signal(signal.SIGINT, early)
    from jgeo.cli import main as command

    code = command(interrupted=lambda: early.interrupted)
    if code == 130:
        # CPython (3.11) marks a KeyboardInterrupt that passed through `exec`'d code
        # (dataclasses and namedtuples make their methods so, on import) as unhandled even
        # once caught, and then ends the process by SIGINT instead of with this exit code.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
