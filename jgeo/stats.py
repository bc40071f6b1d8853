"""Statistics on a Riemannian manifold given by a metric: Fréchet means, geodesic
distance matrices and k-medoids, tangent PCA, geodesic interpolation.

Every function is jit-compatible and batches its geodesic solves with `vmap`. Log maps
are solved with `throw=False`: a pair that does not converge is reported (NaN distance,
`converged` False), never raised from the middle of a batch.
"""

from ._stats import (
    AbstractTier as AbstractTier,
    Exact as Exact,
    FrechetMean as FrechetMean,
    Graph as Graph,
    KMedoids as KMedoids,
    Refined as Refined,
    TangentPCA as TangentPCA,
    frechet_mean as frechet_mean,
    geodesic_interpolation as geodesic_interpolation,
    geodesic_kmedoids as geodesic_kmedoids,
    kmedoids as kmedoids,
    pairwise_distances as pairwise_distances,
    tangent_pca as tangent_pca,
)
