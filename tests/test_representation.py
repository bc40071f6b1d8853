"""`jgeo.representation`: intrinsic dimension, spread, class structure and active
dimensions on point clouds whose answers are known."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgeo
from jgeo import representation as rep
from jgeo._labels import class_labels
from jgeo.data import load


def _gaussian(n, d, embed=None, seed=0):
    z = np.random.default_rng(seed).normal(size=(n, d))
    if embed is not None:  # a random linear embedding into R^embed
        z = z @ np.random.default_rng(seed + 1).normal(size=(d, embed))
    return z


@pytest.mark.parametrize(
    "points, dimension, tolerance",
    [
        (load("swissroll", n=2000).x, 2, 0.1),
        (load("sphere", n=2000).x, 2, 0.1),
        (_gaussian(2000, 5, embed=20), 5, 0.3),
    ],
    ids=["swissroll", "sphere", "gaussian-5-in-20"],
)
def test_intrinsic_dimension_of_known_manifolds(points, dimension, tolerance):
    z = jnp.asarray(points, jnp.float64)
    assert abs(float(rep.twonn_dimension(z)) - dimension) < tolerance
    assert abs(float(rep.mle_dimension(z)) - dimension) < tolerance


def test_twonn_is_the_scikit_dimension_estimator():
    # The estimator written out in NumPy as scikit-dimension's TwoNN fits it.
    z = load("swissroll", n=500).x.astype(np.float64)
    distances = np.linalg.norm(z[:, None] - z[None], axis=-1) + np.diag(np.full(500, np.inf))
    r = np.sort(distances, axis=1)[:, :2]
    mu = np.sort(r[:, 1] / r[:, 0])[:450]
    x, y = np.log(mu), -np.log(1 - np.arange(1, 451) / 500)
    assert float(rep.twonn_dimension(z, discard=0.1)) == pytest.approx(x @ y / (x @ x), rel=1e-10)


def test_effective_rank_and_participation_ratio_count_directions():
    isotropic = jnp.asarray(_gaussian(4000, 8))
    assert float(rep.effective_rank(isotropic)) == pytest.approx(8, rel=0.05)
    assert float(rep.participation_ratio(isotropic)) == pytest.approx(8, rel=0.05)
    line = jnp.outer(jnp.linspace(-1, 1, 50), jnp.arange(1.0, 5.0)) + 3.0  # offset ignored
    assert float(rep.effective_rank(line)) == pytest.approx(1, abs=1e-6)
    assert float(rep.participation_ratio(line)) == pytest.approx(1, abs=1e-6)


def _classes(noise, n_per=50, c=4, d=6, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(c, d)) * 3
    labels = np.repeat(np.arange(c), n_per)
    return means[labels] + noise * rng.normal(size=(c * n_per, d)), labels


def test_nc1_is_zero_for_collapsed_classes_and_grows_with_noise():
    collapsed, labels = _classes(0.0)
    assert float(rep.class_separation(collapsed, labels).nc1) == pytest.approx(0, abs=1e-20)
    values = [float(rep.class_separation(*_classes(noise)).nc1) for noise in (0.01, 0.1, 1.0)]
    assert values[0] < values[1] < values[2]
    np.testing.assert_allclose(values[1] / values[0], 100, rtol=0.05)  # NC1 ∝ noise²


def test_nc1_in_float32_inverts_only_the_directions_between_classes():
    # 10 classes in 64 dimensions: Σ_B has rank 9, and a default pinv of a float32 Σ_B
    # would invert its 55 rounding-noise eigenvalues too.
    z, labels = _classes(0.5, c=10, d=64)
    exact = float(rep.class_separation(z, labels).nc1)
    single = float(rep.class_separation(z.astype(np.float32), labels).nc1)
    assert single == pytest.approx(exact, rel=1e-3)
    sigma = rep.class_separation(z.astype(np.float32), labels)
    naive = np.trace(
        np.cov(z.T, bias=True).astype(np.float32)
        @ np.linalg.pinv(np.cov(np.asarray(sigma.means).T, bias=True).astype(np.float32))
    )
    assert np.isfinite(single) and naive / 10 != pytest.approx(exact, rel=0.5)


def test_class_accuracies_and_absent_classes_under_jit():
    z, labels = _classes(0.3)
    assert float(rep.nearest_centroid_accuracy(z, labels)) == 1.0
    assert float(rep.knn_accuracy(z, labels, k=5)) == 1.0
    mixed, _ = _classes(0.3, seed=1)
    shuffled = np.random.default_rng(0).permutation(labels)
    assert float(rep.knn_accuracy(mixed, shuffled)) < 0.5
    # Labels 0 and 2 of num_classes = 3: the absent class is left out, under jit too.
    two = np.where(labels[:100] == 1, 2, labels[:100])
    separation = jax.jit(functools.partial(rep.class_separation, num_classes=3))(z[:100], two)
    assert separation.counts.tolist() == [50, 0, 50] and np.isnan(separation.means[1]).all()
    assert np.isfinite(float(separation.nc1))
    accuracy = jax.jit(functools.partial(rep.nearest_centroid_accuracy, num_classes=3))
    assert float(accuracy(z[:100], two)) == 1.0
    with pytest.raises(ValueError, match="pass `num_classes`"):
        jax.jit(rep.class_separation)(z, labels)


def test_active_dimensions_of_a_decoder_that_uses_three_of_sixteen_directions():
    a = jax.random.normal(jax.random.key(0), (100, 3)) @ jax.random.normal(
        jax.random.key(1), (3, 16)
    )
    z = jax.random.normal(jax.random.key(2), (20, 16))
    assert rep.active_dimensions(lambda p: jnp.tanh(a @ p), z).tolist() == [3] * 20

    def image(p):  # a 2-D image decoder that ignores all but two coordinates
        return jnp.outer(jnp.sin(p[0] + jnp.arange(4.0)), jnp.cos(p[1] * jnp.arange(5.0)))

    assert set(rep.active_dimensions(image, z[:, :6]).tolist()) == {2}


def test_singular_values_avoid_the_lapack_kernel_that_waits_on_its_own_thread_pool():
    # jaxlib's gesdd (jax's default SVD on CPU) waits on XLA's intra-op pool while running
    # on it: on one core, `jgeo train` hung at its first probe. See `_linalg.singular_values`.
    z = jnp.asarray(_gaussian(64, 4), jnp.float32)
    programs = [
        jax.jit(rep.effective_rank).lower(z),
        jax.jit(rep.participation_ratio).lower(z),
        jax.jit(lambda z: rep.active_dimensions(jnp.tanh, z)).lower(z),
    ]
    for program in programs:
        text = program.as_text()
        assert "gesvd" in text and "gesdd" not in text


def test_linear_cka_sees_through_rotation_and_scale_only():
    x = np.random.default_rng(0).normal(size=(200, 3))
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    assert float(rep.linear_cka(x, 3.0 * x @ q + 1.0)) == pytest.approx(1.0)
    assert float(rep.linear_cka(x, np.random.default_rng(2).normal(size=(200, 3)))) < 0.1
    assert float(rep.linear_cka(x, x * [1.0, 1.0, 0.0])) < 1.0
    with pytest.raises(ValueError, match="equal n"):
        rep.linear_cka(x, x[:10])


_Z = np.random.default_rng(0).normal(size=(12, 3))
_Y = np.arange(12) % 3  # three classes of four points


def _relabel(index, value):
    """`_Y` as int64 with `labels[index] = value`."""
    labels = _Y.astype(np.int64)
    labels[index] = value
    return labels


def _without_x64(call):
    """`call` with jax's 32-bit integers, where int64 labels would be truncated."""

    def run():
        with jax.enable_x64(False):
            return call()

    return run


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rep.twonn_dimension(np.zeros((2, 3))), r"shape \(n ≥ 3, d\)"),
        (lambda: rep.twonn_dimension(np.ones((10, 2)), discard=0.0), "`discard`"),
        (lambda: rep.mle_dimension(np.ones((10, 2)), k=10), r"`k` must be in \[2, n\)"),
        (lambda: rep.class_separation(np.ones((10, 2)), np.ones(9, int)), "`labels` must be"),
        (lambda: rep.knn_accuracy(np.ones((10, 2)), np.zeros(10, int), k=0), "`k` must be"),
        # Labels outside [0, num_classes): refused, naming them, never dropped or miscounted.
        (
            lambda: rep.nearest_centroid_accuracy(_Z, _relabel(0, -1)),
            r"`labels` must be in \[0, 2\*\*31 - 1\): found -1 \(1 point\); -1 does not "
            "mark unlabelled points",
        ),
        (
            lambda: rep.class_separation(_Z, _relabel(0, 7), 3),
            r"^`labels` must be in \[0, num_classes = 3\): found 7 \(1 point\)\.$",
        ),
        (
            lambda: rep.knn_accuracy(_Z, _relabel([0, 1, 2, 3], [-2, 9, 9, 3]), num_classes=3),
            r"found -2, 3, 9 \(4 points\)",
        ),
        (
            lambda: rep.class_separation(_Z, _relabel(np.arange(7), np.arange(3, 10)), 3),
            r"found 3, 4, 5, 6, 7, … \(7 points\)",
        ),
        (
            lambda: rep.class_geodesics(jgeo.Euclidean(3), _Z, _relabel(5, 3), 3),
            r"num_classes = 3\): found 3 \(1 point\)",
        ),
        # Beyond int32: refused before jax could truncate 2³² + 1 to 1 (without x64) or
        # allocate 2³² + 2 classes (with x64).
        (
            lambda: rep.class_separation(_Z, _relabel(0, 2**32 + 1), 3),
            r"found 4294967297 \(1 point\)",
        ),
        (
            _without_x64(lambda: rep.nearest_centroid_accuracy(_Z, _relabel(0, 2**32 + 1))),
            r"\[0, 2\*\*31 - 1\): found 4294967297 \(1 point\)",
        ),
        (
            lambda: rep.nearest_centroid_accuracy(_Z, _relabel(0, 2**32 + 1)),
            r"\[0, 2\*\*31 - 1\): found 4294967297 \(1 point\)",
        ),
        (lambda: rep.class_separation(_Z, _Y, num_classes=0), r"`num_classes` must be in \[1,"),
        (lambda: rep.class_separation(_Z, _Y, num_classes=2.0), "`num_classes` must be an int"),
        (lambda: rep.class_separation(_Z, _Y.astype(float)), "integer classes of shape"),
    ],
    ids=[
        "twonn-too-few-points",
        "twonn-discard",
        "mle-k",
        "labels-shape",
        "knn-k",
        "label-negative",
        "label-beyond-num-classes",
        "labels-several-bad",
        "labels-many-bad",
        "class-geodesics-label",
        "label-beyond-int32",
        "label-beyond-int32-without-x64",
        "label-beyond-int32-no-num-classes",
        "num-classes-zero",
        "num-classes-float",
        "labels-float",
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "call",
    [
        # NC1 = Tr(Σ_W Σ_B⁺)/C needs Σ_B ≠ 0: one class, or classes with equal means.
        lambda: rep.class_separation(_Z, np.zeros(12, int)).nc1,
        lambda: rep.class_separation(_Z, np.zeros(12, int), 3).nc1,
        lambda: (
            jax.jit(functools.partial(rep.class_separation, num_classes=2))(
                _Z, np.zeros(12, int)
            ).nc1
        ),
        lambda: rep.class_separation(np.concatenate([_Z, _Z]), np.repeat([0, 1], 12)).nc1,
        lambda: rep.class_separation(np.ones((12, 3)), _Y).nc1,
        # Intrinsic dimension needs enough distinct points: two for TwoNN's fit, k + 1 for MLE.
        lambda: rep.twonn_dimension(np.ones((10, 3))),
        lambda: rep.twonn_dimension(np.repeat(_Z[:2], 5, axis=0)),
        lambda: rep.mle_dimension(np.ones((10, 3)), k=3),
        lambda: rep.mle_dimension(np.repeat(_Z[:3], 4, axis=0), k=3),
        lambda: jax.jit(functools.partial(rep.mle_dimension, k=3))(np.repeat(_Z[:3], 4, axis=0)),
    ],
    ids=[
        "nc1-one-class",
        "nc1-one-of-three-present",
        "nc1-one-class-under-jit",
        "nc1-equal-class-means",
        "nc1-all-points-equal",
        "twonn-all-points-equal",
        "twonn-two-distinct-points",
        "mle-all-points-equal",
        "mle-k-distinct-points",
        "mle-k-distinct-points-under-jit",
    ],
)
def test_undefined_answers_are_nan(call):
    assert np.isnan(float(call()))


