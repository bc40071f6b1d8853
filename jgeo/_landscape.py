"""The implementation of `jgeo.landscape`, documented there."""

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from . import _krylov as krylov

# Hessian-vector products batched together by `hessian_trace` and `fisher_trace`:
# enough to vectorise, few enough to keep memory at a handful of gradients.
_CHUNK = 8


def _flat_hvp(loss: Callable, params) -> tuple[Callable, Array]:
    """The Hessian-vector product v ↦ Hv of `loss` at `params` on flat vectors (n,) of
    the inexact leaves, and the flat point itself (for its size and dtype).

    Half-precision parameters (float16, bfloat16) keep their dtype in `loss` and its
    derivatives; the flat vectors, and so the Lanczos and QR algebra on them, are
    float32 (XLA's eigen- and QR decompositions have no half-precision kernels)."""
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(diff)
    if flat.size == 0:
        raise ValueError("`params` holds no floating-point arrays to differentiate.")
    out = jax.eval_shape(lambda d: loss(eqx.combine(d, static)), diff)
    if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()):
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"`loss(params)` must return a scalar, got {shape}: average or sum it over the batch."
        )
    grad = jax.grad(lambda d: loss(eqx.combine(d, static)))
    compute = jnp.promote_types(flat.dtype, jnp.float32)  # float16/bfloat16 → float32

    def hvp(v):
        tangent = unravel(v.astype(flat.dtype))
        return ravel_pytree(jax.jvp(grad, (diff,), (tangent,))[1])[0].astype(compute)

    return hvp, flat.astype(compute)


def _check_count(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"`{name}` must be an integer ≥ {least}, got {value!r}.")
    return value


def _steps(iterations: int | None, k: int, n: int) -> int:
    """Lanczos steps: `iterations` (default max(20, 3k)), at most the dimension n."""
    steps = max(20, 3 * k) if iterations is None else _check_count("iterations", iterations, 1)
    return min(steps, n)


def _ritz_pairs(loss, params, k, key, iterations) -> tuple[Array, Array]:
    """Ritz values (ascending) of the Hessian and their residuals, from Lanczos."""
    hvp, flat = _flat_hvp(loss, params)
    steps = _steps(iterations, k, flat.size)
    if k > steps:
        raise ValueError(
            f"`k` = {k} is more than the {steps} Lanczos steps ({flat.size} parameters, "
            f"`iterations` {iterations}): raise `iterations` or lower `k`."
        )
    tri = krylov.lanczos(hvp, krylov.start_vector(key, flat.size, flat.dtype), steps, key)
    theta, _, residual = krylov.ritz(tri.alpha, tri.beta)
    return theta, residual


@eqx.filter_jit
def _extremes(loss, params, k, key, iterations) -> tuple[Array, Array]:
    theta, residual = _ritz_pairs(loss, params, k, key, iterations)
    order = jnp.argsort(-jnp.abs(theta))[:k]
    return theta[order], residual[order]


def hessian_eigenvalues(
    loss: Callable[[Any], Float[Array, ""]],
    params,
    k: int = 1,
    *,
    key: PRNGKeyArray,
    iterations: int | None = None,
) -> Float[Array, " k"]:
    """The `k` eigenvalues of largest magnitude of the Hessian of `loss` at `params`, in
    decreasing magnitude (signed: a saddle's negative curvature shows as a negative
    value), by Lanczos on Hessian-vector products with full reorthogonalisation.

    Lanczos finds the extreme eigenvalues first: after m steps the largest Ritz value
    is within about (λ₁ − λ_min) · 4 exp(−4 m √gap) of λ₁ (Kuczyński & Woźniakowski
    1992), so 20 steps give the sharpness of a network to a few digits; interior
    eigenvalues take more. With `iterations` ≥ the number n of parameters the
    spectrum is exact to rounding.

    **Arguments:**
    - `loss`: a scalar function of the params pytree (close over the batch).
    - `params`: the point; only its inexact array leaves are differentiated. Half
      precision (float16, bfloat16) is supported: `loss` and its derivatives run in the
      leaves' dtype, the Lanczos algebra in float32, and the results are float32 (the
      same in every function of `jgeo.landscape`).
    - `k`: how many eigenvalues.
    - `key`: the random start vector.
    - `iterations`: Lanczos steps m (default max(20, 3k), at most n); costs m
      Hessian-vector products and memory m × n.

    **Returns:** the eigenvalues (k,).

    **Raises:** `ValueError` if `loss` is not scalar, `params` has no floating arrays,
    or `k` exceeds the Lanczos steps.
    """
    _check_count("k", k, 1)
    return _extremes(loss, params, k, key, iterations)[0]


