"""`jgeo.optim` (documented there): optimisation on manifolds as optax transformations."""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._metrics import AbstractMetric


def _dot(u, v):
    return jnp.sum(u * v, axis=-1, keepdims=True)


class AbstractManifold(eqx.Module):
    """A manifold embedded in a Euclidean space, for parameters (not a latent metric).

    Subclasses give the projection of a Euclidean gradient to the Riemannian gradient, a
    retraction (or the exponential map) and a vector transport; `riemannian_sgd` and
    `riemannian_adam` use nothing else.

    **Arguments:** those of the subclass (none, or `margin` for the Poincaré ball).
    """

    def project(self, x, u):
        """Orthogonal projection of an ambient vector u onto the tangent space at x."""
        raise NotImplementedError

    def egrad_to_rgrad(self, x, g):
        """The Riemannian gradient from the Euclidean gradient g at x."""
        return self.project(x, g)

    def inner(self, x, u, v):
        """⟨u, v⟩ₓ per point (keeps a trailing axis of size 1)."""
        raise NotImplementedError

    def retract(self, x, u):
        """A retraction R_x(u): a point of the manifold, first-order exp_x(u)."""
        raise NotImplementedError

    def transport(self, x, y, u):
        """Vector transport of u ∈ TₓM to T_yM."""
        return self.project(y, u)

    def distance_to_manifold(self, x):
        """How far x is from satisfying the manifold's equation (0 on it)."""
        raise NotImplementedError


class Sphere(AbstractManifold):
    """The unit sphere ‖x‖ = 1 along the last axis, with the exponential map.

    **Arguments:** none.
    """

    def project(self, x, u):
        return u - _dot(x, u) * x

    def inner(self, x, u, v):
        return _dot(u, v)

    def retract(self, x, u):
        norm = jnp.linalg.norm(u, axis=-1, keepdims=True)
        safe = jnp.where(norm > 0, norm, 1.0)
        y = jnp.cos(norm) * x + jnp.sin(norm) * u / safe
        return y / jnp.linalg.norm(y, axis=-1, keepdims=True)  # stay on it to rounding

    def distance_to_manifold(self, x):
        return jnp.max(jnp.abs(jnp.linalg.norm(x, axis=-1) - 1))


def _mobius_add(u, v):
    uv, uu, vv = _dot(u, v), _dot(u, u), _dot(v, v)
    return ((1 + 2 * uv + vv) * u + (1 - uu) * v) / (1 + 2 * uv + uu * vv)


class PoincareBall(AbstractManifold):
    """The Poincaré ball ‖x‖ < 1 (curvature −1, metric λₓ² I with λₓ = 2 / (1 − ‖x‖²))
    along the last axis: exponential map by Möbius addition, parallel transport by
    gyration (Ganea et al. 2018).

    **Arguments:**

    - `margin`: points are kept within `margin` of the boundary (1e-5).
    """

    margin: float = 1e-5

    def _lambda(self, x):
        return 2 / (1 - _dot(x, x))

    def project(self, x, u):
        return u

    def egrad_to_rgrad(self, x, g):
        return g / self._lambda(x) ** 2

    def inner(self, x, u, v):
        return self._lambda(x) ** 2 * _dot(u, v)

    def _clip(self, x):
        norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
        limit = 1 - self.margin
        return jnp.where(norm > limit, x * limit / norm, x)

    def retract(self, x, u):
        norm = jnp.linalg.norm(u, axis=-1, keepdims=True)
        safe = jnp.where(norm > 0, norm, 1.0)
        step = jnp.tanh(self._lambda(x) * norm / 2) * u / safe
        return self._clip(_mobius_add(x, step))

    def transport(self, x, y, u):
        # P_{x→y}(u) = (λₓ / λ_y) gyr[y, −x] u, gyr[a, b]w = ⊖(a ⊕ b) ⊕ (a ⊕ (b ⊕ w))
        gyr = _mobius_add(-_mobius_add(y, -x), _mobius_add(y, _mobius_add(-x, u)))
        return self._lambda(x) / self._lambda(y) * gyr

    def distance_to_manifold(self, x):
        return jnp.maximum(jnp.max(jnp.linalg.norm(x, axis=-1)) - (1 - self.margin), 0.0)