def test_a_label_out_of_range_raises_under_jit_and_vmap():
    bad = jnp.asarray(_relabel(0, 7))
    message = r"`labels` must be in \[0, num_classes = 3\): found a label outside it"
    with pytest.raises(eqx.EquinoxRuntimeError, match=message):
        eqx.filter_jit(rep.class_separation)(_Z, bad, 3)
    with pytest.raises(Exception, match=message):  # jax.jit wraps it in a JaxRuntimeError
        jax.jit(functools.partial(rep.nearest_centroid_accuracy, num_classes=3))(_Z, -bad)
    knn = jax.vmap(lambda labels: rep.knn_accuracy(_Z, labels, k=3, num_classes=3))
    with pytest.raises(Exception, match=message):
        knn(jnp.stack([jnp.asarray(_Y), bad]))
    # Good labels pass through unchanged.
    expected = float(rep.knn_accuracy(_Z, _Y, k=3))
    np.testing.assert_array_equal(knn(jnp.stack([jnp.asarray(_Y)] * 2)), [expected] * 2)


def test_class_labels_keep_the_input_kind_for_loaders():
    labels, classes = class_labels(np.array([0, 2, 1], np.uint64), 3)
    assert isinstance(labels, np.ndarray) and labels.dtype == np.int32 and classes == 3
    labels, classes = class_labels(jnp.asarray([True, False]), 2, 4, name="y")
    assert isinstance(labels, jax.Array) and labels.tolist() == [1, 0] and classes == 4
    with pytest.raises(ValueError, match=r"^`y` must be in \[0, num_classes = 2\): found 2"):
        class_labels([0, 2], 2, 2, name="y")


