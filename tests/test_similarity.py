"""The comparison measures of `jgeo.representation` against NumPy write-outs of each
paper's formula (written from the formula, not from the JAX code), their invariances,
the known bias of CKA, and their behaviour on the inputs users' issue trackers report
(rank-deficient layers, wide layers, float32)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist

import jgeo.representation as rep

RNG = np.random.default_rng(0)
N = 40
X = RNG.normal(size=(N, 6)) @ RNG.normal(size=(6, 6))  # correlated features
Y = np.tanh(X @ RNG.normal(size=(6, 9))) + 0.3 * RNG.normal(size=(N, 9))  # related, wider


def rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# -- references: each paper's formula in NumPy -------------------------------------------


def centring(n):
    return np.eye(n) - np.ones((n, n)) / n


def hsic_biased(k, m):  # Gretton et al. 2005: tr(KHLH) / (n − 1)², L = m
    h = centring(len(k))
    return np.trace(k @ h @ m @ h) / (len(k) - 1) ** 2


def hsic_unbiased(k, m):  # Song et al. 2012, eq. (5), L = m
    n = len(k)
    k, m = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
    one = np.ones(n)
    return (
        np.trace(k @ m)
        + (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * one @ k @ m @ one
    ) / (n * (n - 3))


def rbf_kernel(x, sigma):  # Kornblith et al. 2019: σ a fraction of the median distance
    distances = pdist(x)
    bandwidth = sigma * np.median(distances)
    squared = ((x[:, None] - x[None]) ** 2).sum(-1)
    return np.exp(-squared / (2 * bandwidth**2))


def reference_cka(x, y, kernel="linear", sigma=1.0, debiased=False):
    linear = kernel == "linear"
    k, m = (x @ x.T, y @ y.T) if linear else (rbf_kernel(x, sigma), rbf_kernel(y, sigma))
    hsic = hsic_unbiased if debiased else hsic_biased
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


def inverse_sqrt(c):
    values, vectors = np.linalg.eigh(c)
    return vectors @ np.diag(values**-0.5) @ vectors.T


def reference_cca(x, y):
    """Canonical correlations: singular values of Σxx^(−1/2) Σxy Σyy^(−1/2)."""
    x, y = x - x.mean(0), y - y.mean(0)
    wx, wy = inverse_sqrt(x.T @ x), inverse_sqrt(y.T @ y)
    u, rho, _ = np.linalg.svd(wx @ x.T @ y @ wy)
    return rho, x @ wx @ u  # and the canonical variates of x (unit norm, orthogonal)


def reference_svcca(x, y, keep):
    """Raghu et al. 2017: SVD of each, the top directions keeping `keep` of the variance,
    then the mean canonical correlation."""

    def reduce(z):
        z = z - z.mean(0)
        u, s, _ = np.linalg.svd(z, full_matrices=False)
        count = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), keep) + 1)
        return u[:, :count] * s[:count]

    rho, _ = reference_cca(reduce(x), reduce(y))
    return rho.mean()


def reference_pwcca(x, y):
    """Morcos et al. 2018: ρ weighted by αᵢ = Σⱼ |⟨hᵢ, xⱼ⟩| (x: fewer features)."""
    rho, variates = reference_cca(x, y)
    variates = variates[:, : len(rho)]
    weights = np.abs(variates.T @ (x - x.mean(0))).sum(1)
    return (weights / weights.sum()) @ rho


def reference_shape(x, y, alpha):
    """Williams et al. 2021: partial whitening (XᵀX)^(−1/2) mixed with I, zero-padding,
    the best rotation (scipy's orthogonal Procrustes) and the angle between the results."""

    def whiten(z):
        z = z - z.mean(0)
        values, vectors = np.linalg.eigh(z.T @ z)
        return z @ vectors @ np.diag(alpha + (1 - alpha) * values**-0.5) @ vectors.T

    x, y = whiten(x), whiten(y)
    width = max(x.shape[1], y.shape[1])
    x, y = (np.pad(z, ((0, 0), (0, width - z.shape[1]))) for z in (x, y))
    q, _ = orthogonal_procrustes(x, y)
    cosine = np.sum((x @ q) * y) / (np.linalg.norm(x) * np.linalg.norm(y))
    return np.arccos(np.clip(cosine, -1, 1))


def reference_rsa(x, y, distance, compare):
    dx, dy = pdist(x, distance), pdist(y, distance)
    return (stats.spearmanr if compare == "spearman" else stats.pearsonr)(dx, dy)[0]


def reference_imbalance(a, b, k):
    """Glielmo et al. 2022: Δ(a → b) = 2/N ⟨r^b | r^a ≤ k⟩."""
    n = len(a)
    da = ((a[:, None] - a[None]) ** 2).sum(-1) + np.diag(np.full(n, np.inf))
    db = ((b[:, None] - b[None]) ** 2).sum(-1) + np.diag(np.full(n, np.inf))
    ranks = []
    for i in range(n):
        order_b = list(np.argsort(db[i]))
        for j in np.argsort(da[i])[:k]:
            ranks.append(order_b.index(j) + 1)
    return 2 * np.mean(ranks) / n


def reference_gride(z, n1, n2):
    """Denti et al. 2022: maximise Σ log f(μᵢ), f(μ) = d (μ^d − 1)^(n2−n1−1) /
    (B(n2 − n1, n1) μ^((n2−1)d+1)), numerically (scipy's bounded scalar minimiser)."""
    distances = np.sort(((z[:, None] - z[None]) ** 2).sum(-1) ** 0.5, axis=1)[:, 1:]
    mu = distances[:, n2 - 1] / distances[:, n1 - 1]

    def negative_log_likelihood(d):
        return -np.sum(
            np.log(d)
            + (n2 - n1 - 1) * np.log(mu**d - 1)
            - ((n2 - 1) * d + 1) * np.log(mu)
            - np.log(special.beta(n2 - n1, n1))
        )

    fit = optimize.minimize_scalar(
        negative_log_likelihood, bounds=(0.01, 50), method="bounded", options={"xatol": 1e-12}
    )
    return fit.x


# -- agreement with the references, float64 ----------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"debiased": True},
        {"kernel": "rbf"},
        {"kernel": "rbf", "sigma": 0.4},
        {"kernel": "rbf", "debiased": True},
    ],  # fmt: skip
)
def test_cka_matches_the_formula(options):
    expected = reference_cka(X, Y, **options)
    assert float(rep.cka(X, Y, **options)) == pytest.approx(expected, abs=1e-6)
    # the Gram form (D > N, summed over chunks of 4 features) agrees with the feature form
    wide = np.concatenate([Y] * 5, axis=1)
    expected = reference_cka(X, wide, **options)
    assert float(rep.cka(X, wide, chunk=4, **options)) == pytest.approx(expected, abs=1e-6)


