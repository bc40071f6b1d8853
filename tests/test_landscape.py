"""`jgeo.landscape`: Hessian spectra, traces and Fisher information of a loss over a
params pytree — against known spectra, dense Hessians, and the edge of stability."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jgeo import dynamics, landscape

# A quadratic ½ θᵀAθ over a nested pytree of 60 numbers, with a known spectrum: four
# outliers, one negative eigenvalue (a saddle direction) and a bulk in [1, 5].
_RNG = np.random.default_rng(0)
SPECTRUM = np.concatenate([[50.0, 40.0, 30.0, 20.0, -10.0], _RNG.uniform(1.0, 5.0, 55)])
_Q, _ = np.linalg.qr(_RNG.standard_normal((60, 60)))
A = jnp.asarray(_Q @ np.diag(SPECTRUM) @ _Q.T)
PARAMS = {"w": jnp.full((5, 4), 0.3), "nested": {"b": [jnp.ones(20), jnp.zeros((4, 5))]}}


def quadratic(params):
    theta = ravel_pytree(params)[0]
    return 0.5 * theta @ A @ theta


def test_top_eigenvalues_of_a_known_spectrum_in_a_nested_pytree(key):
    values = landscape.hessian_eigenvalues(quadratic, PARAMS, 5, key=key, iterations=40)
    expected = np.array([50.0, 40.0, 30.0, 20.0, -10.0])  # by magnitude, signed
    np.testing.assert_allclose(values, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "method, probes, tolerance", [("hutchinson", 200, 0.05), ("hutch++", 60, 0.02)]
)
def test_hessian_trace_of_a_known_spectrum(key, method, probes, tolerance):
    # Hutchinson's standard deviation here is √(2(‖A‖²_F − Σ A_ii²)/200) ≈ 3.6 % of the
    # trace (1.8 % for the mean of four); Hutch++ sketches the outliers with 20 of its 60
    # products, takes their trace exactly and keeps only the bulk's variance.
    estimates = np.array(
        [
            landscape.hessian_trace(
                quadratic, PARAMS, key=jr.fold_in(key, i), probes=probes, method=method
            )  # fmt: skip
            for i in range(4)
        ]
    )
    error = np.abs(estimates.mean() / SPECTRUM.sum() - 1)
    assert error < tolerance, (method, estimates, SPECTRUM.sum())
    assert len(set(estimates.round(8))) == 4  # random: each key its own estimate


def _mlp(key, sizes=(3, 6, 5, 1)):
    keys = jr.split(key, len(sizes) - 1)
    return [
        {"w": jr.normal(k, (a, b)) / np.sqrt(a), "b": 0.1 * jr.normal(jr.fold_in(k, 1), (b,))}
        for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:]))
    ]


def _forward(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"][None])
    return x @ params[-1]["w"] + params[-1]["b"][None]


@pytest.mark.slow
def test_lanczos_matches_the_dense_hessian_of_a_small_mlp(key):
    params = _mlp(key)  # 3·6+6 + 6·5+5 + 5+1 = 65 parameters
    x = jr.normal(jr.fold_in(key, 2), (32, 3))
    y = jnp.sin(x.sum(1, keepdims=True))

    def loss(p):
        return jnp.mean((_forward(p, x) - y) ** 2)

    flat, unravel = ravel_pytree(params)
    dense = jnp.linalg.eigvalsh(jax.hessian(lambda t: loss(unravel(t)))(flat))
    top = dense[jnp.argsort(-jnp.abs(dense))[:3]]
    values = landscape.hessian_eigenvalues(loss, params, 3, key=key, iterations=40)
    np.testing.assert_allclose(values, top, rtol=1e-5)
    # The trace with as many probes as parameters in Hutch++'s sketch is exact.
    trace = landscape.hessian_trace(loss, params, key=key, probes=200)
    np.testing.assert_allclose(trace, dense.sum(), rtol=1e-6)


@pytest.mark.slow
def test_density_by_stochastic_lanczos_quadrature(key):
    density = landscape.hessian_density(quadratic, PARAMS, key=key, iterations=60, probes=32)
    assert density.nodes.shape == density.weights.shape == (32, 60)
    np.testing.assert_allclose(density.weights.sum(1), 1.0, rtol=1e-10)
    # Gauss quadrature with all 60 nodes is exact: vᵀAv per start vector, which
    # averages to tr(A)/n (the mean eigenvalue).
    mean = np.mean(np.sum(density.nodes * density.weights, 1))
    assert abs(mean / SPECTRUM.mean() - 1) < 0.1
    np.testing.assert_allclose([density.nodes.min(), density.nodes.max()], [-10, 50], rtol=1e-8)
    t = jnp.linspace(-15, 55, 2001)
    curve = density.evaluate(t, sigma=0.5)
    assert abs(jnp.sum(curve) * (t[1] - t[0]) - 1) < 1e-3  # a probability density
    # One eigenvalue in 60 at 50: that much mass near it, and none between 6 and 19.
    near = (t > 48) & (t < 52)
    assert abs(jnp.sum(curve[near]) * (t[1] - t[0]) - 1 / 60) < 0.01
    assert jnp.max(curve[(t > 7) & (t < 18)]) < 1e-3


def test_fisher_trace_is_the_mean_squared_per_example_gradient(key):
    # Logistic regression: ∇θ log p(y | x) = (y − σ(θ·x)) x, in closed form.
    x = jr.normal(key, (50, 4))
    y = (jr.uniform(jr.fold_in(key, 1), (50,)) < 0.5).astype(x.dtype)
    theta = {"w": jnp.array([0.5, -1.0, 0.2, 0.0])}

    def log_likelihood(params, example):
        xi, yi = example
        logit = xi @ params["w"]
        return yi * jax.nn.log_sigmoid(logit) + (1 - yi) * jax.nn.log_sigmoid(-logit)

    expected = np.mean(np.sum(((y - jax.nn.sigmoid(x @ theta["w"]))[:, None] * x) ** 2, 1))
    np.testing.assert_allclose(landscape.fisher_trace(log_likelihood, theta, (x, y)), expected,
                               rtol=1e-12)  # fmt: skip


def test_an_equinox_module_under_jit(key):
    # Non-array leaves (the activation) stay fixed; the function runs under jit and vmap.
    model = eqx.nn.MLP(2, 1, 8, 1, activation=jnp.tanh, key=key)
    x = jr.normal(key, (16, 2))

    @eqx.filter_jit
    def sharpness(model, keys):
        loss = lambda m: jnp.mean(jax.vmap(m)(x) ** 2)  # noqa: E731
        return jax.vmap(lambda k: landscape.hessian_eigenvalues(loss, model, key=k)[0])(keys)

    values = sharpness(model, jr.split(key, 3))
    np.testing.assert_allclose(values, values[0], rtol=1e-6)  # the start vector does not matter
    assert values[0] > 0


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_params_are_measured_in_float32(key, dtype):
    # XLA has no half-precision eigen- or QR decompositions (a NotImplementedError from
    # deep inside): the loss runs in the params' dtype, the algebra in float32.
    params = {"w": jnp.array([1.0, -2.0, 0.5, 3.0], dtype)}
    scales = jnp.array([1.0, 2.0, 3.0, 4.0], dtype)  # H = diag(2, 4, 6, 8)
    loss = lambda p: jnp.sum(scales * p["w"] ** 2)  # noqa: E731
    values = landscape.hessian_eigenvalues(loss, params, 2, key=key)
    trace = landscape.hessian_trace(loss, params, key=key, probes=12)
    examples = jnp.ones((3, 4), dtype)
    fisher = landscape.fisher_trace(lambda p, e: jnp.sum(p["w"] * e), params, examples)
    for out in (values, trace, fisher):
        assert out.dtype == jnp.float32
    np.testing.assert_allclose(values, [8.0, 6.0], rtol=1e-2)
    np.testing.assert_allclose(trace, 20.0, rtol=1e-2)  # Hutch++ with 12 ≥ 4 probes: exact
    np.testing.assert_allclose(fisher, 4.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda k: landscape.hessian_eigenvalues(lambda p: p["w"], PARAMS, key=k), "loss.params"),
        (lambda k: landscape.hessian_eigenvalues(quadratic, PARAMS, 61, key=k), "`k`"),
        (lambda k: landscape.hessian_eigenvalues(quadratic, PARAMS, 0, key=k), "`k`"),
        (lambda k: landscape.hessian_trace(quadratic, PARAMS, key=k, method="x"), "`method`"),
        (lambda k: landscape.hessian_trace(quadratic, {"n": 3}, key=k), "`params`"),
        (lambda k: landscape.fisher_trace(lambda p, e: 0.0, PARAMS, (jnp.ones(3), 1.0)), "`batch`"),
    ],
)
def test_bad_arguments_are_named(key, call, message):
    with pytest.raises(ValueError, match=message):
        call(key)


@pytest.mark.slow
def test_gradient_descent_drives_sharpness_to_the_edge_of_stability(key, tmp_path):
    """Cohen et al. 2021: full-batch gradient descent at step η sharpens progressively
    until the top Hessian eigenvalue reaches 2/η, then hovers there while the loss still
    falls. Here λ_max starts near 6.8; at η = 0.2 it climbs past 2/η = 10 and settles
    within a percent of it (measured: 12.4 at step 200, 10.02 from step 1,000)."""
    x = jnp.linspace(-1, 1, 64)[:, None]
    y = jnp.sin(3 * x)
    eta = 0.2
    params = _mlp(jr.key(0), (1, 32, 32, 1))
    params = [{"w": layer["w"], "b": jnp.zeros_like(layer["b"])} for layer in params]

    def loss(p, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((_forward(p, xb) - yb) ** 2)

    @jax.jit
    def hundred_steps(p):
        def step(p, _):
            g = jax.grad(loss)(p, (x, y))
            return jax.tree.map(lambda a, b: a - eta * b, p, g), None

        return jax.lax.scan(step, p, None, length=100)[0]

    hidden = lambda p, xi: jnp.tanh(xi @ p[0]["w"] + p[0]["b"])  # noqa: E731  (one input)

    def log_likelihood(p, example):  # a unit-variance Gaussian, up to a constant
        xi, yi = example
        return -0.5 * jnp.sum((_forward(p, xi[None]) - yi[None]) ** 2)

    probes = [dynamics.LossLandscape(loss, (x, y), log_likelihood), dynamics.LearningRate(eta)]
    with dynamics.Recorder(tmp_path, np.asarray(x), encode=hidden, every=100, samples=16,
                           random_samples=32, probes=probes) as rec:  # fmt: skip
        rec(0, params)
        for step in range(100, 1501, 100):
            params = hundred_steps(params)
            rec(step, params)
    run = dynamics.load(tmp_path)
    sharpness, rate = run.series("sharpness"), run.series("learning_rate")
    assert sharpness[0] < 0.75 * 2 / eta  # it starts well below the threshold
    assert np.all(rate == eta)
    settled = run.series("step") >= 600
    np.testing.assert_allclose(sharpness[settled], 2 / eta, rtol=0.1)
    assert np.all(run.series("sharpness_residual")[settled] < 1e-3 * sharpness[settled])
    # At the edge the rest of the spectrum adds positive curvature beside λ_max (at
    # initialisation the trace is below it: negative directions).
    assert np.all(run.series("hessian_trace")[settled] > sharpness[settled])
    # The empirical Fisher of the Gaussian likelihood shrinks with the residuals.
    fisher = run.series("fisher_trace")
    assert np.all(fisher > 0) and fisher[-1] < 0.1 * fisher[0]
