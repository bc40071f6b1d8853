"""The log-volume ½ log det G by stochastic Lanczos quadrature, matrix-free."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from . import _krylov as krylov
from ._custom_types import Point, Scalar
from ._metrics import AbstractMetric


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
    `max_probes`); `probes=p` fixes it instead: p ≈ (2s/τ)², s one probe's spread
    above, keeps the value within τ at two standard deviations. The spread belongs to
    the metric, so it bounds every Hutchinson-type estimator (deflating the top
    eigenpairs removes only their share of it): `bench/wide.py` measures it, and the
    error against the cost, and docs/wide.md says where 1 % at a tenth of the dense
    cost is reachable and where it is not.

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

    def log_volume(self, metric: AbstractMetric, x: Point, key: PRNGKeyArray) -> Scalar:
        """The estimate of ½ log det G(x) at a validated point `x` (see the class)."""
        batch, least, most = self._schedule()
        steps = min(self.steps, x.shape[0])
        return _log_volume(
            metric, x, key, steps=steps, batch=batch, least=least, most=most, rtol=self.rtol
        )


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
    it (between `least` and `most` rounds). Returns the mean of the probes' tr log G
    estimates, and with `forms` the derivative forms of every probe drawn (r, μ) with a
    mask of the rounds used."""
    op = metric.operator(x)
    d, dtype = x.shape[0], x.dtype
    shape = (most, batch, d, steps)
    empty = (jnp.zeros(shape, dtype), jnp.zeros(shape[:2] + (steps,), dtype)) if forms else ()

    def draw(i):
        k_signs, k_restart = jr.split(jr.fold_in(key, i))
        signs = krylov.rademacher_probes(k_signs, batch, d, dtype)
        return jax.vmap(lambda z, k: _probe(op, z, k, steps))(signs, jr.split(k_restart, batch))

    def body(state):
        i, total, squares, kept = state
        values, r, mu = draw(i)
        if forms:
            kept = (kept[0].at[i].set(r), kept[1].at[i].set(mu))
        return i + 1, total + jnp.sum(values), squares + jnp.sum(values**2), kept

    def going(state):
        i, total, squares, _ = state
        n = (i * batch).astype(dtype)
        mean = total / jnp.maximum(n, 1)
        variance = jnp.maximum(squares / jnp.maximum(n, 1) - mean**2, 0) * n / jnp.maximum(n - 1, 1)
        settled = jnp.sqrt(variance / jnp.maximum(n, 1)) <= rtol * jnp.abs(mean)
        return (i < most) & ((i < least) | ~settled)

    zero = jnp.zeros((), dtype)
    state = (jnp.zeros((), jnp.int32), zero, zero, empty)
    if most == 1:
        state = body(state)
    else:
        state = jax.lax.while_loop(going, body, state)
    rounds, total, _, kept = state
    return total / (rounds * batch).astype(dtype), kept, jnp.arange(most) < rounds


@eqx.filter_custom_jvp
def _log_volume(metric, x, key, **options):
    return 0.5 * _rounds(metric, x, key, **options, forms=False)[0]


@_log_volume.def_jvp
def _log_volume_jvp(primals, tangents, **options):
    # The derivative of the quadrature with its Lanczos bases held fixed: the gradient
    # of the estimate itself, without differentiating (and storing) the recurrence.
    metric, x, key = primals
    mean, (r, mu), used = _rounds(metric, x, key, **options, forms=True)
    weights = jax.lax.stop_gradient(mu * used[:, None, None] / jnp.sum(used))
    r = jax.lax.stop_gradient(r)

    def forms(metric, x):
        op = metric.operator(x)
        flat_r = r.reshape(-1, *r.shape[2:])  # (probes, d, m)
        products = jax.vmap(jax.vmap(op.mv, in_axes=1, out_axes=1))(flat_r)
        quadratic = jnp.sum(flat_r * products, axis=1).reshape(mu.shape)
        return 0.5 * jnp.sum(weights * quadratic) / options["batch"]

    _, tangent = eqx.filter_jvp(forms, (metric, x), tangents[:2])
    return 0.5 * mean, tangent


def as_estimator(method) -> "SLQ | None":
    """`method` as an `SLQ` where it asks for one ("slq" or an instance), else None."""
    if isinstance(method, SLQ):
        return method
    if isinstance(method, str) and method == "slq":
        return SLQ()
    return None
