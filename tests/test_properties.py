"""Identities every Levi-Civita connection satisfies, on random curved decoders,
and agreement of each metric's fast path with nested autodiff (the reference)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from helpers import lower, mlp_decoder, tree_allclose

import jgeo


def metrics(key):
    k1, k2, k3, k4 = jr.split(key, 4)
    mlp = mlp_decoder(k1, 3, 5)
    return {
        "pullback": jgeo.Pullback(mlp),
        "pullback-jitter": jgeo.Pullback(mlp_decoder(k2, 3, 2), jitter=0.3),
        "stochastic": jgeo.StochasticPullback(
            mlp, lambda z: jnp.exp(jnp.tanh(z) @ jnp.ones((3, 5)))
        ),
        "field": jgeo.MetricField(lambda z: jnp.eye(3) + jnp.outer(jnp.sin(z), jnp.sin(z))),
        "product": jgeo.Product(jgeo.Pullback(mlp_decoder(k3, 2, 4), dim=2), jgeo.PoincareBall(1)),
    }


NAMES = ["pullback", "pullback-jitter", "stochastic", "field", "product"]


@pytest.fixture
def point(key):
    return jnp.array([0.3, -0.4, 0.2])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["auto", "autodiff"])
def test_riemann_symmetries_and_bianchi(name, method, key, point):
    metric = metrics(key)[name]
    r = jgeo.riemann(metric, point, method=method)
    low = lower(metric(point), r)
    scale = dict(atol=1e-9 * (1 + jnp.max(jnp.abs(low))))
    assert jnp.max(jnp.abs(low)) > 1e-3  # really curved, so the identities say something
    assert tree_allclose(r, -jnp.swapaxes(r, 2, 3), **scale)  # Rᵃ_bcd = −Rᵃ_bdc
    assert tree_allclose(low, -jnp.swapaxes(low, 0, 1), **scale)  # R_abcd = −R_bacd
    assert tree_allclose(low, jnp.transpose(low, (2, 3, 0, 1)), **scale)  # R_abcd = R_cdab
    bianchi = r + jnp.transpose(r, (0, 2, 3, 1)) + jnp.transpose(r, (0, 3, 1, 2))
    assert tree_allclose(bianchi, jnp.zeros_like(r), **scale)  # Rᵃ_[bcd] = 0
    ricci = jgeo.ricci(metric, point, method=method)
    assert tree_allclose(ricci, ricci.T, **scale)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_fast_paths_agree_with_autodiff(name, key, point):
    metric = metrics(key)[name]
    ku, kv = jr.split(jr.fold_in(key, 1))
    u, v = jr.normal(ku, (3,)), jr.normal(kv, (3,))
    for kernel in [jgeo.christoffel, jgeo.riemann, jgeo.ricci, jgeo.scalar_curvature]:
        fast, ref = kernel(metric, point), kernel(metric, point, method="autodiff")
        assert tree_allclose(fast, ref, atol=1e-9), kernel.__name__
    for kernel, args in [
        (jgeo.geodesic_acceleration, (v,)),
        (jgeo.sectional_curvature, (u, v)),
    ]:
        fast = kernel(metric, point, *args)
        assert tree_allclose(fast, kernel(metric, point, *args, method="autodiff"), atol=1e-9)
    log_vol = jgeo.log_volume(metric, point)
    assert tree_allclose(log_vol, jgeo.log_volume(metric, point, method="autodiff"))
    assert tree_allclose(log_vol, 0.5 * jnp.linalg.slogdet(metric(point))[1])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["auto", "autodiff"])
def test_spray_is_minus_christoffel_contraction(name, method, key, point):
    metric = metrics(key)[name]
    v = jnp.array([1.0, -0.5, 2.0])
    gamma = jgeo.christoffel(metric, point, method=method)
    assert tree_allclose(gamma, jnp.swapaxes(gamma, 1, 2))  # torsion-free
    expected = -jnp.einsum("kij,i,j->k", gamma, v, v)
    spray = jgeo.geodesic_acceleration(metric, point, v, method=method)
    assert tree_allclose(spray, expected)
    # The spray is quadratic in v.
    assert tree_allclose(jgeo.geodesic_acceleration(metric, point, 3 * v), 9 * spray)


def test_jitter_adds_identity_and_stays_consistent(key, point):
    mlp = mlp_decoder(key, 3, 5)
    plain, jittered = jgeo.Pullback(mlp), jgeo.Pullback(mlp, jitter=0.1)
    assert tree_allclose(jittered(point), plain(point) + 0.1 * jnp.eye(3))
    # Jitter changes the geometry, smoothly: a tiny jitter barely moves the curvature.
    tiny = jgeo.Pullback(mlp, jitter=1e-10)
    assert tree_allclose(jgeo.riemann(tiny, point), jgeo.riemann(plain, point), rtol=1e-5)
    assert not tree_allclose(jgeo.riemann(jittered, point), jgeo.riemann(plain, point))


def test_christoffel_of_pullback_is_projected_hessian(key, point):
    # Γₗᵢⱼ = Jₗ · ∂ᵢ∂ⱼ f: check the first-kind symbols against an explicit Hessian.
    mlp = mlp_decoder(key, 3, 5)
    jac, hess = jax.jacfwd(mlp)(point), jax.hessian(mlp)(point)
    g = jac.T @ jac
    first_kind = jnp.einsum("ml,mij->lij", jac, hess)
    expected = jnp.linalg.solve(g, first_kind.reshape(3, 9)).reshape(3, 3, 3)
    assert tree_allclose(jgeo.christoffel(jgeo.Pullback(mlp), point), expected)
