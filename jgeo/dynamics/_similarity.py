"""How far a representation moved: since the previous probe, since the first, from a
reference network's, and how the layers resemble each other."""

from collections.abc import Callable, Mapping
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .. import representation
from ._probe import AbstractProbe, Layout, ProbeInputs, Scalar
from ._store import DynamicsError, key, load


class CKAToPrevious(AbstractProbe):
    """Linear CKA (`jgeo.representation.linear_cka`) between the fixed samples' codes
    and their codes at the previous probe, `cka_previous`: 1 when the representation
    only rotated or rescaled since, lower the more it changed shape (Kornblith et al.
    2019; layers settle bottom-up, Raghu et al. 2017). None at the first probe.

    `Similarity()` records the same `cka_previous` and more; this probe stays for the
    recordings made with it.

    **Arguments:** none."""

    scalars = {"cka_previous": Scalar("linear CKA to previous probe")}
    group = "similarity"

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        cka = representation.linear_cka(inputs.previous_codes, inputs.codes)
        return {"cka_previous": jnp.where(inputs.first, jnp.nan, cka)}


_TITLES = {
    "previous": "to previous probe",
    "initial": "to first probe",
    "reference": "to reference",
}


class Similarity(AbstractProbe):
    """Similarity of each layer's representation of the fixed samples (Kornblith et al.
    2019; Raghu et al. 2017, who saw layers settle bottom-up):

    - `cka_previous`: linear CKA to its codes at the previous probe (None at the first):
      how much it still changes — the same number `CKAToPrevious` records;
    - `cka_initial`: to its codes at the recording's first probe (None there);
    - `cka_reference`: to a reference representation of the same inputs — another seed,
      width or architecture, a brain recording — where `reference` gives one;
    - `cka_layers` (an array, with several layers): linear CKA of this layer to every
      probed layer, in the order of their sorted names: row by row, the layer × layer
      matrix at each probe, which `jgeo dynamics` draws as heat maps.

    Other measures by option: `measures={"cka": linear_cka, "procrustes":
    representation.procrustes_distance}` records `procrustes_previous`, ... too (any
    function (x, y) → scalar of `jgeo.representation` or your own; each must run under
    `jax.jit`). How each layer approaches its *final* state — the convergence plot of
    `jgeo dynamics` — is computed from the recorded `codes` afterwards (the final state
    is not known while recording).

    **Arguments:**

    - `measures`: `{name: measure(x, y) -> scalar}`; default `{"cka": linear_cka}`.
    - `previous`, `initial`: record the `*_previous` and `*_initial` scalars.
    - `layers`: record `cka_layers` when several layers are probed.
    - `reference`: the reference codes, lined up with the Recorder's `data` by the fixed
      samples' indices (`Layout.sample_index`): an array (N, ...) of the reference's
      code of every input of `data` (a single probed layer, or every layer compared with
      it), a dict `{layer: array (N, ...)}` (a layer without an entry records no
      reference), or the directory of another recording of the same data (a `Recorder`,
      `jgeo train` or `jgeo probe`), whose last probe's `codes` of the layer of the same
      name are the reference. None: no reference.
    """

    measures: dict[str, Callable] = eqx.field(static=True)
    previous: bool = eqx.field(static=True)
    initial: bool = eqx.field(static=True)
    layers: bool = eqx.field(static=True)
    reference: object  # what the user gave; None once prepared
    reference_codes: Float[Array, "S r"] | None

    scalars = {f"cka_{when}": Scalar(f"linear CKA {title}") for when, title in _TITLES.items()}
    group = "similarity"

    def __init__(
        self,
        measures: Mapping[str, Callable] | None = None,
        *,
        previous: bool = True,
        initial: bool = True,
        layers: bool = True,
        reference=None,
        reference_codes=None,
    ):
        measures = {"cka": representation.linear_cka} if measures is None else dict(measures)
        for name, measure in measures.items():
            if not (isinstance(name, str) and name.isidentifier() and callable(measure)):
                raise ValueError(
                    "`measures` must map names (identifiers: they prefix the recorded "
                    f"scalars) to functions measure(x, y) -> scalar, got {name!r}: {measure!r}."
                )
        if not measures:
            raise ValueError("`measures` must name at least one measure.")
        for name, value in (("previous", previous), ("initial", initial), ("layers", layers)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be True or False, got {value!r}.")
        self.measures, self.previous, self.initial, self.layers = (
            measures,
            previous,
            initial,
            layers,
        )
        self.reference = str(reference) if isinstance(reference, Path) else reference
        self.reference_codes = reference_codes

    def declaration(self) -> dict:
        # The scalars of the measures this probe was given, each drawn in its panel.
        declared = super().declaration()
        scalars = {}
        for name in self.measures:
            label = "linear CKA" if self.measures[name] is representation.linear_cka else name
            for when, title in _TITLES.items():
                scalars[f"{name}_{when}"] = Scalar(f"{label} {title}")._asdict()
        options = {k: v for k, v in declared["options"].items() if k != "reference_codes"}
        options["measures"] = ",".join(self.measures)
        if self.reference is not None and not isinstance(self.reference, str):
            options["reference"] = "codes"
        return {**declared, "scalars": scalars, "options": options}

    def prepare(self, layout: Layout) -> "Similarity":
        codes = None if self.reference is None else _reference(self.reference, layout)
        return Similarity(
            self.measures, previous=self.previous, initial=self.initial, layers=self.layers,
            reference=None, reference_codes=None if codes is None else jnp.asarray(codes),
        )  # fmt: skip

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        codes, out = inputs.codes, {}
        for name, measure in self.measures.items():
            if self.previous:
                value = measure(inputs.previous_codes, codes)
                out[f"{name}_previous"] = jnp.where(inputs.first, jnp.nan, value)
            if self.initial:
                value = measure(inputs.initial_codes, codes)
                out[f"{name}_initial"] = jnp.where(inputs.first, jnp.nan, value)
            if self.reference_codes is not None:
                out[f"{name}_reference"] = measure(self.reference_codes, codes)
        if self.layers and len(inputs.layers) > 1:
            others = [inputs.layers[name] for name in sorted(inputs.layers)]
            out["cka_layers"] = jnp.stack([representation.linear_cka(codes, o) for o in others])
        return out


def _reference(reference, layout: Layout) -> np.ndarray | None:
    """The reference codes (S, r) of the fixed samples of `layout`'s layer, or None
    where the reference has none for it."""
    where = f"layer {layout.layer!r}" if layout.layer else "the codes"
    if isinstance(reference, str):
        return _recorded(Path(reference), layout)
    if isinstance(reference, Mapping):
        if layout.layer not in reference:
            return None
        reference = reference[layout.layer]
    try:
        codes = np.asarray(reference)
    except Exception as error:
        raise ValueError(f"`reference` for {where} is not an array: {error}") from None
    if codes.ndim < 2 or not np.issubdtype(codes.dtype, np.number):
        raise ValueError(
            f"`reference` for {where} must be an array (N, ...) of numbers with the "
            f"reference's code of every input of `data`, got shape {codes.shape}, "
            f"dtype {codes.dtype}."
        )
    needed = int(np.max(layout.sample_index)) + 1
    if len(codes) < needed:
        raise ValueError(
            f"`reference` for {where} holds {len(codes)} codes, but the fixed samples are "
            f"inputs up to index {needed - 1} of `data`: give the codes of every input, "
            "in the order of `data`."
        )
    codes = codes[layout.sample_index].reshape(len(layout.sample_index), -1)
    if not np.all(np.isfinite(codes)):
        raise ValueError(f"`reference` for {where} holds NaN or infinite values.")
    return codes


def _recorded(directory: Path, layout: Layout) -> np.ndarray | None:
    """The last probe's codes of `layout`'s layer in the recording `directory`, at the
    fixed samples of `layout` (which it must have probed)."""
    try:
        recorded = load(directory)
    except DynamicsError as error:
        raise ValueError(f"`reference` {directory}: {error}") from None
    if layout.layer not in recorded.layers:
        return None
    codes = recorded.arrays.get(key("codes", layout.layer))
    if codes is None:
        raise ValueError(
            f"`reference` {directory} holds no codes of layer {layout.layer or 'its codes'!r}: "
            "record it with the `Codes()` probe (in the default probes)."
        )
    theirs = recorded.arrays["sample_index"]
    position = {int(i): p for p, i in enumerate(theirs)}
    missing = [int(i) for i in layout.sample_index if int(i) not in position]
    if missing:
        raise ValueError(
            f"`reference` {directory} did not probe inputs {missing[:5]} of `data` that "
            "this recording's fixed samples are: record both with the same data, "
            "`samples` and `seed`, or give the reference's codes as an array."
        )
    return codes[-1][[position[int(i)] for i in layout.sample_index]]
