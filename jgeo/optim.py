"""Optimisation on manifolds as optax transformations.

`riemannian_sgd` and `riemannian_adam` (Bécigneul & Ganea 2019) for parameters on the
`Sphere`, the `PoincareBall` or the `Stiefel` manifold: the Euclidean gradient becomes
the Riemannian gradient, the step is a retraction, and the moments are moved to the new
point by vector transport. `latent_natural_gradient` preconditions a latent-space
objective by a pullback metric.

optax adds updates to parameters, so a manifold update is returned as the difference
between the retracted point and the current one: `optax.apply_updates` then lands on
the manifold (to rounding). Each parameter leaf is one point of the manifold, or a
batch of points along its leading axes.
"""

from ._optim import (
    AbstractManifold as AbstractManifold,
    PoincareBall as PoincareBall,
    RiemannianAdamState as RiemannianAdamState,
    RiemannianSGDState as RiemannianSGDState,
    Sphere as Sphere,
    Stiefel as Stiefel,
    latent_natural_gradient as latent_natural_gradient,
    natural_gradient as natural_gradient,
    riemannian_adam as riemannian_adam,
    riemannian_sgd as riemannian_sgd,
)
