"""Intrinsic dimension and rank of a layer's cloud of codes."""

from jaxtyping import Array

from .. import representation
from ._probe import AbstractProbe, ProbeInputs, Scalar


class IntrinsicDimension(AbstractProbe):
    """The intrinsic dimension of the random sample's codes by TwoNN (`id_twonn`, Facco
    et al. 2017) and by MLE over `k` neighbours (`id_mle`, Levina & Bickel 2004), from
    `jgeo.representation` (duplicated codes count once; NaN, None in the rows, where too
    few distinct codes remain).

    **Arguments:**

    - `k`: the neighbours of the MLE estimate (at most the sample size − 1).
    """

    k: int = 20
    scalars = {
        "id_twonn": Scalar("intrinsic dimension (TwoNN)"),
        "id_mle": Scalar("intrinsic dimension (MLE)"),
    }
    group = "intrinsic dimension"

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        codes = inputs.random_codes
        return {
            "id_twonn": representation.twonn_dimension(codes),
            "id_mle": representation.mle_dimension(codes, k=min(self.k, len(codes) - 1)),
        }


class Rank(AbstractProbe):
    """How many directions the random sample's codes spread over: the effective rank
    (`effective_rank`, Roy & Vetterli 2007) and the participation ratio
    (`participation_ratio`) of their singular values.

    **Arguments:** none."""

    scalars = {
        "effective_rank": Scalar("effective rank"),
        "participation_ratio": Scalar("participation ratio"),
    }
    group = "intrinsic dimension"

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        return {
            "effective_rank": representation.effective_rank(inputs.random_codes),
            "participation_ratio": representation.participation_ratio(inputs.random_codes),
        }