@eqx.filter_jit
def hessian_trace(
    loss: Callable[[Any], Float[Array, ""]],
    params,
    *,
    key: PRNGKeyArray,
    probes: int = 100,
    method: str = "hutch++",
) -> Float[Array, ""]:
    """An unbiased estimate of the trace of the Hessian of `loss` at `params` from
    p = `probes` Hessian-vector products with Rademacher vectors v.

    - `"hutchinson"` (Hutchinson 1989): (1/p) Σ vᵀHv, with variance
      2(‖H‖²_F − Σᵢ Hᵢᵢ²)/p — large where a few outlying eigenvalues dominate ‖H‖_F,
      as they do in trained networks (relative error 7 % at p = 200 on a spectrum with
      four outliers in forty).
    - `"hutch++"` (default; Meyer, Musco, Musco & Woodruff 2021): a third of the
      products sketch the top of the spectrum, Q = orth(H S), whose trace tr(QᵀHQ) is
      taken exactly; Hutchinson's estimator with the last third covers the rest
      (I − QQᵀ)H(I − QQᵀ), whose Frobenius norm no longer holds the outliers. Error
      O(1/p) instead of O(1/√p) when the spectrum decays; memory p/3 × n.

    **Arguments:** `loss` and `params` as `hessian_eigenvalues`; `key`, the random
    vectors; `probes`, the number p of Hessian-vector products (computed 8 at a time;
    at least 3 for Hutch++); `method`.

    **Returns:** the estimate, a scalar.
    """
    if method not in ("hutch++", "hutchinson"):
        raise ValueError(f"`method` must be 'hutch++' or 'hutchinson', got {method!r}.")
    _check_count("probes", probes, 3 if method == "hutch++" else 1)
    hvp, flat = _flat_hvp(loss, params)
    many = lambda vs: jax.lax.map(hvp, vs, batch_size=_CHUNK)  # noqa: E731  (rows)
    estimator = krylov.hutchinson if method == "hutchinson" else krylov.hutch_plus_plus
    return estimator(many, flat.size, flat.dtype, key, probes)


class SpectralDensity(NamedTuple):
    """A spectral density by stochastic Lanczos quadrature: per random start vector
    (row), the Gauss quadrature nodes θ (the Ritz values) and weights τ (summing to 1),
    so that vᵀ f(H) v ≈ Σ τ f(θ). Their average over rows estimates the density
    φ(t) = (1/n) Σᵢ δ(t − λᵢ) of the n eigenvalues. Returned by `hessian_density`;
    `.evaluate(t, sigma)` smooths it with Gaussians of width `sigma` for a figure.

    **Fields:**

    - `nodes`: the Ritz values, shape (probes, m).
    - `weights`: their quadrature weights, shape (probes, m), each row summing to 1.
    """

    nodes: Float[Array, "probes m"]
    weights: Float[Array, "probes m"]

    def evaluate(self, t: Float[Array, " T"], sigma: float | None = None) -> Float[Array, " T"]:
        """The density smoothed by a Gaussian of width `sigma` at the points `t`
        (default: 1 % of the range of the nodes, as Ghorbani et al.)."""
        t = jnp.asarray(t)
        nodes, weights = self.nodes.ravel(), self.weights.ravel() / self.nodes.shape[0]
        if sigma is None:
            sigma = 0.01 * (jnp.max(nodes) - jnp.min(nodes)) + jnp.finfo(nodes.dtype).eps
        z = (t[:, None] - nodes[None, :]) / sigma
        return jnp.exp(-0.5 * z**2) @ weights / (sigma * jnp.sqrt(2 * jnp.pi))


@eqx.filter_jit
def hessian_density(
    loss: Callable[[Any], Float[Array, ""]],
    params,
    *,
    key: PRNGKeyArray,
    iterations: int = 80,
    probes: int = 4,
) -> SpectralDensity:
    """The spectral density of the Hessian of `loss` at `params` by stochastic Lanczos
    quadrature (Ghorbani, Krishnan & Xiao 2019; PyHessian's `density`): `probes`
    Lanczos runs of `iterations` steps from random unit vectors. The outliers (the top
    eigenvalues) come out sharp and the bulk as a smoothed density; plot
    `density.evaluate(t)` on a log scale.

    **Returns:** a `SpectralDensity` (nodes and weights (probes, m)).
    """
    _check_count("probes", probes, 1)
    hvp, flat = _flat_hvp(loss, params)
    steps = _steps(iterations, 1, flat.size)

    def quadrature(k):
        rule = krylov.quadrature(hvp, krylov.start_vector(k, flat.size, flat.dtype), steps, k)
        return rule.nodes, rule.weights

    nodes, weights = jax.lax.map(quadrature, jr.split(key, probes))
    return SpectralDensity(nodes, weights)


