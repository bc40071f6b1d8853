"""Class labels checked once, the same way for every class measure and every loader."""

import operator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

# Labels become int32 class indices (jax's default integer without x64) and index arrays
# of num_classes rows, so a label and num_classes both stay below 2³¹ − 1.
LABEL_LIMIT = 2**31 - 1


def _num_classes(num_classes) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, jax.core.Tracer):
        raise ValueError(
            "`num_classes` must be a static Python int, got a traced value: mark it static "
            "(e.g. `functools.partial(f, num_classes=3)` before `jax.jit`)."
        )
    try:
        if isinstance(num_classes, bool):
            raise TypeError
        value = operator.index(num_classes)
    except TypeError:
        raise ValueError(f"`num_classes` must be an int, got {num_classes!r}.") from None
    if not 1 <= value <= LABEL_LIMIT:
        raise ValueError(f"`num_classes` must be in [1, 2**31 - 1], got {value}.")
    return value


def class_labels(
    labels: ArrayLike, n: int, num_classes: int | None = None, *, name: str = "labels"
) -> tuple[Array | np.ndarray, int]:
    """Check class labels: one integer per point, in [0, num_classes).

    There is no "unlabelled" value: −1 (scikit-learn's mark for an unlabelled sample) is
    refused like any other label outside the range, since a class measure would
    otherwise drop or miscount those points silently. Drop unlabelled points before.

    Concrete labels (NumPy, lists, concrete jax arrays) are checked on the host, before
    any conversion: a label beyond int32 (2³² + 1, which jax without x64 would truncate
    to 1) is refused, never wrapped. Traced labels (under `jax.jit` or `jax.vmap`) are
    checked at run time with `eqx.error_if`, which raises `eqx.EquinoxRuntimeError`
    (set `EQX_ON_ERROR=nan` to turn it off); their values cannot be named there.

    One limit no check inside a function can lift: without x64, jax converts an int64
    argument of a jitted function to int32 at the jit boundary, silently and before jgeo
    sees it, so a NumPy int64 label beyond int32 passed to a function under `jax.jit`
    arrives wrapped (2³² + 1 as 1, a valid class) and is counted in that class. Pass such
    labels to the measure outside `jax.jit` (they are checked there), or enable x64.

    **Arguments:**

    - `labels`: shape (n,), integers (signed or unsigned) or booleans (classes 0 and 1).
    - `n`: the number of points the labels belong to.
    - `num_classes`: a static int in [1, 2³¹ − 1]; None takes `max(labels) + 1`
      (concrete labels only).
    - `name`: the argument's name in error messages.

    **Returns:** `(labels, num_classes)`: the labels as int32 — a NumPy array for NumPy
    or list input, a jax array for jax input — and the number of classes.

    **Raises:** `ValueError` for a wrong shape or dtype, for `num_classes` missing under
    `jax.jit` or not an int in range, and for labels outside [0, num_classes), naming a
    few of them and how many points carry one, e.g. "`labels` must be in
    [0, num_classes = 3): found 7 (1 point)."
    """
    num_classes = _num_classes(num_classes)
    if isinstance(labels, jax.core.Tracer):
        if labels.shape != (n,) or not (
            jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_
        ):
            raise ValueError(
                f"`{name}` must be integer classes of shape ({n},), got {labels.dtype} "
                f"{labels.shape}."
            )
        if num_classes is None:
            raise ValueError(
                f"under jax.jit, pass `num_classes` (a static int): the number of classes "
                f"cannot be read from traced `{name}`."
            )
        bad = jnp.any((labels < 0) | (labels >= num_classes))
        labels = eqx.error_if(
            labels,
            bad,
            f"`{name}` must be in [0, num_classes = {num_classes}): found a label outside "
            f"it (its value cannot be shown under jax.jit; call without jit to see it).",
        )
        return labels.astype(jnp.int32), num_classes
    was_jax = isinstance(labels, jax.Array)
    values = np.asarray(labels)
    if values.shape != (n,) or values.dtype.kind not in "iub":
        raise ValueError(
            f"`{name}` must be integer classes of shape ({n},), got {values.dtype} {values.shape}."
        )
    values = values.astype(np.int64) if values.dtype.kind == "b" else values
    limit = LABEL_LIMIT if num_classes is None else num_classes
    bad = (values < 0) | (values >= limit)
    if np.any(bad):
        found = np.unique(values[bad])
        shown = ", ".join(str(v) for v in found[:5]) + (", …" if len(found) > 5 else "")
        count = int(np.sum(bad))
        where = "2**31 - 1" if num_classes is None else f"num_classes = {num_classes}"
        hint = (
            "; -1 does not mark unlabelled points here: drop them"
            if np.any(found == -1) and found.dtype.kind == "i"
            else ""
        )
        raise ValueError(
            f"`{name}` must be in [0, {where}): found {shown} "
            f"({count} point{'' if count == 1 else 's'}){hint}."
        )
    if num_classes is None:
        num_classes = int(values.max()) + 1 if values.size else 0
    if was_jax:
        return jnp.asarray(labels).astype(jnp.int32), num_classes
    return values.astype(np.int32), num_classes