@pytest.mark.parametrize("estimate", [rep.twonn_dimension, rep.mle_dimension], ids=["twonn", "mle"])
def test_duplicate_points_count_once(estimate):
    # Each point two or three times, in another order, one copy with −0.0 for 0.0: the
    # estimate is that of the distinct points (before: MLE 0, TwoNN NaN).
    z = load("swissroll", n=200).x.astype(np.float64)
    z[0, 0] = 0.0
    copies = np.concatenate([z[::-1], z, z[:40]])
    copies[199, 0] = copies[400, 0] = -0.0  # two of the three copies of z[0]
    for dtype in (np.float64, np.float32):  # jit-compiled inside: the same under jax.jit
        expected = float(estimate(z.astype(dtype)))
        got = float(estimate(copies.astype(dtype)))
        assert got == pytest.approx(expected, rel=1e-10 if dtype == np.float64 else 1e-5)


@pytest.mark.slow
def test_neural_collapse_of_a_digits_classifier_recorded_over_training(tmp_path):
    # An MLP classifier of digits, AdamW, its penultimate layer recorded every epoch by
    # a Recorder: the classes collapse (NC1 falls) and separate (nearest centroid). This
    # tanh MLP fell from 0.85 after epoch 1 to 0.19 by epoch 30 and 0.13 by epoch 100.
    import equinox as eqx
    import optax

    from jgeo import dynamics

    data = load("digits")
    x, y = jnp.asarray(data.x), jnp.asarray(data.labels)
    key1, key2 = jax.random.split(jax.random.key(0))
    model = (eqx.nn.MLP(64, 64, 128, 2, activation=jnp.tanh, key=key1),
             eqx.nn.Linear(64, 10, key=key2))  # fmt: skip
    optimiser = optax.adamw(3e-3, weight_decay=5e-4)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))

    def penultimate(model, image):
        return jnp.tanh(model[0](image))

    @eqx.filter_jit
    def epoch(model, opt_state, key):
        arrays, static = eqx.partition(model, eqx.is_array)
        order = jax.random.permutation(key, len(x))[: 14 * 128].reshape(14, 128)

        def step(carry, rows):
            arrays, opt_state = carry

            def loss(arrays):
                model = eqx.combine(arrays, static)
                logits = jax.vmap(lambda i: model[1](penultimate(model, i)))(x[rows])
                return optax.softmax_cross_entropy_with_integer_labels(logits, y[rows]).mean()

            updates, opt_state = optimiser.update(jax.grad(loss)(arrays), opt_state, arrays)
            return (optax.apply_updates(arrays, updates), opt_state), None

        (arrays, opt_state), _ = jax.lax.scan(step, (arrays, opt_state), order)
        return eqx.combine(arrays, static), opt_state

    with dynamics.Recorder(tmp_path, data, encode=penultimate, samples=64) as recorder:
        for e in range(1, 41):
            model, opt_state = epoch(model, opt_state, jax.random.key(e))
            recorder(e, model)
    record = dynamics.load(tmp_path)
    nc1 = record.series("nc1")
    assert nc1[0] / nc1[-1] >= 3
    assert record.series("ncc_accuracy")[-1] > 0.9