class Stiefel(AbstractManifold):
    """Matrices X (…, n, p) with orthonormal columns, XᵀX = I, with the embedded metric
    and the QR retraction.

    **Arguments:** none.
    """

    def project(self, x, u):
        xtu = jnp.swapaxes(x, -1, -2) @ u
        return u - x @ (0.5 * (xtu + jnp.swapaxes(xtu, -1, -2)))

    def inner(self, x, u, v):
        return jnp.sum(u * v, axis=(-2, -1))[..., None]

    def retract(self, x, u):
        q, r = jnp.linalg.qr(x + u)
        signs = jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))
        return q * jnp.where(signs == 0, 1.0, signs)[..., None, :]

    def distance_to_manifold(self, x):
        p = x.shape[-1]
        return jnp.max(jnp.abs(jnp.swapaxes(x, -1, -2) @ x - jnp.eye(p, dtype=x.dtype)))


def _expand(v, x):
    """A per-point scalar (…, 1) broadcastable against the points x."""
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _unzip(tree, n: int):
    """A tree of n-tuples → n trees."""
    is_tuple = lambda o: isinstance(o, tuple)  # noqa: E731
    return tuple(jax.tree.map(lambda o: o[i], tree, is_leaf=is_tuple) for i in range(n))


def _schedule(learning_rate):
    return learning_rate if callable(learning_rate) else (lambda _: learning_rate)


class RiemannianSGDState(NamedTuple):
    """The state of `riemannian_sgd`.

    **Fields:**

    - `count`: steps taken.
    - `momentum`: the momentum, a tangent vector at each current point (a pytree like the
      parameters).
    """

    count: jax.Array
    momentum: optax.Params


def riemannian_sgd(
    learning_rate: float | Callable, manifold: AbstractManifold, momentum: float = 0.0
) -> optax.GradientTransformation:
    """Riemannian gradient descent x ← R_x(−η (momentum-averaged) grad f), the momentum
    transported to each new point.

    **Arguments:**

    - `learning_rate`: η, a float or an optax schedule `step -> η`.
    - `manifold`: `Sphere()`, `PoincareBall()` or `Stiefel()`; every parameter leaf is a
      point of it (or a batch of points along its leading axes).
    - `momentum`: heavy-ball coefficient in [0, 1) (0: plain descent).

    **Returns:** an `optax.GradientTransformation`. Its `update` takes the Euclidean
    gradients and needs `params`; the updates are the differences between the retracted
    points and the current ones, so `optax.apply_updates` lands on the manifold.
    """
    lr = _schedule(learning_rate)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return RiemannianSGDState(jnp.zeros((), jnp.int32), zeros)

    def update(grads, state, params):
        if params is None:
            raise ValueError("riemannian_sgd needs `params` in update(grads, state, params).")
        eta = lr(state.count)

        def leaf(g, m, x):
            rgrad = manifold.egrad_to_rgrad(x, g)
            m = momentum * m + rgrad
            y = manifold.retract(x, -eta * m)
            return y - x, manifold.transport(x, y, m)

        updates, moments = _unzip(jax.tree.map(leaf, grads, state.momentum, params), 2)
        return updates, RiemannianSGDState(state.count + 1, moments)

    return optax.GradientTransformation(init, update)


class RiemannianAdamState(NamedTuple):
    """The state of `riemannian_adam`.

    **Fields:**

    - `count`: steps taken.
    - `mu`: the first moment, a tangent vector at each current point.
    - `nu`: the second moment, the squared Riemannian norm of the gradient per manifold
      point.
    """

    count: jax.Array
    mu: optax.Params  # first moment: a tangent vector at the current point
    nu: optax.Params  # second moment: ‖grad‖²ₓ per manifold point


