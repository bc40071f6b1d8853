"""Class structure of a layer: neural collapse, and the geometry between classes."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from .. import EnergyBVP, likelihoods, representation
from ._geometry import as_likelihood, latent_metric
from ._probe import AbstractProbe, Layout, ProbeInputs, Scalar


def _needs_labels(probe: AbstractProbe, layout: Layout) -> None:
    if layout.labels is None:
        raise ValueError(
            f"{type(probe).__name__} needs class labels: pass `labels` to the Recorder (or "
            "a jgeo.data.Dataset with labels as its `data`)."
        )


class ClassStructure(AbstractProbe):
    """How the classes sit in the random sample's codes: NC1 = tr(Σ_W Σ_B⁺)/C, the
    within-class variability against the spread of the class means (`nc1`, Papyan et al.
    2020: it falls towards 0 as the classes collapse), and the accuracy of the nearest
    class mean (`ncc_accuracy`), from `jgeo.representation`. It needs labels: the
    Recorder's indices of the distinct labels, in the data's proportions.

    **Arguments:** none."""

    scalars = {
        "nc1": Scalar("NC1 (within / between classes)", log=True),
        "ncc_accuracy": Scalar("nearest-centroid accuracy"),
    }
    group = "classes"

    def prepare(self, layout: Layout) -> "ClassStructure":
        _needs_labels(self, layout)
        return self

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        codes, labels, classes = inputs.random_codes, inputs.random_labels, inputs.num_classes
        return {
            "nc1": representation.class_separation(codes, labels, classes).nc1,
            "ncc_accuracy": representation.nearest_centroid_accuracy(codes, labels, classes),
        }


class ClassGeodesics(AbstractProbe):
    """The geometry between the classes of the fixed samples under the decoder's metric
    (`jgeo.representation.class_geodesics` around the class coordinate means): the (C, C)
    geodesic and Euclidean distances between class centres and the log-volume barrier
    along each geodesic (`class_distances`, `class_distances_euclidean`,
    `class_barrier`), and the ratio of distance between classes to spread within them
    under the metric and in coordinates (`class_ratio`, `class_ratio_euclidean`). It
    costs C(C − 1)/2 + S geodesic solves a probe: not among the defaults.

    **Arguments:**

    - `likelihood`: as for `PullbackGeometry`.
    - `points`, `rtol`: points and tolerance of the minimal-energy geodesics.
    """

    likelihood: likelihoods.AbstractLikelihood | None = eqx.field(
        default=None, converter=as_likelihood
    )
    points: int = 8
    rtol: float = 1e-3
    scalars = {
        "class_ratio": Scalar("between / within classes, metric"),
        "class_ratio_euclidean": Scalar("between / within classes, coordinates"),
    }
    group = "classes"

    def prepare(self, layout: Layout) -> "ClassGeodesics | None":
        _needs_labels(self, layout)
        return self if layout.decoded else None

    def __call__(self, inputs: ProbeInputs) -> dict[str, Array]:
        metric = latent_metric(inputs.decode, self.likelihood)
        between = representation.class_geodesics(
            metric, inputs.codes, inputs.labels, inputs.num_classes, frechet_steps=0,
            num_points=self.points, solver=EnergyBVP(), rtol=self.rtol,
        )  # fmt: skip
        return {
            "class_distances": between.distances,
            "class_distances_euclidean": between.euclidean,
            "class_barrier": between.barrier,
            "class_ratio": jnp.asarray(between.ratio),
            "class_ratio_euclidean": jnp.asarray(between.euclidean_ratio),
        }
