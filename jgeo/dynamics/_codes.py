"""The codes of the fixed samples: their trajectories through the representation."""

from jaxtyping import Array

from ._probe import AbstractProbe, ProbeInputs


class Codes(AbstractProbe):
    """Records the fixed samples' codes (S, d) at every probe, as `codes` in
    `dynamics.npz`: their trajectories over training, which `jgeo dynamics` draws (and,
    in a `jgeo train` run, measures under the final metric).

    **Arguments:** none."""

    group = "trajectories"

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        return {"codes": inputs.codes}
