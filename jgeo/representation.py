"""Semantic structure of a representation: how many dimensions it uses, how its classes
separate and collapse, how it changed, and which latent directions a decoder uses.

Pure functions of a point cloud `z` (N, d) — and, for the class measures, integer
`labels` (N,) in [0, num_classes) — that run under `jax.jit` (`num_classes` and the
`k`s are static; pass `num_classes` under jit, outside it defaults to `max(labels) + 1`).
A class without points in `z` is left out of every class measure.

Nothing is dropped or miscounted quietly. A label outside [0, num_classes) — negative
(−1 does not mean "unlabelled" here), too large, or beyond int32 — raises `ValueError`
naming the bad values, checked before any conversion could truncate them; under `jit`
it raises `eqx.EquinoxRuntimeError` at run time. An answer the data leave undefined is
NaN, with the reason in the function's docstring (NC1 with fewer than two classes; an
intrinsic dimension with too few distinct points); duplicate points are counted once by
the intrinsic-dimension estimators.

- Intrinsic dimension: `twonn_dimension` (Facco et al. 2017), `mle_dimension`
  (Levina & Bickel 2004, averaged as MacKay & Ghahramani 2005).
- Spread over directions: `effective_rank` (Roy & Vetterli 2007; RankMe),
  `participation_ratio`.
- Comparison of two representations of the same inputs, (N, D₁) and (N, D₂)
  (across checkpoints, layers, seeds, architectures; see the guide "Comparing
  representations"): `cka` (linear or RBF, biased or debiased; Kornblith et al. 2019),
  `linear_cka` (its biased linear case), `cca_correlations`, `svcca` (Raghu et al.
  2017), `pwcca` (Morcos et al. 2018), `shape_distance` and `procrustes_distance`
  (Williams et al. 2021), `rsa` (Kriegeskorte et al. 2008), `information_imbalance`
  (Glielmo et al. 2022); and `gride_dimension` (Denti et al. 2022). Wide layers are
  fed to the Gram matrices in chunks of features.
- Classes: `class_separation` (within/between scatter and neural collapse NC1, Papyan
  et al. 2020), `nearest_centroid_accuracy`, `knn_accuracy`.
- Decoders: `active_dimensions`, the local rank of a decoder's Jacobian.
- Between classes, under a metric: `class_geodesics` (class centres, geodesic distances
  and the barrier of log-volume or decoder uncertainty between them).
- Under a metric, per point: `local_spectrum` (the top eigenvalues of a decoder's
  pullback or of a classifier head's Fisher metric on a hidden layer, their decay and
  the effective number of directions), matrix-free for wide layers.
"""

from ._representation import (
    ClassGeodesics as ClassGeodesics,
    ClassSeparation as ClassSeparation,
    LocalSpectrum as LocalSpectrum,
    active_dimensions as active_dimensions,
    class_geodesics as class_geodesics,
    class_separation as class_separation,
    effective_rank as effective_rank,
    knn_accuracy as knn_accuracy,
    local_spectrum as local_spectrum,
    mle_dimension as mle_dimension,
    nearest_centroid_accuracy as nearest_centroid_accuracy,
    participation_ratio as participation_ratio,
    twonn_dimension as twonn_dimension,
)
from ._similarity import (
    cca_correlations as cca_correlations,
    cka as cka,
    gride_dimension as gride_dimension,
    information_imbalance as information_imbalance,
    linear_cka as linear_cka,
    procrustes_distance as procrustes_distance,
    pwcca as pwcca,
    rsa as rsa,
    shape_distance as shape_distance,
    svcca as svcca,
)