def _bands(m=12):
    """ "Latent Space Oddity" (Arvanitidis et al. 2018): two bands of codes, and a Gaussian
    decoder whose RBF variance grows away from them."""
    xs = np.linspace(-4, 4, m)
    codes = np.concatenate(
        [np.stack([xs, np.full(m, 0.8)], 1), np.stack([xs, np.full(m, -0.8)], 1)]
    )
    codes = jnp.asarray(codes)

    def std(z):
        precision = jnp.sum(jnp.exp(-jnp.sum((z[None] - codes) ** 2, -1) / (2 * 0.3**2))) + 1e-3
        return jnp.full(2, 1 / jnp.sqrt(precision))

    return codes, np.repeat([0, 1], m), jgeo.StochasticPullback(lambda z: z, std)


@pytest.mark.slow
def test_class_geodesics_see_the_wall_between_two_bands():
    codes, labels, metric = _bands()
    solve = jax.jit(functools.partial(rep.class_geodesics, metric, num_classes=2,
                                      solver=jgeo.EnergyBVP(), rtol=1e-3))  # fmt: skip
    result = solve(codes, labels)
    assert bool(result.converged)
    np.testing.assert_allclose(result.means[:, 0], 0, atol=1e-6)  # by symmetry
    np.testing.assert_allclose(result.means[0], -result.means[1], atol=1e-6)
    np.testing.assert_allclose(result.euclidean[0, 1], 1.6, rtol=1e-6)
    # Relative to the spread of a band, the expected metric puts the bands several
    # times further apart than the coordinates do, and σ peaks between them.
    assert float(result.ratio) > 3 * float(result.euclidean_ratio)
    sigma_on_data = float(jnp.max(jax.vmap(lambda p: jnp.mean(metric.std(p)))(codes)))
    assert float(result.uncertainty[0, 1]) > 3 * sigma_on_data
    assert np.isnan(result.barrier[0, 0]) and np.isfinite(result.barrier[0, 1])
    # Under the identity decoder's metric (flat) both views agree.
    flat = jax.jit(functools.partial(rep.class_geodesics, jgeo.Pullback(lambda z: z),
                                     num_classes=2, frechet_steps=0, solver=jgeo.EnergyBVP(),
                                     rtol=1e-3))(codes, labels)  # fmt: skip
    np.testing.assert_allclose(flat.ratio, flat.euclidean_ratio, rtol=1e-3)
    assert np.isnan(flat.uncertainty[0, 1])
