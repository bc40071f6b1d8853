"""Riemannian optax transformations: they solve known problems and never leave the manifold."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgeo
from jgeo import optim


def _minimise(tx, loss, x, steps, manifold=None):
    state = tx.init(x)

    @jax.jit
    def step(x, state):
        updates, state = tx.update(jax.grad(loss)(x), state, x)
        return optax.apply_updates(x, updates), state

    worst = 0.0
    for _ in range(steps):
        x, state = step(x, state)
        if manifold is not None:
            worst = max(worst, float(manifold.distance_to_manifold(x)))
    return x, worst


A = jax.random.normal(jax.random.key(0), (6, 6))
A = A + A.T
EIGENVALUES, EIGENVECTORS = jnp.linalg.eigh(A)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.riemannian_adam(0.05, optim.Sphere()),
        lambda: optim.riemannian_sgd(0.05, optim.Sphere(), momentum=0.9),
    ],  # fmt: skip
)
def test_the_leading_eigenvector_is_found_on_the_sphere(make):
    x, worst = _minimise(
        make(), lambda x: -x @ A @ x, jnp.ones(6) / jnp.sqrt(6.0), 400, optim.Sphere()
    )
    assert abs(x @ EIGENVECTORS[:, -1]) > 1 - 1e-6
    assert worst < 1e-6  # every iterate on the sphere


def test_riemannian_adam_finds_the_poincare_ball_minimiser():
    b = jnp.array([0.5, -0.3, 0.2])

    def cosh_distance(x):  # cosh d(x, b) − 1: minimised at b
        return 2 * jnp.sum((x - b) ** 2) / ((1 - x @ x) * (1 - b @ b))

    ball = optim.PoincareBall()
    x, worst = _minimise(
        optim.riemannian_adam(0.05, ball), cosh_distance, jnp.array([-0.6, 0.5, 0.1]), 600, ball
    )
    np.testing.assert_allclose(x, b, atol=2e-4)  # constant-step Adam hovers at ~1e-4
    assert worst == 0.0  # inside the ball throughout


def test_riemannian_adam_on_stiefel_finds_the_top_eigenspace():
    x0 = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (6, 2)))[0]
    stiefel = optim.Stiefel()
    x, worst = _minimise(
        optim.riemannian_adam(0.05, stiefel), lambda x: -jnp.trace(x.T @ A @ x), x0, 500, stiefel
    )
    top = EIGENVECTORS[:, -2:]
    np.testing.assert_allclose(x @ x.T, top @ top.T, atol=1e-6)
    assert worst < 1e-6


def test_transport_keeps_moments_tangent():
    x = jnp.array([0.0, 0.6, 0.8])
    u = jnp.array([1.0, 0.3, -0.2])
    y = optim.Sphere().retract(x, optim.Sphere().project(x, u))
    moved = optim.Sphere().transport(x, y, u)
    assert abs(moved @ y) < 1e-12
    # Poincaré-ball parallel transport is an isometry: ‖u‖ₓ = ‖P(u)‖_y.
    ball = optim.PoincareBall()
    a, b = jnp.array([0.2, -0.4, 0.1]), jnp.array([-0.5, 0.3, 0.3])
    np.testing.assert_allclose(
        ball.inner(b, *(ball.transport(a, b, u),) * 2), ball.inner(a, u, u), rtol=1e-10
    )


def test_latent_natural_gradient_takes_gauss_newton_steps():
    m = jnp.array([[10.0, 0.0], [0.0, 0.1], [1.0, 1.0]])

    def decoder(z):
        return jnp.tanh(m @ z)

    target = decoder(jnp.array([0.3, -0.5]))

    def loss(z):
        return jnp.sum((decoder(z) - target) ** 2)

    natural = optax.chain(optim.latent_natural_gradient(jgeo.Pullback(decoder)), optax.sgd(0.5))
    z, _ = _minimise(natural, loss, jnp.zeros(2), 10)
    np.testing.assert_allclose(z, [0.3, -0.5], atol=1e-8)
    plain, _ = _minimise(optax.sgd(0.01), loss, jnp.zeros(2), 10)  # ill-conditioned: crawls
    assert loss(plain) > 1e3 * loss(z) + 1e-6
    # A batch of codes, each preconditioned by its own metric.
    batch = jnp.stack([jnp.zeros(2), jnp.ones(2)])
    grads = jax.vmap(jax.grad(loss))(batch)
    solved = optim.natural_gradient(jgeo.Pullback(decoder), batch, grads)
    np.testing.assert_allclose(jgeo.Pullback(decoder)(batch[1]) @ solved[1], grads[1], rtol=1e-8)


def test_updates_need_params():
    tx = optim.riemannian_adam(0.1, optim.Sphere())
    with pytest.raises(ValueError, match="needs `params`"):
        tx.update(jnp.ones(3), tx.init(jnp.ones(3)), None)
