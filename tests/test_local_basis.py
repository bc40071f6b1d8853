"""Wide metrics without forming G: `jgeo.local_basis`, `log_volume(method="slq")` and
`jgeo.representation.local_spectrum`, against dense `eigh`/`slogdet` references and
spectra known in closed form."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from helpers import central_difference, mlp_decoder

import jgeo
from jgeo.representation import local_spectrum

# A linear decoder with prescribed singular values sᵢ = i^(−1/2): G = V diag(s²) Vᵀ has
# eigenvalues 1/i, and J vᵢ = sᵢ uᵢ.
D_KNOWN, OUT_KNOWN = 64, 96
_RNG = np.random.default_rng(0)
_U = np.linalg.qr(_RNG.standard_normal((OUT_KNOWN, D_KNOWN)))[0]
_V = np.linalg.qr(_RNG.standard_normal((D_KNOWN, D_KNOWN)))[0]
_S = np.arange(1, D_KNOWN + 1) ** -0.5
LINEAR = jnp.asarray(_U * _S @ _V.T)


def _aligned(a, b) -> float:
    """The largest sine of the principal angles between the column spaces of a and b."""
    qa, qb = np.linalg.qr(np.asarray(a))[0], np.linalg.qr(np.asarray(b))[0]
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.sqrt(max(0.0, 1 - cosines.min() ** 2)))


@pytest.fixture(scope="module")
def known():
    metric = jgeo.Pullback(lambda z: LINEAR @ z)
    return metric, jax.jit(lambda x, key: jgeo.local_basis(metric, x, 8, key=key))


def test_a_known_spectrum_is_recovered(known, key):
    metric, basis = known
    out = basis(jnp.ones(D_KNOWN), key)
    np.testing.assert_allclose(out.values, _S[:8] ** 2, rtol=1e-12)
    assert np.all(out.residuals < 1e-10)
    # Each eigenvector is ±vᵢ, and its output direction J v/‖J v‖ the matching ±uᵢ.
    signs = np.sign(np.sum(np.asarray(out.vectors) * _V[:, :8], 0))
    np.testing.assert_allclose(out.vectors, _V[:, :8] * signs, atol=1e-10)
    np.testing.assert_allclose(out.outputs, _U[:, :8] * signs, atol=1e-10)
    np.testing.assert_allclose(out.vectors.T @ out.vectors, np.eye(8), atol=1e-12)
    assert out.outputs.shape == (OUT_KNOWN, 8)


def test_local_spectrum_of_a_known_spectrum(known, key):
    metric, _ = known
    codes = jr.normal(key, (3, D_KNOWN))
    spectrum = jax.jit(lambda c, k: local_spectrum(metric, c, 8, key=k))(codes, key)
    top = 1 / np.arange(1, 9)
    np.testing.assert_allclose(spectrum.values, np.tile(top, (3, 1)), rtol=1e-12)
    np.testing.assert_allclose(spectrum.decay, 1.0, rtol=1e-10)  # λᵢ = i^(−1)
    np.testing.assert_allclose(spectrum.effective_dimension, top.sum() ** 2 / (top**2).sum())
    assert spectrum.residuals.shape == (3, 8)


@pytest.fixture(scope="module")
def wide():
    """A tanh MLP decoder 256 → 300 → 300 → 300 and its dense metric at one point."""
    key = jr.key(1)
    metric = jgeo.Pullback(mlp_decoder(key, 256, 300, width=300))
    x = 0.5 * jr.normal(jr.fold_in(key, 1), (256,))
    return metric, x, np.asarray(metric(x))


def test_top_eigenpairs_against_eigh_at_d_256(wide, key):
    metric, x, g = wide
    values, vectors = np.linalg.eigh(g)
    out = jax.jit(lambda x, k: jgeo.local_basis(metric, x, 8, key=k, steps=48))(x, key)
    np.testing.assert_allclose(out.values, values[::-1][:8], rtol=1e-6)
    assert _aligned(out.vectors, vectors[:, ::-1][:, :8]) < 1e-5
    residuals = np.linalg.norm(g @ out.vectors - out.vectors * out.values[None], axis=0)
    np.testing.assert_allclose(out.residuals, residuals, atol=1e-9 * values[-1])


def test_slq_log_volume_within_one_percent_at_d_256_by_default(key):
    # A tanh MLP 256 → 512 → 512 → 512 at equinox's initialisation, as bench/wide.py's
    # random-weights decoder. (The probes' spread is relative to |log det|, which depends
    # on the decoder: see SLQ's docstring.)
    net = eqx.nn.MLP(256, 512, 512, depth=2, activation=jnp.tanh, key=jr.key(3))
    metric = jgeo.Pullback(net)
    x = jr.normal(jr.key(4), (256,))
    exact = 0.5 * np.linalg.slogdet(np.asarray(metric(x)))[1]
    estimate = jax.jit(lambda x, k: jgeo.log_volume(metric, x, method="slq", key=k))(x, key)
    assert abs(estimate / exact - 1) < 0.01, (estimate, exact)
    np.testing.assert_allclose(jgeo.log_volume(metric, x), exact, rtol=1e-10)


def test_slq_estimate_carries_the_probes_standard_error(known, key):
    # With steps = d the quadrature is exact, so the estimate's only error is the
    # probes': one Rademacher probe's zᵀ log(G) z has variance 2 Σ_{i≠j} (log G)ᵢⱼ², so
    # the mean of p probes, halved for ½ log det, scatters by ½ √(2 Σ_{i≠j} ...) / √p.
    metric, _ = known
    x = jnp.ones(D_KNOWN)
    log_g = (_V * np.log(_S**2)) @ _V.T
    exact = 0.5 * np.sum(np.log(_S**2))
    truth = 0.5 * np.sqrt(2 * (np.sum(log_g**2) - np.sum(np.diag(log_g) ** 2)) / 8)
    method = jgeo.SLQ(probes=8, steps=D_KNOWN)
    keys = jr.split(key, 200)
    out = jax.jit(jax.vmap(lambda k: method.estimate(metric, x, key=k)))(keys)
    assert out.probes.dtype == jnp.int32 and np.all(out.probes == 8)
    # the value is log_volume's (the same probes)
    same = jgeo.log_volume(metric, x, method=method, key=keys[0])
    np.testing.assert_allclose(out.value[0], same, rtol=1e-12)
    # the estimates scatter as predicted, the error bars say so, and cover the truth
    np.testing.assert_allclose(np.std(out.value - exact), truth, rtol=0.15)
    np.testing.assert_allclose(np.sqrt(np.mean(out.standard_error**2)), truth, rtol=0.1)
    assert 0.85 < np.mean(np.abs(out.value - exact) <= 2 * out.standard_error) <= 1
    # Adaptive probes stop at rtol or at max_probes, which the estimate then shows.
    adaptive = jgeo.SLQ(rtol=1e-3, max_probes=16).estimate(metric, x, key=key)
    assert adaptive.probes == 16 and adaptive.standard_error > 1e-3 * abs(adaptive.value)
    loose = jgeo.SLQ(rtol=0.05).estimate(metric, x, key=key)
    assert loose.probes == 8 and loose.standard_error <= 0.05 * abs(loose.value)
    one = jgeo.SLQ(probes=1)
    assert np.isnan(one.estimate(metric, x, key=key).standard_error)
    # log_volume never builds that NaN, so jax_debug_nans has nothing to stop on
    with jax.debug_nans(True):
        jgeo.log_volume(metric, x, method=one, key=key)
        jax.grad(lambda y: jgeo.log_volume(metric, y, method=one, key=key))(x)


@pytest.fixture(scope="module")
def small():
    key = jr.key(2)
    return jgeo.Pullback(mlp_decoder(key, 32, 64, width=64)), 0.5 * jr.normal(key, (32,))


def test_slq_is_exact_for_a_conformal_metric(key):
    # log G = log c · I: every probe gives tr log G exactly.
    metric = jgeo.PoincareBall(40)
    x = 0.05 * jr.normal(key, (40,))
    slq = jgeo.log_volume(metric, x, method=jgeo.SLQ(probes=2, steps=4), key=key)
    np.testing.assert_allclose(slq, jgeo.log_volume(metric, x), rtol=1e-12)


def test_slq_derivatives_are_those_of_the_estimate(small, key):
    # With steps = d the quadrature is exact, so the estimate is a smooth function of x
    # and the decoder for a fixed key: its JVP and gradient match central differences.
    metric, x = small
    method = jgeo.SLQ(probes=3, steps=32)
    estimate = lambda m, y: jgeo.log_volume(m, y, method=method, key=key)  # noqa: E731
    t = jr.normal(jr.fold_in(key, 1), x.shape)
    _, jvp = jax.jvp(lambda y: estimate(metric, y), (x,), (t,))
    fd = central_difference(lambda y: estimate(metric, y), x, t, eps=1e-5)
    np.testing.assert_allclose(jvp, fd, rtol=1e-6)
    grad = jax.grad(lambda y: estimate(metric, y))(x)
    np.testing.assert_allclose(grad @ t, jvp, rtol=1e-9)
    # and through the decoder's parameters
    params = eqx.filter_grad(lambda m: estimate(m, x))(metric)
    direction = jax.tree.map(lambda a: jnp.ones_like(a) if eqx.is_inexact_array(a) else a, params)

    def shifted(s):
        move = lambda a, b: a + s * b if eqx.is_inexact_array(a) else a  # noqa: E731
        return estimate(jax.tree.map(move, metric, direction), x)

    fd_params = (shifted(1e-5) - shifted(-1e-5)) / 2e-5
    dot = sum(jnp.sum(a) for a in jax.tree.leaves(params) if eqx.is_inexact_array(a))
    np.testing.assert_allclose(dot, fd_params, rtol=1e-5)


def test_slq_gradient_points_where_the_exact_one_does(small, key):
    metric, x = small
    exact = jax.grad(lambda y: jgeo.log_volume(metric, y))(x)
    method = jgeo.SLQ(probes=256)
    slq = jax.jit(jax.grad(lambda y, k: jgeo.log_volume(metric, y, method=method, key=k)))
    estimate = slq(x, key)
    assert estimate @ exact / np.linalg.norm(estimate) / np.linalg.norm(exact) > 0.99


def test_fisher_metric_of_a_classifier_head_at_a_hidden_layer(key):
    # 5 classes on a 48-wide layer: rank ≤ 4; the local basis is its meaningful part, and
    # the log-volume needs jitter: then G + εI, whose Krylov spaces close after 5 steps.
    head = mlp_decoder(key, 48, 5, width=32)
    fisher = jgeo.FisherPullback(head, "categorical")
    x = jr.normal(jr.fold_in(key, 1), (48,))
    g = np.asarray(jgeo.metric_operator(fisher, x).as_matrix())
    values = np.linalg.eigvalsh(g)[::-1]
    out = jgeo.local_basis(fisher, x, 6, key=key, steps=12)
    np.testing.assert_allclose(out.values[:4], values[:4], rtol=1e-10)
    assert np.all(np.abs(out.values[4:]) < 1e-12 * values[0])
    assert out.outputs.shape == (5, 6)
    spectrum = local_spectrum(fisher, x[None], 6, key=key, steps=12)
    assert spectrum.effective_dimension[0] <= 4
    jittered = jgeo.FisherPullback(head, "categorical", jitter=1e-3)
    exact = 0.5 * np.linalg.slogdet(g + 1e-3 * np.eye(48))[1]
    slq = jgeo.log_volume(jittered, x, method="slq", key=key)
    np.testing.assert_allclose(slq, exact, rtol=1e-2)
    with pytest.raises(ValueError, match="jitter"):
        jgeo.log_volume(fisher, x, method="slq", key=key)


@pytest.mark.slow
def test_fisher_metric_of_a_10_class_head_at_a_512_wide_layer(key):
    # The information geometry of a hidden layer of width 512: a head 512 → 64 → 10, so G
    # has rank ≤ 9. Products, local basis, spectrum and the jittered SLQ log-volume
    # against the dense metric (512 JVPs and eigh, which the matrix-free route never forms).
    head = eqx.nn.MLP(512, 10, 64, depth=1, activation=jnp.tanh, key=jr.key(5))
    fisher = jgeo.FisherPullback(head, "categorical")
    x = jr.normal(jr.fold_in(key, 2), (512,))
    op = jgeo.metric_operator(fisher, x)
    g = np.asarray(jax.jit(lambda x: jax.jacfwd(op.mv)(x))(jnp.zeros(512)))  # dense G
    v = jr.normal(jr.fold_in(key, 3), (512,))
    np.testing.assert_allclose(op.mv(v), g @ v, rtol=1e-10, atol=1e-12 * np.abs(g).max())
    values, vectors = np.linalg.eigh(g)
    values, vectors = values[::-1], vectors[:, ::-1]
    assert values[9] < 1e-12 * values[0]  # rank ≤ C − 1 = 9
    out = jax.jit(lambda x, k: jgeo.local_basis(fisher, x, 9, key=k))(x, key)
    np.testing.assert_allclose(out.values, values[:9], rtol=1e-6)
    assert _aligned(out.vectors, vectors[:, :9]) < 1e-6
    spectrum = local_spectrum(fisher, x[None], 12, key=key)
    assert np.all(spectrum.values[0, 9:] < 1e-10 * values[0])  # beyond the rank: 0
    assert spectrum.effective_dimension[0] <= 9
    # A volume needs jitter: ½ log det(G + εI) = ½ Σᵢ log(λᵢ + ε) + ½ (d − 9) log ε.
    jittered = jgeo.FisherPullback(head, "categorical", jitter=1e-4)
    exact = 0.5 * np.sum(np.log(np.maximum(values, 0) + 1e-4))
    slq = jax.jit(lambda x, k: jgeo.log_volume(jittered, x, method="slq", key=k))(x, key)
    assert abs(slq / exact - 1) < 0.01, (slq, exact)


def test_float32(key):
    net = mlp_decoder(key, 64, 128, width=128)
    metric = jgeo.Pullback(net)
    metric32 = jgeo.Pullback(
        jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_array(a) else a, net)
    )
    x = 0.5 * jr.normal(key, (64,))
    reference = np.linalg.eigvalsh(np.asarray(metric(x)))[::-1][:4]
    out = jgeo.local_basis(metric32, x.astype(jnp.float32), 4, key=key)
    assert out.values.dtype == out.vectors.dtype == out.outputs.dtype == jnp.float32
    np.testing.assert_allclose(out.values, reference, rtol=1e-4)
    # The same probes in both precisions: float32 rounding moves the estimate by little.
    method = jgeo.SLQ(probes=8)
    slq32 = jgeo.log_volume(metric32, x.astype(jnp.float32), method=method, key=key)
    assert slq32.dtype == jnp.float32
    np.testing.assert_allclose(slq32, jgeo.log_volume(metric, x, method=method, key=key), rtol=1e-4)


def test_vmap_over_points_and_a_dense_metric(key):
    metric = jgeo.MetricField(lambda x: jnp.diag(jnp.exp(x)), dim=10)
    xs = jr.normal(key, (4, 10))
    out = jax.vmap(lambda x, k: jgeo.local_basis(metric, x, 3, key=k))(xs, jr.split(key, 4))
    np.testing.assert_allclose(out.values, -np.sort(-np.exp(xs), axis=1)[:, :3], rtol=1e-12)
    assert out.outputs is None and out.vectors.shape == (4, 10, 3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x, k: jgeo.local_basis(m, x, 0, key=k), "`k`"),
        (lambda m, x, k: jgeo.local_basis(m, x, 65, key=k), "`k`"),
        (lambda m, x, k: jgeo.local_basis(m, x, 8, key=k, steps=4), "`steps`"),
        (lambda m, x, k: jgeo.log_volume(m, x, method="slq"), "`key`"),
        (lambda m, x, k: jgeo.SLQ().estimate(m, x, key=None), "`key`"),
        (lambda m, x, k: jgeo.log_volume(m, x, method="lanczos", key=k), "method"),
        (lambda m, x, k: jgeo.SLQ(steps=0), "`steps`"),
        (lambda m, x, k: jgeo.SLQ(rtol=-1.0), "`rtol`"),
        (lambda m, x, k: local_spectrum(m, x, 4, key=k), "codes"),
    ],
)
def test_bad_arguments_are_named(known, key, call, match):
    metric, _ = known
    with pytest.raises(ValueError, match=match):
        call(metric, jnp.ones(D_KNOWN), key)
