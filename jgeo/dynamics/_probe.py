"""The probe protocol: one small extension point for every measurement of a
representation over training, as optax's `GradientTransformation` is for optimisers.

A probe is an `equinox.Module` whose `__call__` maps `ProbeInputs` (one layer's codes at
one step, and what they came from) to a dict of arrays. It is pure and jit-compatible:
the `Recorder` compiles every probe of every layer into one program. Scalars (shape ())
become the rows of `dynamics.jsonl`; other arrays are stacked over probes in
`dynamics.npz`. Two optional hooks: `prepare`, run once on the host when the layer's
shape is known (fixed pairs, random planes, ...), and `host`, run on the host after the
device part (persistent homology needs ripser). What a probe declares — `scalars` (how
the report draws each), `group`, `ragged` arrays, `per_layer` — is written to
`recorder.json`, and `jgeo dynamics` builds its panels from it.
"""

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


class Scalar(NamedTuple):
    """How `jgeo dynamics` draws one scalar a probe records.

    **Arguments:**

    - `title`: the panel's title.
    - `log`: a logarithmic axis.
    - `reference`: the name of another scalar of the same probe drawn in this panel as a
      dashed line (the landscape's 2/η beside the sharpness), or None.
    - `panel`: False for a scalar drawn only as another's reference.
    """

    title: str
    log: bool = False
    reference: str | None = None
    panel: bool = True


class ProbeInputs(eqx.Module):
    """What a probe sees of one layer at one step.

    **Fields:**

    - `codes`: the fixed samples' codes (S, d), one flattened vector per sample (the
      same samples at every step, so their trajectories and similarities compare).
    - `random_codes`: the codes (R, d) of a uniform random sample of the data, for
      statistics of the whole cloud (the fixed samples are spread too evenly).
    - `labels`, `random_labels`: their classes (S,), (R,) as int32, or None.
    - `num_classes`: the number of classes (labels lie in [0, num_classes)), 0 without.
    - `previous_codes`: the fixed samples' codes at the previous probe; at the first
      probe (`first` is True) the current codes, so that a probe needs one program.
    - `initial_codes`: the fixed samples' codes at the recording's first probe (the
      current codes there).
    - `first`: whether this is the first probe of the recording (or of a resumed one
      that does not record `codes`, whose earlier codes are then unknown).
    - `layers`: every probed layer's sample codes at this step, `{name: (S, d)}`: for
      probes across layers.
    - `params`: the parameters the loop passed (any pytree).
    - `decode`: `decode(z) -> x̂` of one code of this layer under `params`, or None
      where the layer has no decoder.
    - `key`: a JAX key, a deterministic function of the run's seed and `step`.
    - `step`: the step (an int32 scalar).
    - `layer`: the layer's name ("" for a single representation).
    """

    codes: Float[Array, "S d"]
    random_codes: Float[Array, "R d"]
    labels: Int[Array, " S"] | None
    random_labels: Int[Array, " R"] | None
    previous_codes: Float[Array, "S d"]
    initial_codes: Float[Array, "S d"]
    first: Bool[Array, ""]
    layers: dict[str, Array]
    params: Any
    decode: Callable | None
    key: PRNGKeyArray
    step: Int[Array, ""]
    num_classes: int = eqx.field(static=True)
    layer: str = eqx.field(static=True)


class Layout(NamedTuple):
    """What `AbstractProbe.prepare` knows of a layer before the first probe.

    **Fields:**

    - `layer`: its name ("" for a single representation); `dim`: its width d.
    - `samples`: the number S of fixed samples; `labels`: their classes (S,), or None;
      `num_classes`.
    - `decoded`: whether the layer has a decoder (`ProbeInputs.decode` is not None).
    - `every`: the Recorder's period; `seed`: the run's seed.
    - `rng`: a NumPy `Generator` in a state fixed by the seed and the data (the same for
      every probe), for choices that must stay fixed over the run (pairs, planes).
    - `sample_index`, `random_index`: the data indices of the fixed samples (S,) and of
      the random sample (R,): to line up codes of another network on the same inputs.
    """

    layer: str
    dim: int
    samples: int
    labels: np.ndarray | None
    num_classes: int
    decoded: bool
    every: int
    seed: int
    rng: np.random.Generator
    sample_index: np.ndarray
    random_index: np.ndarray


