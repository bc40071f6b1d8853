"""Bad input gets one clear error naming the argument and the fix."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import mlp_decoder

import jgeo

X3 = jnp.array([0.1, 0.2, 0.3])


def test_point_of_wrong_length_for_analytic_metric():
    with pytest.raises(ValueError, match=r"`x` has 2 coordinates but PoincareBall is 3-dim"):
        jgeo.riemann(jgeo.PoincareBall(3), jnp.array([0.1, 0.2]))


def test_point_of_wrong_length_for_decoder(key):
    metric = jgeo.Pullback(mlp_decoder(key, 3, 5))
    with pytest.raises(ValueError, match="decoder's latent dimension"):
        jgeo.christoffel(metric, jnp.zeros(4))
    with pytest.raises(ValueError, match="`x` has 4 coordinates but Pullback is 3-dim"):
        jgeo.christoffel(jgeo.Pullback(mlp_decoder(key, 3, 5), dim=3), jnp.zeros(4))


def test_batched_point_points_to_vmap():
    with pytest.raises(ValueError, match="use `jax.vmap`"):
        jgeo.scalar_curvature(jgeo.PoincareBall(3), jnp.zeros((5, 3)))


def test_integer_point():
    with pytest.raises(TypeError, match="`x` must have a floating-point dtype, got int"):
        jgeo.log_volume(jgeo.Euclidean(3), jnp.array([1, 2, 3]))


def test_tangent_vector_shape():
    with pytest.raises(ValueError, match="`v` must be a tangent vector of shape"):
        jgeo.geodesic_acceleration(jgeo.PoincareBall(3), X3, jnp.zeros(2))


def test_decoder_returning_non_vector():
    metric = jgeo.Pullback(lambda z: jnp.outer(z, z))
    with pytest.raises(ValueError, match=r"returned \(3, 3\); flatten it"):
        jgeo.riemann(metric, X3)


def test_decoder_with_too_few_outputs():
    with pytest.raises(ValueError, match="JᵀJ is singular everywhere.*jitter"):
        jgeo.riemann(jgeo.Pullback(lambda z: z[:2]), X3)
    # With jitter the metric is well defined again.
    assert jnp.isfinite(jgeo.log_volume(jgeo.Pullback(lambda z: z[:2], jitter=1e-3), X3))


def test_metric_field_of_wrong_shape():
    with pytest.raises(ValueError, match=r"must return a \(3, 3\) matrix"):
        jgeo.christoffel(jgeo.MetricField(lambda z: jnp.eye(2)), X3)


def test_not_a_metric():
    with pytest.raises(TypeError, match="MetricField"):
        jgeo.christoffel(lambda z: jnp.eye(3), X3)


def test_gaussian_curvature_needs_two_dimensions():
    with pytest.raises(ValueError, match="2-dimensional.*`x` has 3"):
        jgeo.gaussian_curvature(jgeo.PoincareBall(3), X3)


def test_unknown_method():
    with pytest.raises(ValueError, match='`method` must be "auto" or "autodiff"'):
        jgeo.riemann(jgeo.PoincareBall(3), X3, method="fast")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: jgeo.Euclidean(0), "`dim` must be a positive int"),
        (lambda: jgeo.StereographicSphere(2, radius=-1.0), "`radius` must be > 0"),
        (lambda: jgeo.Pullback(lambda z: z, jitter=-1.0), "`jitter` must be a float ≥ 0"),
        (lambda: jgeo.Product(jgeo.Pullback(lambda z: z)), "construct it with `dim=...`"),
        (lambda: jgeo.Product(), "at least one factor"),
        (lambda: jgeo.Pullback(3.0), "expected a callable"),
    ],
)
def test_bad_construction(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_stochastic_decoder_shapes_must_match():
    metric = jgeo.StochasticPullback(lambda z: jnp.tile(z, 2), lambda z: z)
    with pytest.raises(ValueError, match="`mean` returns shape"):
        jgeo.riemann(metric, X3)


def test_singular_metric_raises_not_nan():
    # A decoder whose Jacobian vanishes at the origin: z ↦ (z ⊙ z, z³).
    metric = jgeo.Pullback(lambda z: jnp.concatenate([z * z, z**3]))
    kernels = [jgeo.christoffel, jgeo.riemann, jgeo.scalar_curvature, jgeo.log_volume]
    for kernel in kernels:
        with pytest.raises(eqx.EquinoxRuntimeError, match="jitter=1e-6"):
            kernel(metric, jnp.zeros(3))
    # Also inside jit and vmap, where one bad point in a batch is reported.
    batch = jnp.stack([X3, jnp.zeros(3)])
    with pytest.raises(Exception, match="singular"):
        jax.jit(jax.vmap(jgeo.scalar_curvature, in_axes=(None, 0)))(metric, batch)
    # Jitter makes the same point well defined.
    jittered = jgeo.Pullback(lambda z: jnp.concatenate([z * z, z**3]), jitter=1e-6)
    assert jnp.isfinite(jgeo.scalar_curvature(jittered, jnp.zeros(3)))


def test_boundary_of_poincare_ball_raises():
    with pytest.raises(eqx.EquinoxRuntimeError, match="lies outside the domain of PoincareBall"):
        jgeo.scalar_curvature(jgeo.PoincareBall(2), jnp.array([1.0, 0.0]))


def test_parallel_plane_raises():
    with pytest.raises(eqx.EquinoxRuntimeError, match="`u` and `v` are parallel"):
        jgeo.sectional_curvature(jgeo.PoincareBall(3), X3, X3, 2 * X3)


def test_half_precision_is_refused_at_the_boundary():
    x16 = jnp.array([0.1, 0.2], jnp.float16)
    with pytest.raises(TypeError, match="dtype float16.*float32 or float64.*astype"):
        jgeo.scalar_curvature(jgeo.PoincareBall(2), x16)
    with pytest.raises(TypeError, match="`points` has dtype bfloat16"):
        jgeo.stats.frechet_mean(jgeo.PoincareBall(2), jnp.zeros((3, 2), jnp.bfloat16))


@pytest.mark.parametrize(
    "weights",
    [[1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, jnp.nan, 1.0]],
    ids=["negative", "all-zero", "nan"],
)
def test_frechet_mean_refuses_bad_weights(weights):
    points = jnp.array([[0.1, 0.0], [0.0, 0.2], [-0.1, -0.1]])
    message = "`weights` must be finite and ≥ 0 with a positive sum"
    with pytest.raises(ValueError, match=message):
        jgeo.stats.frechet_mean(jgeo.Euclidean(2), points, jnp.array(weights))
    # Under jit the values are checked when the computation runs (jax.jit wraps the error).
    mean = jax.jit(lambda w: jgeo.stats.frechet_mean(jgeo.Euclidean(2), points, w).mean)
    with pytest.raises(Exception, match=message):
        mean(jnp.array(weights))


def test_frechet_mean_with_a_zero_weight_leaves_the_point_out():
    points = jnp.array([[0.1, 0.0], [0.0, 0.2], [5.0, 5.0]])
    result = jgeo.stats.frechet_mean(jgeo.Euclidean(2), points, jnp.array([1.0, 3.0, 0.0]))
    assert jnp.allclose(result.mean, jnp.array([0.025, 0.15]))


# Issue 36: API errors that named nothing. Each row is (id, call, expected[, marks]):
# expected is (exception, message) for a call that must raise, or (None, text) for one
# that must return a value whose repr contains the text.
def _distance_in_float32_near_the_ball_boundary():
    # Solved in float32 only without x64 (with it, float32 points are solved in float64).
    with jax.enable_x64(False):
        x, y = jnp.array([0.9999, 0.0], jnp.float32), jnp.array([0.0, 0.9999], jnp.float32)
        return jgeo.distance(jgeo.PoincareBall(2), x, y)


def _integer_decoder(z):
    return jnp.round(z).astype(int)


def _integer_decoder_in_a_kernel():
    return jgeo.scalar_curvature(jgeo.Pullback(_integer_decoder), X3)


def _gaussian_fisher(z):
    return z  # one output, where the family needs (mean, std)


def _half_precision_sharpness():
    params = {"w": jnp.array([1.0, -2.0, 0.5], jnp.float16)}
    loss = lambda p: jnp.sum(jnp.array([1.0, 2.0, 3.0], jnp.float16) * p["w"] ** 2)  # noqa: E731
    return jgeo.landscape.hessian_eigenvalues(loss, params, key=jax.random.key(0))


def _from_a_nan_point(method):
    x, v = jnp.array([jnp.nan, 0.0]), jnp.array([0.1, 0.0])
    ts = jnp.linspace(0.0, 1.0, 3)
    return jgeo.geodesic(jgeo.PoincareBall(2), x, v, ts, method=method, throw=False).result


def _to_a_nan_point():  # once `shooting_failed`, with the advice to seed the solve
    metric = jgeo.Pullback(lambda z: jnp.stack([z[0], z[1], z[0] * z[1]]))
    y, shooting = jnp.array([jnp.nan, 0.0]), jgeo.ShootingBVP()  # the default's second stage
    return jgeo.connecting_geodesic(metric, jnp.zeros(2), y, solver=shooting, throw=False).result


API_ERRORS = [
    ("distance-in-float32-near-the-ball-boundary", _distance_in_float32_near_the_ball_boundary,
     (eqx.EquinoxRuntimeError, "On a PoincareBall or PoincareHalfSpace the points lie too close "
      "to the ideal boundary")),
    ("bvp-result-repr", lambda: jgeo.connecting_geodesic(jgeo.PoincareBall(3), X3, -X3).result,
     (None, "BVPResult<successful>")),
    ("integer-decoder-called", lambda: jgeo.Pullback(_integer_decoder)(X3),
     (TypeError, r"decoder returned dtype int\d+.*floating point.*astype\(int\)")),
    ("integer-decoder-in-a-kernel", _integer_decoder_in_a_kernel,
     (TypeError, r"decoder `f` returned dtype int\d+.*floating point")),
    ("gaussian-fisher-of-one-output", lambda: jgeo.FisherPullback(_gaussian_fisher, "gaussian")(X3),
     (ValueError, r"\"gaussian\" family must return a pair \(mean, std\).*one array of shape")),
    ("gaussian-fisher-of-one-output-in-a-kernel",
     lambda: jgeo.geodesic_acceleration(jgeo.FisherPullback(_gaussian_fisher, "gaussian"), X3, X3),
     (ValueError, r"pair \(mean, std\).*one array of shape \(3,\).*softplus")),
    ("landscape-of-float16-params", _half_precision_sharpness, (None, "dtype=float32")),
    # Issue 37: a start or an end that is not finite is named as such (items 18, 21).
    ("geodesic-from-a-nan-point", lambda: _from_a_nan_point("auto"),
     (None, "GeodesicResult<the geodesic has no finite value here")),
    ("geodesic-ode-from-a-nan-point", lambda: _from_a_nan_point("ode"),
     (None, "GeodesicResult<the geodesic has no finite value here")),
    ("connecting-geodesic-to-a-nan-point", _to_a_nan_point,
     (None, "BVPResult<`x` or `y` is not finite"), pytest.mark.slow),
]  # fmt: skip


@pytest.mark.parametrize(
    "call, expected",
    [
        pytest.param(call, expected, id=name, marks=marks)
        for name, call, expected, *marks in API_ERRORS
    ],
)
def test_api_errors_name_the_problem(call, expected):
    error, message = expected
    if error is None:
        assert message in repr(call())
    else:
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: jgeo.EnergyBVP(max_steps=0), "`max_steps` must be a positive integer, got 0"),
        (lambda: jgeo.ShootingBVP(max_steps=0), "`max_steps` must be a positive integer"),
        (lambda: jgeo.stats.Refined(max_steps=-1), "`max_steps` must be a positive integer"),
        (lambda: jgeo.stats.Refined(rtol=-1e-3), "`rtol` must be a tolerance ≥ 0, got -0.001"),
        (lambda: jgeo.distance(jgeo.Euclidean(2), jnp.zeros(2), jnp.ones(2), atol=-1.0),
         "`atol` must be a tolerance ≥ 0"),
        (lambda: jgeo.log_map(jgeo.Euclidean(2), jnp.zeros(2), jnp.ones(2), rtol=0, atol=0),
         "both 0"),
    ],
)  # fmt: skip
def test_solver_budgets_and_tolerances(make, match):
    # Before: accepted, and every solve came back NaN with no word of why.
    with pytest.raises(ValueError, match=match):
        make()


def test_tolerances_become_python_floats():
    # A NumPy or concrete JAX scalar is a Python float to the solvers (a closed-over
    # array leaked as a tracer into the shooting's programs).
    from jgeo._log_map import check_tolerances

    rtol, atol = check_tolerances(np.float64(1e-3), jnp.asarray(1e-4))
    assert (rtol, atol) == (1e-3, 1e-4) and type(rtol) is float and type(atol) is float
