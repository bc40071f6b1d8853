"""The callback protocol of `jgeo.train.train`, in the core so that the packages that
implement it (`jgeo.dynamics.Recorder`) need not import the training loop."""

import abc
from collections.abc import Callable
from typing import Any


class Callback(abc.ABC):
    """What `jgeo.train.train` calls besides the training itself (a
    `jgeo.dynamics.Recorder` is one). Subclass it and implement `__call__`; `start`
    and `close` do nothing unless overridden.

    A plain function `fn(step, params, *, epoch)` passed as a callback is wrapped in
    one with no `start` or `close`.

    **Arguments:** none here: a subclass is built from what it needs.
    """

    def start(self, step: int, params: Any) -> None:
        """Called once before the first epoch, with the step of the checkpoint training
        resumes from (0 for a new run) and its parameters: a callback that records
        something drops what it recorded after that step."""

    @abc.abstractmethod
    def __call__(self, step: int, params: Any, *, epoch: int) -> Any:
        """Called after every epoch, before its checkpoint is written.

        **Arguments:**

        - `step`: optimiser steps so far.
        - `params`: the model's state as a pure dict of arrays (`nnx.to_pure_dict`;
          `nnx.merge(graphdef, ...)` of the run's model gives the model back).
        - `epoch`: the epoch just finished (from 1).
        """

    def close(self) -> None:
        """Called once when training ends, by completion, an error or Ctrl-C."""


class _Function(Callback):
    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, step: int, params: Any, *, epoch: int) -> Any:
        return self.fn(step, params, epoch=epoch)


def as_callback(callback: Any, name: str = "callbacks") -> Callback:
    """`callback` as a `Callback`: itself, or a plain function wrapped.

    **Raises:** `TypeError` naming `name` for what is not callable, and for an object
    with `start` or `close` methods that is no `Callback` (they would not be called)."""
    if isinstance(callback, Callback):
        return callback
    if not callable(callback):
        raise TypeError(
            f"`{name}` must hold jgeo.train.Callback objects or functions "
            f"fn(step, params, *, epoch), got {type(callback).__name__}."
        )
    if any(callable(getattr(callback, hook, None)) for hook in ("start", "close")):
        raise TypeError(
            f"`{name}`: {type(callback).__name__} has `start`/`close` methods but is no "
            "jgeo.train.Callback, so they would not be called: subclass jgeo.train.Callback."
        )
    return _Function(callback)