def riemannian_adam(
    learning_rate: float | Callable,
    manifold: AbstractManifold,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Riemannian Adam (Bécigneul & Ganea 2019): the first moment is a tangent vector,
    transported to each new point; the second moment is the squared Riemannian norm of
    the gradient per manifold point (a scalar, since a manifold has no coordinates to
    adapt separately); x ← R_x(−η m̂ / (√v̂ + ε)).

    **Arguments:**

    - `learning_rate`: η, a float or an optax schedule `step -> η`.
    - `manifold`: `Sphere()`, `PoincareBall()` or `Stiefel()`; every parameter leaf is a
      point of it (or a batch of points along its leading axes).
    - `b1`, `b2`, `eps`: Adam's decay rates and ε.

    **Returns:** an `optax.GradientTransformation`. Its `update` takes the Euclidean
    gradients and needs `params`; the updates are the differences between the retracted
    points and the current ones, so `optax.apply_updates` lands on the manifold.
    """
    lr = _schedule(learning_rate)

    def init(params):
        mu = jax.tree.map(jnp.zeros_like, params)
        nu = jax.tree.map(lambda x: jnp.zeros_like(manifold.inner(x, x, x)), params)
        return RiemannianAdamState(jnp.zeros((), jnp.int32), mu, nu)

    def update(grads, state, params):
        if params is None:
            raise ValueError("riemannian_adam needs `params` in update(grads, state, params).")
        count = state.count + 1
        eta = lr(state.count)

        def leaf(g, m, v, x):
            rgrad = manifold.egrad_to_rgrad(x, g)
            m = b1 * m + (1 - b1) * rgrad
            v = b2 * v + (1 - b2) * manifold.inner(x, rgrad, rgrad)
            m_hat = m / (1 - b1**count)
            v_hat = v / (1 - b2**count)
            direction = m_hat / (jnp.sqrt(_expand(v_hat, x)) + eps)
            y = manifold.retract(x, -eta * direction)
            return y - x, manifold.transport(x, y, m), v

        updates, mu, nu = _unzip(jax.tree.map(leaf, grads, state.mu, state.nu, params), 3)
        return updates, RiemannianAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def natural_gradient(
    metric: AbstractMetric, z: jax.Array, grad: jax.Array, damping: float = 0.0
) -> jax.Array:
    """G(z)⁻¹ grad by a Cholesky solve (never an inverse).

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ.
    - `z`: one point (d,) or a batch (B, d).
    - `grad`: the Euclidean gradient, the shape of `z`.
    - `damping`: λ ≥ 0 added as λI where G may be singular.

    **Returns:** the preconditioned gradient, the shape of `z`.
    """
    if z.shape != grad.shape or z.ndim not in (1, 2):
        raise ValueError(
            f"`z` and `grad` must both be (d,) or (B, d), got {z.shape} and {grad.shape}."
        )

    def one(z, g):
        G = metric(z) + damping * jnp.eye(z.shape[-1], dtype=z.dtype)
        return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(G), g)

    return one(z, grad) if z.ndim == 1 else jax.vmap(one)(z, grad)


def latent_natural_gradient(
    metric: AbstractMetric, damping: float = 0.0
) -> optax.GradientTransformation:
    """Precondition the gradient of an objective of latent codes by the metric: updates
    become G(z)⁻¹ ∇f(z), the steepest-descent direction in the geometry the decoder
    induces (for f = ‖decoder(z) − target‖², a Gauss–Newton step). Chain it before a
    step size: `optax.chain(latent_natural_gradient(Pullback(decoder)), optax.sgd(lr))`.

    **Arguments:**

    - `metric`: a jgeo metric on the latent space Rᵈ.
    - `damping`: λ ≥ 0 added as λI where G may be singular.

    **Returns:** an `optax.GradientTransformation` (stateless) whose `update` needs
    `params`: latent codes (d,) or (B, d), or a tree of them.
    """

    def init(params):
        return optax.EmptyState()  # stateless: the metric is all it needs

    def update(grads, state, params):
        if params is None:
            raise ValueError("latent_natural_gradient needs `params` (the latent codes).")
        return jax.tree.map(
            lambda g, z: natural_gradient(metric, z, g, damping), grads, params
        ), state

    return optax.GradientTransformation(init, update)
