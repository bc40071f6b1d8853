"""`jgeo.metric_operator`: G(x) v without forming G, for every pullback, against the
dense metric; conjugate gradients through lineax; transforms and gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
from helpers import mlp_decoder

import jgeo

D_LATENT = 7  # odd sizes, so that a (d, d) array in a jaxpr can only be G
D_OUT = 23


def _decoder(key, d=D_LATENT, D=D_OUT):
    return mlp_decoder(key, d, D)


def _metrics(key):
    """Every kind of pullback, and dense metrics beside them."""
    k1, k2, k3 = jr.split(key, 3)
    mean, std_net, second = _decoder(k1), _decoder(k2), _decoder(k3)
    std = lambda z: jax.nn.softplus(std_net(z))  # noqa: E731
    return {
        "euclidean": jgeo.Pullback(mean),
        "jitter": jgeo.Pullback(mean, jitter=1e-3),
        "ambient (diagonal)": jgeo.Pullback(
            lambda z: jnp.concatenate([mean(z), std(z)]), ambient=jgeo.GaussianFisher()
        ),
        "ambient (dense)": jgeo.Pullback(
            second, ambient=jgeo.MetricField(lambda y: jnp.eye(D_OUT) + jnp.outer(y, y))
        ),
        "stochastic": jgeo.StochasticPullback(mean, std),
        "fisher bernoulli": jgeo.FisherPullback(mean, "bernoulli"),
        "fisher categorical": jgeo.FisherPullback(
            lambda z: jnp.concatenate([mean(z), second(z)[:1]]).reshape(-1, 3), "categorical"
        ),
        "fisher poisson": jgeo.FisherPullback(mean, "poisson"),
        "fisher gaussian": jgeo.FisherPullback(lambda z: (mean(z), std(z)), "gaussian"),
        "poincare ball": jgeo.PoincareBall(D_LATENT),
        "metric field": jgeo.MetricField(lambda x: jnp.eye(D_LATENT) * (1 + x @ x)),
        "product": jgeo.Product(jgeo.Pullback(_decoder(k1, 3, 9), dim=3), jgeo.PoincareBall(4)),
    }


@pytest.fixture(scope="module")
def metrics():
    return _metrics(jr.key(0))


@pytest.mark.parametrize("name", list(_metrics(jr.key(0))))
def test_mv_is_the_metric_times_v(metrics, name, key):
    metric = metrics[name]
    x = 0.3 * jr.normal(key, (D_LATENT,))
    v = jr.normal(jr.fold_in(key, 1), (D_LATENT,))
    op = jgeo.metric_operator(metric, x)
    expected = metric(x) @ v
    np.testing.assert_allclose(op.mv(v), expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    assert lx.is_symmetric(op) and lx.is_positive_semidefinite(op)
    assert op.in_structure().shape == (D_LATENT,) and op.in_structure().dtype == x.dtype


def test_a_pullback_operator_never_forms_g(metrics, key):
    # The product's jaxpr holds no (d, d) array (d = 7 appears in no other shape twice).
    x = jr.normal(key, (D_LATENT,))
    for name in ("euclidean", "fisher categorical", "ambient (diagonal)"):
        op = jgeo.metric_operator(metrics[name], x)
        jaxpr = jax.make_jaxpr(op.mv)(x)
        shapes = {tuple(v.aval.shape) for eqn in jaxpr.eqns for v in eqn.outvars}
        assert (D_LATENT, D_LATENT) not in shapes, name
    # ... while the dense metric does (the check can fail).
    dense = jax.make_jaxpr(metrics["euclidean"])(x)
    assert (D_LATENT, D_LATENT) in {tuple(v.aval.shape) for e in dense.eqns for v in e.outvars}


def test_wide_pullback_at_d_256(key):
    d = 256
    metric = jgeo.Pullback(mlp_decoder(key, d, 300, width=64))
    x, v = jr.normal(jr.fold_in(key, 1), (d,)), jr.normal(jr.fold_in(key, 2), (d,))
    out = jax.jit(lambda x, v: jgeo.metric_operator(metric, x).mv(v))(x, v)
    expected = metric(x) @ v
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


def test_conjugate_gradients_solve_matrix_free(metrics, key):
    metric = metrics["stochastic"]
    x = jr.normal(key, (D_LATENT,))
    b = jr.normal(jr.fold_in(key, 1), (D_LATENT,))
    op = jgeo.metric_operator(metric, x)
    solution = lx.linear_solve(op, b, lx.CG(rtol=1e-12, atol=1e-12, max_steps=200))
    np.testing.assert_allclose(solution.value, jnp.linalg.solve(metric(x), b), rtol=1e-8)


def test_under_jit_vmap_and_grad(metrics, key):
    metric = metrics["fisher bernoulli"]
    xs = jr.normal(key, (5, D_LATENT))
    vs = jr.normal(jr.fold_in(key, 1), (5, D_LATENT))
    mv = jax.jit(jax.vmap(lambda x, v: jgeo.metric_operator(metric, x).mv(v)))
    np.testing.assert_allclose(mv(xs, vs), jnp.einsum("nij,nj->ni", jax.vmap(metric)(xs), vs))
    # Gradients reach the point and the decoder's parameters through the product.
    quad = lambda m, x, v: v @ jgeo.metric_operator(m, x).mv(v)  # noqa: E731
    dense = lambda m, x, v: v @ m(x) @ v  # noqa: E731
    for argnum in (0, 1):
        g = eqx.filter_grad(quad if argnum == 0 else lambda x, m, v: quad(m, x, v))
        h = eqx.filter_grad(dense if argnum == 0 else lambda x, m, v: dense(m, x, v))
        args = (metric, xs[0], vs[0]) if argnum == 0 else (xs[0], metric, vs[0])
        got, want = jax.tree.leaves(g(*args)), jax.tree.leaves(h(*args))
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_singular_by_shape_is_accepted_here_but_not_by_the_kernels(key):
    # A 4-class head on a 12-wide layer: rank ≤ 3, singular everywhere.
    head = jgeo.FisherPullback(mlp_decoder(key, 12, 4), "categorical")
    x = jr.normal(key, (12,))
    op = jgeo.metric_operator(head, x)
    eigenvalues = np.linalg.eigvalsh(op.as_matrix())
    assert np.sum(eigenvalues > 1e-10 * eigenvalues.max()) == 3
    with pytest.raises(ValueError, match="jitter"):
        jgeo.log_volume(head, x)
    with pytest.raises(ValueError, match="latent dimension"):
        jgeo.metric_operator(head, jnp.ones(3))


@pytest.mark.slow  # 7–14 s each: compiling exp maps
@pytest.mark.parametrize("name", ["euclidean", "jitter", "ambient (diagonal)", "stochastic"])
def test_a_matrix_free_spray_matches_the_dense_one(name, key):
    # `linear_solver=lineax.CG(...)`: the spray's G u = b by conjugate gradients on the
    # operator; exp maps through it match the Cholesky path.
    k1, k2 = jr.split(key)
    net, second = mlp_decoder(k1, D_LATENT, D_OUT, width=D_OUT), _decoder(k2)
    std = lambda z: jax.nn.softplus(second(z))  # noqa: E731
    cg = lx.CG(rtol=1e-11, atol=1e-11, max_steps=200)
    make = {
        "euclidean": lambda s: jgeo.Pullback(net, linear_solver=s),
        "jitter": lambda s: jgeo.Pullback(net, jitter=1e-3, linear_solver=s),
        "ambient (diagonal)": lambda s: jgeo.FisherPullback(
            lambda z: (net(z), std(z)), "gaussian", linear_solver=s
        ),
        "stochastic": lambda s: jgeo.StochasticPullback(net, std, linear_solver=s),
    }[name]
    dense, free = make(None), make(cg)
    x, v = 0.3 * jr.normal(key, (D_LATENT,)), jr.normal(jr.fold_in(key, 1), (D_LATENT,))
    np.testing.assert_allclose(
        jgeo.geodesic_acceleration(free, x, v), jgeo.geodesic_acceleration(dense, x, v),
        rtol=1e-8, atol=1e-10,
    )  # fmt: skip
    np.testing.assert_allclose(jgeo.exp_map(free, x, 0.3 * v), jgeo.exp_map(dense, x, 0.3 * v),
                               atol=1e-9)  # fmt: skip
    with pytest.raises(TypeError, match="linear_solver"):
        jgeo.Pullback(net, linear_solver="cg")


def _all_shapes(jaxpr) -> set[tuple]:
    """The shapes of every value a jaxpr computes, inside loops and solves too."""
    shapes = set()
    for eqn in jaxpr.eqns:
        shapes |= {tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape")}
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    shapes |= _all_shapes(inner)
    return shapes


@pytest.mark.slow
def test_matrix_free_geodesics_never_form_g(key):
    # With `linear_solver=`, exp maps (the spray's solve) and the energy stage of
    # connecting geodesics (the normal equations, by preconditioned CG) run on products
    # alone: no (d, d) array anywhere in their programs; they match the dense solvers.
    d = 11  # not 7: Tsit5's seven stages of a 7-d state are a (7, 7) array
    net = mlp_decoder(key, d, D_OUT, width=D_OUT)
    dense = jgeo.Pullback(net)
    free = jgeo.Pullback(net, linear_solver=lx.CG(rtol=1e-11, atol=1e-12, max_steps=500))
    x = 0.3 * jr.normal(key, (d,))
    y = x + 0.5 * jr.normal(jr.fold_in(key, 1), (d,))

    def energy(m, x, y):
        # The dense reference by blocks: "auto" would take CG from d = 8 on.
        blocks = "auto" if m is free else None
        solver = jgeo.EnergyBVP(linear_solver=blocks)
        return jgeo.connecting_geodesic(m, x, y, solver=solver, num_points=10)

    for fn in (lambda m: jgeo.exp_map(m, x, y - x), lambda m: energy(m, x, y).curve):
        assert (d, d) not in _all_shapes(jax.make_jaxpr(lambda: fn(free))().jaxpr)
        assert (d, d) in _all_shapes(jax.make_jaxpr(lambda: fn(dense))().jaxpr)
        np.testing.assert_allclose(fn(free), fn(dense), atol=1e-8)
    out = energy(free, x, y)
    assert out.converged
    np.testing.assert_allclose(out.length, energy(dense, x, y).length, rtol=1e-9)
