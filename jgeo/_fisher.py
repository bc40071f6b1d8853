"""Fisher–Rao pullback metrics of decoders that output a distribution's parameters.

A decoder z ↦ θ(z) of a likelihood p(x | θ) pulls the Fisher information F(θ) back to
the latent space: G(z) = Jᵀ F(θ(z)) J (Arvanitidis, González-Duque, Pouplin, Kalatzis,
Hauberg 2022, "Pulling back information geometry"). For Bernoulli, categorical and
Poisson likelihoods the Fisher–Rao metric is Euclidean in a closed-form chart,

    Bernoulli p:     2 arcsin √p        (a quarter circle of radius 1 per pixel)
    categorical p:   2 √p               (the positive orthant of the sphere of radius 2)
    Poisson λ:       2 √λ

so G is exactly the Euclidean pullback of `chart ∘ f` and every fast pullback path
applies. The charts are evaluated from the logits / log-rates the decoder outputs, in
forms that stay finite, with finite derivatives, at saturated logits in float32.

The Gaussian N(μ, σ²) with varying σ has the hyperbolic Fisher metric
(dμ² + 2 dσ²) / σ² per coordinate (curvature −1/2), which no chart makes Euclidean: it
is pulled back through that ambient metric instead, with the fast spray and the generic
curvature paths (see `Pullback`'s `ambient`).
"""

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Bool, Float

from ._custom_types import Point, Tangent
from ._metrics import AbstractDiagonalMetric, as_pytree_callable, check_dim
from ._pullback import AbstractPullback, _check_jitter, check_linear_solver, trace_decoder

FAMILIES = ("bernoulli", "categorical", "poisson", "gaussian")


def bernoulli_chart(logits: Array) -> Array:
    """2 arcsin √σ(ℓ), the Fisher–Rao chart of Bernoulli(σ(ℓ)), from the logits ℓ.

    2 arcsin √σ(ℓ) = 2 arctan e^{ℓ/2} = π/2 + 2 arctan tanh(ℓ/4): the last form
    saturates instead of overflowing, and so do its derivatives (½ sech(ℓ/2), ...).
    """
    return jnp.pi / 2 + 2 * jnp.arctan(jnp.tanh(logits / 4))


def categorical_chart(logits: Array) -> Array:
    """2 √p, the Fisher–Rao chart of the categorical p = softmax(ℓ) over the last axis,
    as 2 exp(½ log_softmax ℓ): no division by a vanishing √p."""
    return 2 * jnp.exp(0.5 * jax.nn.log_softmax(logits, axis=-1))


def poisson_chart(log_rates: Array) -> Array:
    """2 √λ = 2 exp(η/2), the Fisher–Rao chart of Poisson(λ = e^η), from the log-rate η."""
    return 2 * jnp.exp(log_rates / 2)


_CHARTS: dict[str, Callable[[Array], Array]] = {
    "bernoulli": bernoulli_chart,
    "categorical": categorical_chart,
    "poisson": poisson_chart,
}

_PARAMETERS = {
    "bernoulli": "logits (any shape)",
    "categorical": "logits with the categories on the last axis",
    "poisson": "log-rates (any shape)",
    "gaussian": "a pair (mean, std) of arrays of one shape",
}


class GaussianFisher(AbstractDiagonalMetric):
    """The Fisher–Rao metric of n independent Gaussians N(μᵢ, σᵢ²) on y = (μ, σ) ∈ R²ⁿ:
    g = diag(1/σ², 2/σ²), each (μᵢ, σᵢ) a hyperbolic half-plane of curvature −1/2.

    Defined where every σᵢ > 0. Its spray is closed form: with w = (a, b),
    −Γ(w, w) = (2 a b / σ, (b² − a²/2) / σ).

    **Arguments:**

    - `dim`: 2n, the length of (μ, σ), or None to take it from the points.

    Used as the `ambient` metric of a pullback: `Pullback(lambda z: jnp.concatenate([μ(z),
    σ(z)]), ambient=GaussianFisher())` is `FisherPullback(lambda z: (μ(z), σ(z)),
    "gaussian")`.
    """

    dim: int | None = eqx.field(default=None, static=True)
    domain: ClassVar[str] = "σ > 0 (the second half of the coordinates)"

    def __check_init__(self):
        check_dim(self.dim, "GaussianFisher")
        if self.dim is not None and self.dim % 2:
            raise ValueError(f"GaussianFisher: `dim` must be even (μ, σ), got {self.dim}.")

    def diagonal(self, x: Point) -> Float[Array, " d"]:
        inverse = 1 / jnp.square(jnp.split(x, 2)[1])
        return jnp.concatenate([inverse, 2 * inverse])

    def contains(self, x: Point) -> Bool[Array, ""]:
        return jnp.all(jnp.split(x, 2)[1] > 0) & jnp.all(jnp.isfinite(x))

    def geodesic_acceleration(self, x: Point, v: Tangent) -> Tangent:
        std = jnp.split(x, 2)[1]
        a, b = jnp.split(v, 2)
        return jnp.concatenate([2 * a * b / std, (b * b - a * a / 2) / std])