def test_linear_cka_is_the_biased_linear_case():
    assert float(rep.linear_cka(X, Y)) == pytest.approx(reference_cka(X, Y), abs=1e-12)
    assert float(rep.linear_cka(X, Y)) == float(rep.cka(X, Y))


def test_cca_svcca_pwcca_match_the_formulas():
    rho, _ = reference_cca(X, Y)
    np.testing.assert_allclose(rep.cca_correlations(X, Y), rho, atol=1e-6)
    for keep in (0.5, 0.9, 0.99):
        expected = reference_svcca(X, Y, keep)
        assert float(rep.svcca(X, Y, keep=keep)) == pytest.approx(expected, abs=1e-6)
    assert float(rep.pwcca(X, Y)) == pytest.approx(reference_pwcca(X, Y), abs=1e-6)
    assert float(rep.pwcca(Y, X)) == pytest.approx(reference_pwcca(X, Y), abs=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_shape_distance_matches_the_formula(alpha):
    expected = reference_shape(X, Y, alpha)
    assert float(rep.shape_distance(X, Y, alpha=alpha)) == pytest.approx(expected, abs=1e-6)
    if alpha == 1.0:
        assert float(rep.procrustes_distance(X, Y)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("distance", ["euclidean", "correlation"])
@pytest.mark.parametrize("compare", ["spearman", "pearson"])
def test_rsa_matches_scipy(distance, compare):
    expected = reference_rsa(X, Y, distance, compare)
    assert float(rep.rsa(X, Y, distance=distance, compare=compare)) == pytest.approx(
        expected, abs=1e-6
    )


@pytest.mark.parametrize("k", [1, 3])
def test_information_imbalance_matches_the_formula(k):
    for a, b in ((X, Y), (Y, X), (X, X[:, :2])):
        expected = reference_imbalance(a, b, k)
        assert float(rep.information_imbalance(a, b, k=k)) == pytest.approx(expected, abs=1e-12)
    assert float(rep.information_imbalance(X, X)) == pytest.approx(2 / N)  # ranks all 1


@pytest.mark.parametrize(("n1", "n2"), [(1, 2), (2, 4), (3, 5)])
def test_gride_matches_the_likelihood(n1, n2):
    z = np.random.default_rng(3).normal(size=(300, 3))
    expected = reference_gride(z, n1, n2)
    assert float(rep.gride_dimension(z, n1=n1, n2=n2)) == pytest.approx(expected, abs=1e-6)
    if (n1, n2) == (1, 2):  # the TwoNN maximum-likelihood estimate in closed form
        d = np.sort(((z[:, None] - z[None]) ** 2).sum(-1), axis=1)[:, 1:3] ** 0.5
        assert expected == pytest.approx(len(z) / np.log(d[:, 1] / d[:, 0]).sum(), rel=1e-6)


def test_gride_counts_duplicates_once_and_sees_the_manifold():
    z = np.random.default_rng(4).normal(size=(150, 2)) @ np.random.default_rng(5).normal(
        size=(2, 6)
    )
    assert 1.6 < float(rep.gride_dimension(z, n1=2, n2=4)) < 2.4
    twice = np.concatenate([z, z])
    assert float(rep.gride_dimension(twice)) == pytest.approx(float(rep.gride_dimension(z)))
    assert np.isnan(float(rep.gride_dimension(np.ones((6, 2)))))


# -- invariances and known biases --------------------------------------------------------


def test_rotation_and_isotropic_scaling_leave_cka_and_shape_distance_alone():
    moved = 2.5 * X @ rotation(6, 1) + 4.0
    padded = np.concatenate([X, np.zeros((N, 3))], axis=1) @ rotation(9, 2)  # D₁ ≠ D₂
    for other in (moved, padded):
        for options in ({}, {"debiased": True}, {"kernel": "rbf"}):
            assert float(rep.cka(X, other, **options)) == pytest.approx(1.0, abs=1e-10)
        assert float(rep.procrustes_distance(X, other)) == pytest.approx(0.0, abs=1e-6)
        assert float(rep.shape_distance(X, other, alpha=0.0)) == pytest.approx(0.0, abs=1e-6)
    # not invariant to stretching one direction: Procrustes sees it, CCA (α = 0) does not
    stretched = X * np.array([1, 1, 1, 1, 1, 5.0])
    assert float(rep.cka(X, stretched)) < 0.99
    assert float(rep.procrustes_distance(X, stretched)) > 0.05
    assert float(rep.shape_distance(X, stretched, alpha=0.0)) == pytest.approx(0.0, abs=1e-6)


def test_cka_and_rsa_ignore_the_order_of_features():
    perm = np.random.default_rng(6).permutation(9)
    for measure in (rep.cka, rep.rsa, rep.shape_distance, rep.svcca):
        assert float(measure(X, Y[:, perm])) == pytest.approx(float(measure(X, Y)), abs=1e-10)


def test_shape_distance_is_a_metric():
    rng = np.random.default_rng(7)
    clouds = [rng.normal(size=(20, 4)) @ rng.normal(size=(4, 3 + 2 * (i % 2)))
              for i in range(12)]  # fmt: skip
    for alpha in (1.0, 0.5):
        d = np.array([[float(rep.shape_distance(a, b, alpha=alpha)) for b in clouds]
                      for a in clouds])  # fmt: skip
        np.testing.assert_allclose(d, d.T, atol=1e-10)
        np.testing.assert_allclose(np.diag(d), 0, atol=1e-6)
        triples = rng.choice(len(clouds), size=(50, 3))
        for i, j, k in triples:
            assert d[i, k] <= d[i, j] + d[j, k] + 1e-9


def test_debiased_cka_removes_the_bias_of_independent_clouds():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(50, 500)), rng.normal(size=(50, 500))
    assert float(rep.cka(x, y)) > 0.8  # the known bias of the biased estimator
    assert abs(float(rep.cka(x, y, debiased=True))) < 0.05


def test_rank_deficient_inputs_give_finite_answers():
    copy = np.concatenate([X, X[:, :2], 0 * X[:, :1]], axis=1)  # duplicated and dead units
    for value in (rep.svcca(X, copy), rep.pwcca(X, copy), rep.cka(X, copy, debiased=True)):
        assert np.isfinite(float(value))
    assert float(rep.svcca(X, copy, keep=1.0)) == pytest.approx(1.0, abs=1e-6)
    rho = rep.cca_correlations(X, copy)
    assert np.all(np.isfinite(rho)) and float(rho[0]) == pytest.approx(1.0, abs=1e-6)
    flat = np.ones((N, 3))  # no variance at all: undefined, said as NaN
    assert np.isnan(float(rep.cka(X, flat))) and np.isnan(float(rep.shape_distance(X, flat)))


# -- computation: chunks, NumPy streaming, jit, float32 ----------------------------------


def test_wide_layers_by_chunks_agree_with_one_block():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(30, 200)), rng.normal(size=(30, 130)) + X[:30, :1]
    whole = float(rep.cka(x, y, kernel="rbf"))
    # 64 features a chunk, with a remainder: NumPy streamed, and JAX sliced under jit
    assert float(rep.cka(x, y, kernel="rbf", chunk=64)) == pytest.approx(whole, abs=1e-12)
    jitted = jax.jit(lambda a, b: rep.cka(a, b, kernel="rbf", chunk=64))
    assert float(jitted(jnp.asarray(x), jnp.asarray(y))) == pytest.approx(whole, abs=1e-12)
    assert float(rep.rsa(x, y, distance="correlation", chunk=64)) == pytest.approx(
        reference_rsa(x, y, "correlation", "spearman"), abs=1e-6
    )


