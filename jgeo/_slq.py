"""The log-volume ½ log det G by stochastic Lanczos quadrature, matrix-free."""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Int, PRNGKeyArray

from . import _krylov as krylov
from ._checks import finish, metric_point
from ._custom_types import PointLike, Scalar
from ._metrics import AbstractMetric

_SINGULAR_HINT = (
    " A metric of rank below d (e.g. the Fisher metric of a C-class head at a layer wider "
    "than C − 1) has log-volume −∞: build it with `jitter=...`."
)


class SLQEstimate(NamedTuple):
    """The result of `SLQ.estimate`: the estimate of ½ log det G(x) and its error bar.

    **Fields:**

    - `value`: the estimate, what `log_volume(metric, x, method=slq, key=key)` returns
      (the same probes).
    - `standard_error`: its standard error from the spread of the probes, ½ s/√p with s
      the sample standard deviation of the probes' zᵀ log(G) z (NaN with one probe).
      With few probes s is itself uncertain: a 95 % interval is value ± t·se with
      Student's t quantile for p − 1 degrees of freedom (12.7 at p = 2, 3.2 at 4, 2.4
      at 8, 2.1 at 16), not ± 2 se. The quadrature's bias is not in it (it falls like
      exp(−2m/√κ) with the steps m: see `SLQ`). Not differentiated.
    - `probes`: p, the number of probes drawn, an int32 array (adaptive runs stop at
      different counts, also within one `vmap`).
    """

    value: Scalar
    standard_error: Scalar
    probes: Int[Array, ""]


