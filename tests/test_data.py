"""Data sets: deterministic, offline, with correct ground truth."""

import numpy as np
import pytest

from jgeo import data


@pytest.mark.parametrize("name", data.DATASETS)
def test_deterministic_given_the_seed(name):
    a, b = data.load(name, n=300, seed=3), data.load(name, n=300, seed=3)
    c = data.load(name, n=300, seed=4)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    assert a.x.dtype == np.float32 and a.x.shape[0] == 300 == len(a.color)


def test_digits_ship_offline_with_labels_and_class_filter():
    digits = data.load("digits")
    assert digits.x.shape == (1797, 64) and digits.image_shape == (8, 8)
    assert 0 <= digits.x.min() and digits.x.max() <= 1
    subset = data.load("digits", classes=(0, 1, 3, 6, 7))
    assert set(np.unique(subset.labels)) == {0, 1, 3, 6, 7}
    assert digits.geodesic_distances(np.arange(4)) is None


def test_sprites_are_shapes_with_four_known_factors():
    sprites = data.load("sprites", n=300)
    assert sprites.x.shape == (300, 32 * 32) and sprites.image_shape == (32, 32)
    assert set(np.unique(sprites.labels)) == {0, 1, 2} and sprites.factors.shape == (300, 4)
    assert 0 <= sprites.x.min() and sprites.x.max() <= 1
    # Anti-aliased edges: grey pixels; the area grows with the scale factor (as its square).
    assert np.mean((sprites.x > 0.05) & (sprites.x < 0.95)) > 0.01
    factors = np.array([[0.0, 0.3, 0.5, 0.5], [1.0, 0.3, 0.5, 0.5]])
    small, large = data.sprites_images(factors, np.array([0, 0]))
    assert large.sum() / small.sum() == pytest.approx(4.0, rel=0.05)
    # Rotation is an angle over the shape's symmetry: a full period gives the same image,
    # and in factor space rotations 0.05 and 0.95 are 0.1 apart.
    turned = data.sprites_images(np.array([[0.5, 0.0, 0.4, 0.6], [0.5, 1.0, 0.4, 0.6]]),
                                 np.array([2, 2]))  # fmt: skip
    np.testing.assert_allclose(turned[0], turned[1], atol=1e-5)
    distances = data._factor_distances(np.array([[0, 0.05, 0, 0], [0, 0.95, 0, 0]]), None)
    assert distances[0, 1] == pytest.approx(0.1)
    assert sprites.geodesic_distances(np.arange(5)).shape == (5, 5)


@pytest.mark.parametrize("name", ["swissroll", "scurve"])
def test_flat_ground_truth_is_arc_length(name):
    # Both surfaces are isometric to a flat rectangle: for close pairs, data distance over
    # ground-truth distance is one constant (the standardisation scale).
    ds = data.load(name, n=3000, seed=1)
    index = np.arange(3000)
    truth = ds.geodesic_distances(index[:400])
    x = ds.x[:400].astype(np.float64)
    euclid = np.linalg.norm(x[:, None] - x[None], axis=-1)
    close = (truth > 0) & (truth < 0.05 * truth.max())
    ratio = euclid[close] / truth[close]
    assert ratio.std() / ratio.mean() < 0.02


def test_sphere_and_torus_distances():
    sphere = data.load("sphere", n=500)
    d = sphere.geodesic_distances(np.arange(50))
    assert np.allclose(np.diag(d), 0, atol=1e-3) and d.max() <= np.pi + 1e-6
    torus = data.load("torus", n=1500)
    d = torus.geodesic_distances(np.arange(40))
    assert np.allclose(d, d.T) and np.all(d[~np.eye(40, dtype=bool)] > 0)
    # Graph distances overestimate but stay within the torus's diameter π·√(2²+…) bound.
    assert d.max() < np.pi * 3 + np.pi


def test_circles_are_two_loops():
    ds = data.load("circles", n=400)
    # Centring is by the sample mean, a little off the common centre: radii to ~1 %.
    radius = np.linalg.norm(ds.x - ds.x.mean(0), axis=-1)
    radii = [radius[ds.labels == k].mean() for k in (0, 1)]
    assert radii[0] == pytest.approx(2 * radii[1], rel=2e-2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="mnist"), "unknown data set 'mnist'"),
        (dict(name="swissroll", n=1), "`n` must be at least 2"),
        (dict(name="swissroll", classes=(1,)), "`classes` only applies to digits"),
        (dict(name="swissroll", noise=-1.0), "`noise` must be non-negative"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs)


@pytest.mark.slow
def test_sprites_train_with_the_conv_model():
    from jgeo.train import build, make_config

    config = make_config({"data": "sprites", "model": "conv", "n": 64, "batch_size": 32})
    dataset, model, _ = build(config)
    assert dataset.image_shape == (32, 32)
    assert model.decode(model.encode(dataset.x[:4])).shape == (4, 32 * 32)


def test_pairs_join_classes_and_data_of_one_class_pairs_any_two_points():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 1, 2, 2])
    pairs = data.class_pairs(6, labels, 20, rng)
    assert np.all(labels[pairs[:, 0]] != labels[pairs[:, 1]])
    # One class (a run on one digit): pairs of distinct points, not a refusal.
    pairs = data.class_pairs(6, np.zeros(6, int), 20, rng)
    assert pairs.shape == (20, 2) and np.all(pairs[:, 0] != pairs[:, 1])
    with pytest.raises(ValueError, match="pairs need at least two points, got 1"):
        data.class_pairs(1, None, 1, rng)