class FisherPullback(AbstractPullback):
    """The pullback G(z) = Jᵀ F(θ(z)) J of the Fisher–Rao metric F of the distribution
    whose parameters θ(z) a decoder outputs (Arvanitidis et al. 2022).

    **Arguments:**

    - `f`: a JAX callable from a latent point (d,) to the distribution's parameters:
        - `"bernoulli"`: logits, any shape (p = σ(ℓ), e.g. one per pixel);
        - `"categorical"`: logits, categories on the last axis (p = softmax(ℓ));
        - `"poisson"`: log-rates, any shape (λ = e^η);
        - `"gaussian"`: a pair `(mean, std)` of arrays of one shape, std > 0.
    - `family`: one of the four names above.
    - `dim`, `jitter`, `linear_solver`: as for `Pullback`.

    Bernoulli, categorical and Poisson are the Euclidean pullback of `chart ∘ f`
    (charts 2 arcsin √p, 2 √p, 2 √λ; `immersion` returns it), so every fast path
    applies: the spray from two JVPs, curvature through the Gauss equation, the QR
    log-volume, the decoded chords of log maps. In particular the categorical chart maps
    onto the sphere of radius 2, whose Gaussian curvature is 1/4. The Gaussian pulls back
    `GaussianFisher` (dμ² + 2 dσ²)/σ² through `(mean, std)`: its spray is fast, and
    Christoffel symbols, curvature and volume differentiate G.

    **Raises:** `ValueError` for an unknown family or a decoder output that does not fit
    it (checked at the first call on a point).
    """

    f: Callable
    family: str = eqx.field(static=True)
    dim: int | None = eqx.field(static=True)
    jitter: float = eqx.field(static=True)
    ambient: GaussianFisher | None
    linear_solver: lx.AbstractLinearSolver | None = eqx.field(static=True)

    def __init__(
        self,
        f: Callable,
        family: str,
        *,
        dim: int | None = None,
        jitter: float = 0.0,
        linear_solver: lx.AbstractLinearSolver | None = None,
    ):
        if family not in FAMILIES:
            raise ValueError(
                f"FisherPullback: unknown `family` {family!r}; choose one of "
                f"{', '.join(map(repr, FAMILIES))}."
            )
        check_dim(dim, "FisherPullback")
        self.f = as_pytree_callable(f)
        self.family = family
        self.dim = dim
        self.jitter = _check_jitter(jitter, "FisherPullback")
        self.ambient = GaussianFisher() if family == "gaussian" else None
        self.linear_solver = check_linear_solver(linear_solver, "FisherPullback")

    def check_point(self, x: Point, name: str = "x", *, full_rank: bool = True) -> None:
        super().check_point(x, name)
        out = trace_decoder(self.f, x, "f", "FisherPullback")
        output_dim = _output_dimension(out, self.family)
        if full_rank:
            self._check_rank(x, output_dim)

    def immersion(self, x: Point) -> Float[Array, " D"]:
        out = self.f(x)
        # Checked when traced: calling the metric directly (`metric(x)`) skips the
        # kernels' `check_point`, and a wrong output would fail deep inside.
        _output_dimension(out, self.family)
        if self.family == "gaussian":
            mean, std = out
            return jnp.concatenate([jnp.ravel(mean), jnp.ravel(std)])
        return jnp.ravel(_CHARTS[self.family](out))


def _describe(out) -> str:
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        return f"one array of shape {tuple(out.shape)}"
    if isinstance(out, tuple | list):
        return f"a {type(out).__name__} of {len(out)} items"
    return f"a {type(out).__name__}"


def _output_dimension(out, family: str) -> int:
    """The dimension of the decoded family's parameter manifold; raises on a mismatch."""
    expected = (
        f'FisherPullback: the decoder of the "{family}" family must return {_PARAMETERS[family]}'
    )
    if family == "gaussian":
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise ValueError(
                f"{expected}, but it returned {_describe(out)}. Return both parameters, "
                "e.g. `lambda z: (mean(z), jax.nn.softplus(raw_std(z)))`; for a decoder of "
                'one output use its family ("bernoulli" logits, "poisson" log-rates), or '
                "`jgeo.Pullback` for a Gaussian of fixed variance."
            )
        mean, std = out
        if not (hasattr(mean, "shape") and hasattr(std, "shape")):
            raise ValueError(f"{expected}, but it returned ({_describe(mean)}, {_describe(std)}).")
        if mean.shape != std.shape:
            raise ValueError(f"{expected}, but mean has shape {mean.shape} and std {std.shape}.")
        arrays = [mean, std]
    else:
        if not hasattr(out, "shape"):
            raise ValueError(f"{expected}, but it returned {_describe(out)}.")
        arrays = [out]
    for array in arrays:
        if not jnp.issubdtype(array.dtype, jnp.floating):
            raise TypeError(
                f"{expected} of a float dtype, not {array.dtype}: a pullback differentiates "
                "them (an integer output, e.g. from rounding, has no derivative)."
            )
    size = sum(int(a.size) for a in arrays)
    if family == "categorical":
        if len(out.shape) == 0 or out.shape[-1] < 2:
            raise ValueError(f"{expected} (at least 2), but it returned shape {out.shape}.")
        return size - size // out.shape[-1]  # each row lies on a sphere: K − 1 dimensions
    return size