class SLQ(eqx.Module):
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017) of the log-volume
    ½ log det G(x) = ½ tr log G(x): pass it as `jgeo.log_volume(metric, x,
    method=jgeo.SLQ(...), key=key)` (`method="slq"` is `SLQ()`).

    Each Rademacher probe z runs m Lanczos steps on `metric_operator` from z/‖z‖; the
    Gauss quadrature of the tridiagonal gives zᵀ log(G) z ≈ ‖z‖² Σⱼ τⱼ log θⱼ, and the
    estimate is ½ the mean over probes. Cost m products G v a probe (a pullback: one JVP
    and one VJP each) and memory m·d, against d JVPs and an O(d³) factorisation for the
    exact value; G is never formed.

    Error: the quadrature's falls like exp(−2m/√κ), κ the condition number of G (32
    steps give ~1e-4 of the value at κ ~ 1e3); the probes' standard deviation is
    √(2 Σ_{i≠j} (log G)ᵢⱼ²) / 2 per probe, about √(2/d)·(spread of log λ)/|mean log λ|
    of the value: a few percent at d = 256, shrinking like 1/√d. So by default the
    number of probes adapts: probes are drawn `batch` at a time until the standard
    error of their mean is below `rtol` of its size (at least 2·`batch`, at most
    `max_probes` rounded up to whole batches); `probes=p` fixes it instead:
    p ≈ (2s/τ)², s one probe's spread above, keeps the value within τ at two standard
    deviations. The spread belongs to the metric, so it bounds every Hutchinson-type
    estimator (deflating the top eigenpairs removes only their share of it):
    `bench/wide.py` measures it, and the error against the cost, and docs/wide.md says
    where 1 % at a tenth of the dense cost is reachable and where it is not.
    `SLQ(...).estimate(metric, x, key=key)` returns the value with its standard error
    and the number of probes drawn: the error bar of each estimate (an adaptive run
    that stops at `max_probes` short of `rtol` shows it there).

    Gradients (reverse and forward mode, with respect to `x` and the decoder's
    parameters) are those of the estimate itself, with the Lanczos basis held fixed:
    zᵀ D log(G)[∂G] z from the divided differences of log at the Ritz values (the
    Fréchet derivative of log on the Krylov space). That is what differentiating the
    recurrence gives (cosine 1 − 1e-5 between the two, measured), without storing its
    steps for the reverse pass; it costs m products with ∂G per probe. The cheaper
    unbiased zᵀ G⁻¹ ∂G z (one product) has a far larger variance (cosine to the exact
    gradient 0.5 against 0.93 with 8 probes at d = 256, measured). The number of probes
    is not differentiated.

    A singular metric has log-volume −∞, and the estimate is not finite there: give the
    metric a `jitter` ε (G + εI, whose null directions each add ½ log ε).

    **Arguments:**

    - `probes`: a fixed number p of probes, or None (default) to adapt it.
    - `steps`: m, Lanczos steps per probe (default 32; at most d).
    - `rtol`: the standard error to reach, relative to the estimate (default 2.5e-3,
      so that the value lies within 1 % at about four standard errors).
    - `batch`: probes drawn at once (default 4).
    - `max_probes`: the most probes drawn (default 64).
    """

    probes: int | None = eqx.field(default=None, static=True)
    steps: int = eqx.field(default=32, static=True)
    rtol: float = eqx.field(default=2.5e-3, static=True)
    batch: int = eqx.field(default=4, static=True)
    max_probes: int = eqx.field(default=64, static=True)

    def __check_init__(self):
        counts = ("steps", "batch", "max_probes") + (() if self.probes is None else ("probes",))
        for name in counts:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SLQ: `{name}` must be an integer ≥ 1, got {value!r}.")
        if not (isinstance(self.rtol, int | float) and self.rtol > 0):
            raise ValueError(f"SLQ: `rtol` must be a float > 0, got {self.rtol!r}.")

    def _schedule(self) -> tuple[int, int, int]:
        """(probes per round, least rounds, most rounds)."""
        if self.probes is not None:
            return self.probes, 1, 1
        rounds = max(2, -(-self.max_probes // self.batch))
        return self.batch, 2, rounds

    def log_volume(self, metric: AbstractMetric, x: PointLike, key: PRNGKeyArray) -> Scalar:
        """The estimate of ½ log det G(x) alone: what `jgeo.log_volume(metric, x,
        method=self, key=key)` returns (`estimate` adds its error bar)."""
        return self._run(metric, x, key)[0]

    def estimate(self, metric: AbstractMetric, x: PointLike, *, key: PRNGKeyArray) -> SLQEstimate:
        """The estimate of ½ log det G(x) with its standard error and probe count: what
        `log_volume(metric, x, method=self, key=key)` computes, with the error bar that
        says whether it is good enough (an adaptive run that stops at `max_probes`
        before reaching `rtol` shows it here). Differentiable in `value` as
        `log_volume` is; `jit`/`vmap`-safe.

        **Arguments:** `metric`, a jgeo metric; `x`, one point (d,); `key`, a JAX PRNG
        key for the probes.

        **Returns:** an `SLQEstimate` (value, standard_error, probes).

        **Raises:** `ValueError`/`TypeError` for a malformed point or a missing `key`; a
        runtime error where the estimate is not finite (a singular metric: `jitter`).
        """
        value, m2, n = self._run(metric, x, key)
        # NaN for one probe, built only here, so that `log_volume` never makes a NaN
        # (jax_debug_nans would stop on it).
        error = jnp.where(n > 1, 0.5 * _standard_error(m2, n), jnp.nan)
        return SLQEstimate(value, error.astype(value.dtype), n.astype(jnp.int32))

    def _run(self, metric, x, key) -> tuple[Scalar, Scalar, Scalar]:
        """(the checked estimate, the probes' sum of squared deviations, their number)."""
        if key is None:
            raise ValueError(
                '`key` is needed for SLQ, `method="slq"` (its random probes): pass '
                "`key=jax.random.key(0)`, or a fresh key per call."
            )
        x = metric_point(metric, x)  # a metric singular by its shapes raises here
        batch, least, most = self._schedule()
        steps = min(self.steps, x.shape[0])
        value, m2, n = _log_volume(
            metric, x, key, steps=steps, batch=batch, least=least, most=most, rtol=self.rtol
        )
        return finish(value, x, "log_volume", hint=_SINGULAR_HINT), m2, n


def _standard_error(m2: Array, n: Array) -> Array:
    """s/√n with s² = m2/(n − 1), the standard error of the mean of n probes from their
    sum of squared deviations (finite for n ≤ 1, where it means nothing)."""
    return jnp.sqrt(m2 / jnp.maximum(n - 1, 1) / jnp.maximum(n, 1))


def _divided_log(theta: Array) -> Array:
    """(log θᵢ − log θⱼ) / (θᵢ − θⱼ), and 1/θᵢ on the diagonal (θ > 0): the first
    divided differences of log, whose Hadamard product gives its Fréchet derivative."""
    ti, tj = theta[:, None], theta[None, :]
    ratio = ti / tj
    close = jnp.abs(ratio - 1) < 1e-4  # there 2/(θᵢ + θⱼ) is exact to O((r − 1)²)
    safe = jnp.where(close, 2.0, ratio)
    return jnp.where(close, 2 / (ti + tj), jnp.log(safe) / (tj * (safe - 1)))


def _probe(op, z: Array, key: PRNGKeyArray, steps: int):
    """zᵀ log(G) z by Gauss quadrature, and the rank-m form of its derivative with the
    Lanczos basis held fixed: zᵀ D log(G)[E] z ≈ Σᵢ μᵢ rᵢᵀ E rᵢ, r (d, m), μ (m,)."""
    norm2 = z @ z
    rule = krylov.quadrature(op.mv, z / jnp.sqrt(norm2), steps, key)
    used = rule.weights > 0  # restarted blocks carry no weight (and may hold zeros)
    safe = jnp.where(used, rule.nodes, 1)
    value = norm2 * jnp.sum(rule.weights * jnp.log(safe))
    # e₁ᵀ D log(T)[B] e₁ = Σᵢⱼ sᵢ sⱼ L(θᵢ, θⱼ) (SᵀBS)ᵢⱼ with s = S[0] and L the divided
    # differences: a symmetric m × m form, diagonalised so each term is one rᵀ E r.
    first = rule.vectors[0]
    mu, u = jnp.linalg.eigh(first[:, None] * first[None, :] * _divided_log(safe))
    r = rule.tridiagonal.basis.T @ (rule.vectors @ u)
    return value, r, norm2 * mu


def _rounds(metric, x, key, *, steps, batch, least, most, rtol, forms: bool):
    """Rounds of `batch` probes until the standard error of the mean is below `rtol` of
    it (between `least` and `most` rounds). Returns (the mean of the probes' tr log G
    estimates, their sum of squared deviations, their number), and with `forms` the
    derivative forms of every probe drawn (r, μ) with a mask of the rounds used."""
    op = metric.operator(x)
    d, dtype = x.shape[0], x.dtype
    shape = (most, batch, d, steps)
    empty = (jnp.zeros(shape, dtype), jnp.zeros(shape[:2] + (steps,), dtype)) if forms else ()

    def draw(i):
        k_signs, k_restart = jr.split(jr.fold_in(key, i))
        signs = krylov.rademacher_probes(k_signs, batch, d, dtype)
        return jax.vmap(lambda z, k: _probe(op, z, k, steps))(signs, jr.split(k_restart, batch))

    def count(i):
        return (i * batch).astype(dtype)

    def body(state):
        # The running mean and sum of squared deviations, merged a round at a time
        # (Chan et al.): Σv² − n·mean² loses digits in float32 where |tr log G| is
        # far larger than the probes' spread (a jittered classifier head).
        i, mean, m2, kept = state
        values, r, mu = draw(i)
        if forms:
            kept = (kept[0].at[i].set(r), kept[1].at[i].set(mu))
        n_before, n_after = count(i), count(i + 1)
        round_mean = jnp.mean(values)
        delta = round_mean - mean
        mean = mean + delta * batch / n_after
        m2 = m2 + jnp.sum((values - round_mean) ** 2) + delta**2 * n_before * batch / n_after
        return i + 1, mean, m2, kept

    def going(state):
        i, mean, m2, _ = state
        n = count(i)  # the mean's standard error against rtol of it, from two probes
        settled = (n > 1) & (_standard_error(m2, n) <= rtol * jnp.abs(mean))
        return (i < most) & ((i < least) | ~settled)

    zero = jnp.zeros((), dtype)
    state = (jnp.zeros((), jnp.int32), zero, zero, empty)
    if most == 1:
        state = body(state)
    else:
        state = jax.lax.while_loop(going, body, state)
    rounds, mean, m2, kept = state
    return (mean, m2, count(rounds)), kept, jnp.arange(most) < rounds


@eqx.filter_custom_jvp
def _log_volume(metric, x, key, **options):
    """(½ tr log G estimate, the probes' sum of squared deviations, their number)."""
    (mean, m2, n), _, _ = _rounds(metric, x, key, **options, forms=False)
    return 0.5 * mean, m2, n


@_log_volume.def_jvp
def _log_volume_jvp(primals, tangents, **options):
    # The derivative of the quadrature with its Lanczos bases held fixed: the gradient
    # of the estimate itself, without differentiating (and storing) the recurrence.
    # The spread and the count are not differentiated.
    metric, x, key = primals
    (mean, m2, n), (r, mu), used = _rounds(metric, x, key, **options, forms=True)
    weights = jax.lax.stop_gradient(mu * used[:, None, None] / jnp.sum(used))
    r = jax.lax.stop_gradient(r)

    def forms(metric, x):
        op = metric.operator(x)
        flat_r = r.reshape(-1, *r.shape[2:])  # (probes, d, m)
        products = jax.vmap(jax.vmap(op.mv, in_axes=1, out_axes=1))(flat_r)
        quadratic = jnp.sum(flat_r * products, axis=1).reshape(mu.shape)
        return 0.5 * jnp.sum(weights * quadratic) / options["batch"]

    _, tangent = eqx.filter_jvp(forms, (metric, x), tangents[:2])
    zero = jnp.zeros_like(mean)
    return (0.5 * mean, m2, n), (tangent, zero, zero)


def as_estimator(method) -> "SLQ | None":
    """`method` as an `SLQ` where it asks for one ("slq" or an instance), else None."""
    if isinstance(method, SLQ):
        return method
    if isinstance(method, str) and method == "slq":
        return SLQ()
    return None