@pytest.mark.slow
def test_every_measure_runs_under_jit():
    x, y = jnp.asarray(X), jnp.asarray(Y)
    for measure in (rep.cka, rep.svcca, rep.pwcca, rep.shape_distance, rep.rsa,
                    rep.information_imbalance, rep.cca_correlations):  # fmt: skip
        np.testing.assert_allclose(jax.jit(measure)(x, y), measure(X, Y), atol=1e-10)
    assert float(jax.jit(rep.gride_dimension)(x)) == pytest.approx(float(rep.gride_dimension(X)))


@pytest.mark.slow
def test_float32_stays_float32_and_close():
    x, y = X.astype(np.float32), Y.astype(np.float32)
    for measure, tolerance in ((rep.cka, 1e-5), (rep.svcca, 1e-4), (rep.pwcca, 1e-4),
                               (rep.shape_distance, 1e-3), (rep.rsa, 1e-5),
                               (rep.information_imbalance, 1e-6)):  # fmt: skip
        value = measure(x, y)
        assert value.dtype == jnp.float32
        assert float(value) == pytest.approx(float(measure(X, Y)), abs=tolerance)
    assert float(rep.cka(x, 2 * x @ rotation(6, 1).astype(np.float32))) == pytest.approx(
        1, abs=1e-5
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rep.cka(X, Y[:10]), "`x` and `y` must hold the same inputs"),
        (lambda: rep.cka(X[0], Y), r"`x` must be a representation of shape \(n"),
        (lambda: rep.cka(X, Y, kernel="cosine"), "`kernel` must be one of 'linear', 'rbf'"),
        (
            lambda: rep.cka(X, Y, sigma=0.5),
            '`sigma` is the RBF bandwidth: give it with kernel="rbf"',
        ),
        (lambda: rep.cka(X, Y, kernel="rbf", sigma=-1), "`sigma` must be a positive number"),
        (lambda: rep.cka(X[:3], Y[:3], debiased=True), r"shape \(n ≥ 4, d\)"),
        (lambda: rep.cka(X, Y, chunk=0), "`chunk` must be a positive integer"),
        (lambda: rep.cka(X, np.full((N, 2), "a")), "`y` must hold real numbers"),
        (lambda: rep.cca_correlations(X, Y, rank=0), "`rank` must be a positive integer"),
        (lambda: rep.svcca(X, Y, keep=1.5), r"`keep` must be a fraction of variance in \(0, 1\]"),
        (lambda: rep.shape_distance(X, Y, alpha=2), r"`alpha` must be in \[0, 1\]"),
        (lambda: rep.rsa(X, Y, distance="cosine"), "`distance` must be one of"),
        (lambda: rep.rsa(X, Y, compare="kendall"), "`compare` must be one of"),
        (lambda: rep.information_imbalance(X, Y[:5]), "`a` and `b` must hold the same inputs"),
        (lambda: rep.information_imbalance(X, Y, k=N), r"`k` must be an integer in \[1, N − 1\]"),
        (lambda: rep.gride_dimension(X, n1=2, n2=2), "`n1` < `n2` < N"),
        (lambda: rep.gride_dimension(X, n1=0), "`n1` must be a positive integer"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