@eqx.filter_jit
def fisher_trace(
    log_likelihood: Callable[[Any, Any], Float[Array, ""]],
    params,
    batch,
) -> Float[Array, ""]:
    """The trace of the empirical Fisher information, (1/N) Σᵢ ‖∇θ log p(yᵢ | xᵢ; θ)‖²,
    from per-example gradients (Kirkpatrick et al. 2017; Achille et al. 2019 read it
    over training). It equals the Hessian of the negative log-likelihood's average at a
    well-specified optimum, and is cheap where that is not: one gradient per example.

    **Arguments:**
    - `log_likelihood`: `log_likelihood(params, example) -> scalar`, of *one* example.
    - `params`: as `hessian_eigenvalues`.
    - `batch`: a pytree of arrays with the examples along their first axis (N, ...),
      e.g. `(x, y)`; gradients are computed `8` examples at a time.

    **Returns:** the trace, a scalar.
    """
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in jax.tree.leaves(batch)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("`batch` must be a pytree of arrays sharing their first axis (N, ...).")
    grad = jax.grad(lambda d, example: log_likelihood(eqx.combine(d, static), example))

    def squared_norm(example):  # summed in float32 at least (half precision overflows)
        leaves = jax.tree.leaves(grad(diff, example))
        return sum(
            jnp.sum(jnp.square(g.astype(jnp.promote_types(g.dtype, jnp.float32)))) for g in leaves
        )

    return jnp.mean(jax.lax.map(squared_norm, batch, batch_size=_CHUNK))


class Landscape(NamedTuple):
    """What `jgeo.dynamics.Recorder(landscape=...)` records the loss landscape of.

    **Arguments:**

    - `loss`: `loss(params, batch) -> scalar`, the training loss (deterministic: fix
      any dropout or sampling key).
    - `batch`: the fixed batch it is measured on, the same at every probe.
    - `log_likelihood`: optional `log_likelihood(params, example) -> scalar` of one
      example of `batch`: then `fisher_trace` is recorded too.
    - `learning_rate`: optional, the step size η in force: a float or an optax schedule
      `step -> η`. Rows then carry `learning_rate`, and `jgeo dynamics` draws 2/η
      beside the sharpness (the stability threshold of gradient descent; adaptive
      optimisers such as Adam have theirs on the preconditioned Hessian instead, Cohen
      et al. 2022).
    - `iterations`: Lanczos steps of the sharpness (20: a few digits of λ_max).
    - `probes`: Rademacher vectors of the Hessian trace.
    """

    loss: Callable
    batch: Any
    log_likelihood: Callable | None = None
    learning_rate: float | Callable | None = None
    iterations: int = 20
    probes: int = 20


LANDSCAPE_SCALARS = ("sharpness", "sharpness_residual", "hessian_trace", "fisher_trace")


def measure_landscape(landscape: Landscape, params, key: PRNGKeyArray) -> dict:
    """The landscape scalars of one probe (jit-compatible).

    **Arguments:**

    - `landscape`: the `Landscape` to measure.
    - `params`: the parameters pytree `landscape.loss` takes.
    - `key`: a JAX PRNG key for the Lanczos start and the trace probes.

    **Returns:** a dict of scalars: `sharpness`, the largest Hessian eigenvalue from
    `landscape.iterations` Lanczos steps; `sharpness_residual`, its Ritz residual
    ‖Hy − λy‖ (small against λ when it has converged); `hessian_trace` (Hutch++); and,
    with a log-likelihood, `fisher_trace`.
    """
    loss = lambda p: landscape.loss(p, landscape.batch)  # noqa: E731
    k1, k2 = jr.split(key)
    theta, residual = _ritz_pairs(loss, params, 1, k1, landscape.iterations)
    out = {
        "sharpness": theta[-1],
        "sharpness_residual": residual[-1],
        "hessian_trace": hessian_trace(loss, params, key=k2, probes=landscape.probes),
    }
    if landscape.log_likelihood is not None:
        out["fisher_trace"] = fisher_trace(landscape.log_likelihood, params, landscape.batch)
    return out
