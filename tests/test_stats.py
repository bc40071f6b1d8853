"""Statistics on manifolds: closed forms of Fréchet means, tangent PCA, interpolation,
and geodesic k-medoids on the "Latent Space Oddity" toy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import mlp_decoder
from sklearn.metrics import adjusted_rand_score

import jgeo
from jgeo import stats


def _stereographic(p):
    return p[..., :2] / (1 - p[..., 2:3])


def _around(centre, angle, count=4):
    """`count` points at geodesic distance `angle` from `centre` on the unit sphere, in
    directions spread evenly around it."""
    e1 = np.cross(centre, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(centre, e1)
    turns = 2 * np.pi * np.arange(count) / count
    return np.array(
        [np.cos(angle) * centre + np.sin(angle) * (np.cos(a) * e1 + np.sin(a) * e2) for a in turns]
    )


def test_frechet_mean_of_symmetric_points_on_the_sphere_is_their_centre():
    centre = np.array([0.3, -0.2, -0.9]) / np.linalg.norm([0.3, -0.2, -0.9])
    points = jnp.asarray(_stereographic(_around(centre, 0.5)))
    metric = jgeo.StereographicSphere(2)
    result = jax.jit(lambda p: stats.frechet_mean(metric, p))(points)
    assert result.converged and result.log_maps_failed == 0
    np.testing.assert_allclose(result.mean, _stereographic(centre), atol=1e-6)
    # ... which is not the mean of the coordinates.
    assert np.max(np.abs(points.mean(0) - _stereographic(centre))) > 1e-5


def _mobius_add(u, v):
    uv, uu, vv = u @ v, u @ u, v @ v
    return ((1 + 2 * uv + vv) * u + (1 - uu) * v) / (1 + 2 * uv + uu * vv)


@pytest.mark.slow
def test_frechet_mean_in_the_poincare_ball_is_the_centre_of_symmetry():
    # Symmetric points about the origin, moved by the Möbius translation to c (an isometry).
    c = jnp.array([0.4, -0.3])
    base = 0.5 * jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    points = jnp.stack([_mobius_add(c, p) for p in base])
    result = stats.frechet_mean(jgeo.PoincareBall(2), points)
    assert result.converged
    np.testing.assert_allclose(result.mean, c, atol=1e-6)


@pytest.mark.slow
def test_frechet_mean_under_a_linear_decoder_is_the_euclidean_weighted_mean():
    a = jnp.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    points = jax.random.normal(jax.random.key(0), (7, 2))
    weights = jnp.arange(1.0, 8.0)
    metric = jgeo.Pullback(lambda z: a @ z)
    mean = jax.jit(lambda p, w, i: stats.frechet_mean(metric, p, w, init=i))
    result = mean(points, weights, jnp.array([2.0, -1.0]))
    np.testing.assert_allclose(result.mean, weights @ points / weights.sum(), atol=1e-8)


@pytest.mark.slow
def test_tangent_pca_of_a_great_circle_arc_finds_one_component():
    centre = np.array([0.0, 0.6, -0.8])
    direction = np.array([1.0, 0.0, 0.0])
    angles = np.linspace(-0.6, 0.6, 9)
    arc = np.cos(angles)[:, None] * centre + np.sin(angles)[:, None] * direction
    result = jax.jit(stats.tangent_pca)(
        jgeo.StereographicSphere(2), jnp.asarray(_stereographic(arc))
    )
    assert result.explained_variance_ratio[0] > 0.99
    np.testing.assert_allclose(result.base, _stereographic(centre), atol=1e-6)
    # Components are G-orthonormal tangent vectors at the base.
    g = jgeo.StereographicSphere(2)(result.base)
    np.testing.assert_allclose(result.components @ g @ result.components.T, np.eye(2), atol=1e-8)
    # The first points along the image of the arc's direction.
    step = _stereographic(arc[5]) - _stereographic(arc[4])
    cosine = (
        abs(result.components[0] @ step)
        / np.linalg.norm(result.components[0])
        / np.linalg.norm(step)
    )
    assert cosine > 0.99


@pytest.mark.slow
def test_geodesic_interpolation_is_evenly_spaced_in_arc_length():
    metric = jgeo.PoincareBall(2)
    x, y = jnp.array([-0.5, 0.2]), jnp.array([0.6, 0.3])
    path = stats.geodesic_interpolation(metric, x, y, 6)
    np.testing.assert_allclose(path[0], x, atol=1e-9)
    np.testing.assert_allclose(path[-1], y, atol=1e-6)
    steps = jax.vmap(lambda a, b: jgeo.distance(metric, a, b))(path[:-1], path[1:])
    np.testing.assert_allclose(steps, jgeo.distance(metric, x, y) / 5, rtol=1e-5)


def test_pairwise_distances_in_batches_match_one_by_one():
    metric = jgeo.PoincareBall(2)
    points = 0.5 * jax.random.uniform(jax.random.key(1), (5, 2), minval=-1)
    matrix = stats.pairwise_distances(metric, points, stats.Exact(batch_size=3))  # 4 batches
    i, j = np.triu_indices(5, 1)
    upper = jax.jit(jax.vmap(lambda a, b: jgeo.distance(metric, a, b)))(points[i], points[j])
    expected = np.zeros((5, 5))
    expected[i, j] = expected[j, i] = upper
    np.testing.assert_allclose(matrix, expected, atol=1e-8)


# A point that is not one of the metric's: not finite, or outside the ball. The exact
# tier gives NaN for its row and column and keeps the other pairs; so must the graph
# and refined tiers, which gave the point finite graph distances, and (NaN) every
# refined pair NaN, the graph's paths running to it.
BALL = jgeo.PoincareBall(2)
POINTS = jax.random.uniform(jax.random.key(0), (8, 2), minval=-0.5, maxval=0.5)
OFF_THE_METRIC = [jnp.nan, 1.5]  # the first coordinate of point 3
LOST = np.zeros((8, 8), bool)
LOST[3], LOST[:, 3] = True, True
LOST[3, 3] = False  # the diagonal stays 0, as in the exact tier


def test_graph_tier_loses_only_the_pairs_of_a_point_off_the_metric():
    graph = jax.jit(lambda p: stats.pairwise_distances(BALL, p, stats.Graph(k=4)))
    # Without the point the graph is the same: no node takes it as a neighbour.
    alone = graph(POINTS[np.arange(8) != 3])
    for bad in OFF_THE_METRIC:
        matrix = graph(POINTS.at[3, 0].set(bad))
        np.testing.assert_array_equal(np.isnan(matrix), LOST)
        np.testing.assert_allclose(np.delete(np.delete(matrix, 3, 0), 3, 1), alone, rtol=1e-12)


@pytest.mark.slow  # the refined tier's queue of energy solves takes ~4 s to compile
def test_refined_tier_loses_only_the_pairs_of_a_point_off_the_metric():
    exact = jax.vmap(jax.vmap(BALL.distance, (None, 0)), (0, None))(POINTS, POINTS)

    def total(p):  # the matrix and, in the same program, the gradient of its valid part
        matrix = stats.pairwise_distances(BALL, p, stats.Refined(k=4))
        return jnp.nansum(matrix), matrix

    refined = jax.jit(jax.value_and_grad(total, has_aux=True))
    for bad in OFF_THE_METRIC:
        (_, matrix), grad = refined(POINTS.at[3, 0].set(bad))
        np.testing.assert_array_equal(np.isnan(matrix), LOST)
        np.testing.assert_allclose(matrix[~LOST], exact[~LOST], rtol=5e-3, atol=1e-12)
        assert np.all(np.isfinite(np.delete(grad, 3, 0)))


@pytest.mark.slow
def test_kmedoids_finds_well_separated_clusters_and_treats_failures_as_far():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(size=(10, 2)) * 0.1, rng.normal(size=(10, 2)) * 0.1 + 5])
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    d[0, 15] = d[15, 0] = np.nan
    result = stats.kmedoids(jnp.asarray(d), 2, jax.random.key(0))
    assert adjusted_rand_score(np.repeat([0, 1], 10), np.asarray(result.labels)) == 1.0
    with pytest.raises(ValueError, match="1 ≤ `k` ≤ n"):
        stats.kmedoids(jnp.asarray(d), 21, jax.random.key(0))


@pytest.mark.slow
def test_geodesic_kmedoids_separates_what_a_stochastic_decoder_keeps_apart():
    # "Latent Space Oddity" (Arvanitidis et al. 2018): two long bands of codes; the RBF
    # variance of a Gaussian decoder grows between them, so its expected metric makes
    # the gap expensive to cross. Euclidean k-medoids cuts the bands in halves.
    m = 12
    xs = np.linspace(-4, 4, m)
    codes = jnp.asarray(
        np.concatenate([np.stack([xs, np.full(m, 0.8)], 1), np.stack([xs, np.full(m, -0.8)], 1)])
    )
    truth = np.repeat([0, 1], m)

    def std(z):
        precision = jnp.sum(jnp.exp(-jnp.sum((z[None] - codes) ** 2, -1) / (2 * 0.3**2))) + 1e-3
        return jnp.full(2, 1 / jnp.sqrt(precision))

    metric = jgeo.StochasticPullback(lambda z: z, std)
    key = jax.random.key(0)
    solve = jax.jit(
        # The energy curves alone: at 16 points they do not resolve the walls' lengths to
        # 1e-3 (`distance`'s default would report so), but they rank the pairs.
        lambda c: stats.geodesic_kmedoids(
            metric, c, 2, key, tier=stats.Exact(solver=jgeo.EnergyBVP(), rtol=1e-3, atol=1e-3)
        )
    )
    result, distances = solve(codes)
    assert not np.any(np.isnan(distances))
    geodesic_ari = adjusted_rand_score(truth, np.asarray(result.labels))
    euclidean = stats.kmedoids(jnp.linalg.norm(codes[:, None] - codes[None], axis=-1), 2, key)
    euclidean_ari = adjusted_rand_score(truth, np.asarray(euclidean.labels))
    assert geodesic_ari >= 0.9 and euclidean_ari < 0.5
    # Crossing the 1.6-wide gap costs about as much as walking the whole 8-long band.
    assert distances[0, m].item() > 4 * 1.6


def _sphere_chart(q):
    """Spherical coordinates (θ, φ) ↦ the unit sphere: a pullback whose distances are
    great-circle angles."""
    theta, phi = q[0], q[1]
    return jnp.stack([jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)])


@pytest.mark.slow
def test_graph_and_refined_distances_against_closed_forms():
    # The tiers of `pairwise_distances` on metrics whose distances are known: the graph
    # overestimates by a few percent at most, the refined tier is within 0.5 %.
    key_ball, key_sphere = jax.random.split(jax.random.key(3))
    radius = 0.75 * jnp.sqrt(jax.random.uniform(key_ball, (300,)))
    angle = jax.random.uniform(jax.random.fold_in(key_ball, 1), (300,), maxval=2 * jnp.pi)
    ball_points = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], -1)
    ball = jgeo.PoincareBall(2)
    exact = jax.vmap(jax.vmap(ball.distance, (None, 0)), (0, None))(ball_points, ball_points)
    graph = jax.jit(lambda p: stats.pairwise_distances(ball, p, stats.Graph(k=12)))(ball_points)
    off = ~np.eye(300, dtype=bool)
    relative = np.asarray(graph / exact - 1)[off]
    assert np.all(np.isfinite(relative)) and np.median(relative) < 0.05
    assert relative.min() > -5e-3  # graph paths are curves: never shorter, up to quadrature

    # A pullback (the unit sphere in spherical coordinates), its graph densified by
    # reference points, and the refined tier from its paths.
    low, high = jnp.array([0.6, -1.2]), jnp.array([2.5, 1.2])
    sphere_points = low[None] + (high - low)[None] * jax.random.uniform(key_sphere, (12, 2))
    uniform = jax.random.uniform(jax.random.fold_in(key_sphere, 1), (400, 2))
    reference = low[None] + (high - low)[None] * uniform
    unit = jax.vmap(_sphere_chart)(sphere_points)
    great_circle = jnp.arccos(jnp.clip(unit @ unit.T, -1, 1))
    metric = jgeo.Pullback(_sphere_chart)
    kinds = {"graph": stats.Graph, "refined": lambda **kw: stats.Refined(rtol=1e-6, **kw)}
    tiers = {
        name: jax.jit(
            lambda p, r, kind=kind: stats.pairwise_distances(metric, p, kind(k=16, reference=r))
        )(sphere_points, reference)
        for name, kind in kinds.items()
    }
    off = ~np.eye(12, dtype=bool)
    graph_error = np.asarray(tiers["graph"] / great_circle - 1)[off]
    refined_error = np.asarray(tiers["refined"] / great_circle - 1)[off]
    assert np.median(graph_error) < 0.05 and graph_error.max() < 0.15 and graph_error.min() > -5e-3
    assert np.max(np.abs(refined_error)) < 5e-3
    with pytest.raises(TypeError, match="`tier` must be"):
        stats.pairwise_distances(ball, ball_points, "graph")


@pytest.mark.slow
@pytest.mark.parametrize("d, out", [(2, 6), (8, 12)])  # by blocks; matrix-free (CG)
def test_refined_distances_run_every_pair_as_its_own_energy_solve(d, out):
    # The refined tier solves its pairs in a queue, 4 at a time here so that slots are
    # refilled (one a turn, so some wait): each pair's length is the one
    # `connecting_geodesic` gives it alone, at the tier's tolerance — solving the normal
    # equations as `EnergyBVP()` does (from d = 8 on, by CG).
    metric = jgeo.Pullback(mlp_decoder(jax.random.key(5), d, out))
    points = jax.random.normal(jax.random.key(6), (7, d))

    def total(p):  # the matrix and, in the same compiled program, its gradient
        matrix = stats.pairwise_distances(metric, p, stats.Refined(k=3, slots=4))
        return matrix.sum(), matrix

    (_, refined), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(points)
    graph = jgeo.geodesic_graph(metric, points, 3)
    i, j = np.triu_indices(7, k=1)
    alone = jax.jit(
        jax.vmap(
            lambda x, y: (
                jgeo.connecting_geodesic(
                    metric, x, y, solver=jgeo.EnergyBVP(), graph=graph, rtol=3e-3, atol=3e-3
                ).length
            )
        )
    )(points[i], points[j])
    assert np.all(np.isfinite(alone))
    np.testing.assert_allclose(refined[i, j], alone, rtol=1e-10)
    np.testing.assert_array_equal(refined, refined.T)
    # Gradients reach the points through the measured lengths (the solves are constants).
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_old_pairwise_distances_arguments_still_work_with_a_warning():
    # The string tiers of the last release: the same matrices, a DeprecationWarning, and
    # the old keyword errors.
    points = POINTS[:5]
    with pytest.warns(DeprecationWarning, match="pass a tier"):
        old = stats.pairwise_distances(BALL, points, approximation="graph", k=4)
    np.testing.assert_array_equal(old, stats.pairwise_distances(BALL, points, stats.Graph(k=4)))
    with pytest.warns(DeprecationWarning):
        old = stats.pairwise_distances(BALL, points, batch_size=3, rtol=1e-6)
    new = stats.pairwise_distances(BALL, points, stats.Exact(batch_size=3, rtol=1e-6))
    np.testing.assert_array_equal(old, new)
    with pytest.raises(ValueError, match="`approximation` must be None"):
        stats.pairwise_distances(BALL, points, approximation="dijkstra")
    with pytest.raises(TypeError, match="not both"):
        stats.pairwise_distances(BALL, points, stats.Graph(), k=3)