class AbstractProbe(eqx.Module):
    """A measurement of one layer's representation at one step: pure, jit-compatible,
    composed with others by a list (`Recorder(probes=[...])`).

    ```python
    class MeanNorm(jgeo.dynamics.AbstractProbe):
        def __call__(self, inputs: jgeo.dynamics.ProbeInputs) -> dict[str, jax.Array]:
            return {"mean_norm": jnp.linalg.norm(inputs.codes, axis=-1).mean()}
    ```

    A probe returns a dict of arrays: scalars (shape ()) are recorded in the rows of
    `dynamics.jsonl` (NaN, for "undefined here", as None), others in `dynamics.npz`,
    stacked over probes; a recording of several layers keys them `"<layer>/<name>"`.

    **Declarations** (class attributes, written to `recorder.json` for the report):

    - `scalars`: `{name: Scalar(title, log, reference)}` for the scalars it records
      (undeclared ones are drawn under their name).
    - `group`: the report's section ("geometry", "topology", "intrinsic dimension",
      "classes", "similarity", "landscape"; your own probes by default).
    - `ragged`: names of arrays whose first axis varies from probe to probe (persistence
      diagrams): stored concatenated, with the step in a first column.
    - `per_layer`: False for a probe of the parameters rather than of a layer (the loss
      landscape): it runs once per step, its names unprefixed.

    **Hooks** (optional): `prepare(layout)` returns the probe set up for one layer (or
    None where it does not apply, e.g. a decoder's probe on a layer without one), run
    once on the host; `host(outputs)` post-processes the device outputs as NumPy arrays
    on the host (ripser) and returns what is recorded.

    **Arguments:** what a probe is built from are its own fields (an `equinox.Module`
    dataclass); the base class has none.
    """

    scalars: ClassVar[Mapping[str, Scalar]] = {}
    group: ClassVar[str] = "your probes"
    ragged: ClassVar[frozenset[str]] = frozenset()
    per_layer: ClassVar[bool] = True

    @abc.abstractmethod
    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        """The measurement: a dict of arrays from one layer's `inputs`."""

    # The hooks below have defaults that most probes keep (an exception to the house rule
    # that concrete methods are not overridden: a probe overrides only what it needs).

    def prepare(self, layout: Layout) -> "AbstractProbe | None":
        """This probe set up for the layer `layout` describes, or None where it does
        not apply (default: as it is)."""
        return self

    def host(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """What to record, from the device outputs as NumPy arrays (default: them)."""
        return outputs

    def declaration(self) -> dict:
        """What this probe declares, as `recorder.json` stores it (`declare`), with its
        `options`: the fields it was built with that JSON holds (numbers, strings)."""
        options = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool | int | float | str | type(None)):
                options[field.name] = value
            elif isinstance(getattr(type(value), "name", None), str):  # a likelihood
                options[field.name] = type(value).name
        return {**declare(type(self)), "options": options}


def declare(cls: type[AbstractProbe]) -> dict:
    """What the probe class `cls` declares, as `recorder.json` stores it."""
    return {
        "probe": cls.__name__,
        "group": cls.group,
        "per_layer": cls.per_layer,
        "scalars": {name: s._asdict() for name, s in cls.scalars.items()},
        "ragged": sorted(cls.ragged),
        "options": {},
    }


_RAN = "__ran__"  # Every's flag, from its device part to its host part


class Every(AbstractProbe):
    """`probe` at the steps divisible by `n` only: the loss landscape costs more than the
    rest of a probe. At other steps it records nothing (None in the rows, NaN in its
    arrays); under `jax.jit` it is one `lax.cond`, so the program is compiled once.

    **Arguments:**

    - `n`: the period in steps, a multiple of the Recorder's `every`.
    - `probe`: the probe to run.
    """

    n: int = eqx.field(static=True)
    probe: AbstractProbe

    def __check_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 1:
            raise ValueError(f"`n` must be an integer ≥ 1, got {self.n!r}.")
        if not isinstance(self.probe, AbstractProbe):
            raise ValueError(f"`probe` must be a jgeo.dynamics.AbstractProbe, got {self.probe!r}.")

    def prepare(self, layout: Layout) -> "Every | None":
        if self.n % layout.every:
            raise ValueError(
                f"Every({self.n}, {type(self.probe).__name__}): {self.n} must be a multiple "
                f"of the Recorder's `every` ({layout.every}): it runs at a probe."
            )
        prepared = self.probe.prepare(layout)
        return None if prepared is None else Every(self.n, prepared)

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        shapes = eqx.filter_eval_shape(self.probe, inputs)
        skipped = lambda: {_RAN: jnp.array(False), **jax.tree.map(_nan_like, shapes)}  # noqa: E731
        ran = lambda: {_RAN: jnp.array(True), **self.probe(inputs)}  # noqa: E731
        return jax.lax.cond(inputs.step % self.n == 0, ran, skipped)

    def host(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        # Not measured at this step: nothing recorded (None in the rows, NaN in the arrays).
        outputs = dict(outputs)
        return self.probe.host(outputs) if outputs.pop(_RAN) else {}

    def declaration(self) -> dict:
        inner = self.probe.declaration()
        return {**inner, "options": {**inner["options"], "every": self.n}}


def _nan_like(shape: jax.ShapeDtypeStruct) -> Array:
    if jnp.issubdtype(shape.dtype, jnp.inexact):
        return jnp.full(shape.shape, jnp.nan, shape.dtype)
    return jnp.zeros(shape.shape, shape.dtype)
