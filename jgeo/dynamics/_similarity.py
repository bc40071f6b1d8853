"""How far a representation moved since the previous probe."""

import jax.numpy as jnp
from jaxtyping import Array

from .. import representation
from ._probe import AbstractProbe, ProbeInputs, Scalar


class CKAToPrevious(AbstractProbe):
    """Linear CKA (`jgeo.representation.linear_cka`) between the fixed samples' codes
    and their codes at the previous probe, `cka_previous`: 1 when the representation
    only rotated or rescaled since, lower the more it changed shape (Kornblith et al.
    2019; layers settle bottom-up, Raghu et al. 2017). None at the first probe.

    **Arguments:** none."""

    scalars = {"cka_previous": Scalar("linear CKA to previous probe")}
    group = "similarity"

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        cka = representation.linear_cka(inputs.previous_codes, inputs.codes)
        return {"cka_previous": jnp.where(inputs.first, jnp.nan, cka)}
