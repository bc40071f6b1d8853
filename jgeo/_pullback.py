"""Pullback metrics G = JᵀJ of decoders, with fast paths for their kernels.

For an immersion f: Rᵈ → Rᴰ with Jacobian J and Hessian H[m, i, j] = ∂ᵢ∂ⱼ fᵐ:

- the Christoffel symbols of the first kind are Γₗᵢⱼ = Jₗ · Hᵢⱼ, so the geodesic spray
  −Γ(v, v) = −G⁻¹ Jᵀ D²f(x)[v, v] needs J and one second-order JVP, never Γ itself;
- the curvature follows from the Gauss equation R_abcd = ⟨II_ac, II_bd⟩ − ⟨II_ad, II_bc⟩,
  with the second fundamental form II_ij = P_N Hᵢⱼ (the part of the Hessian normal to
  the image), so it needs second derivatives of f where autodiff of G needs third.

Jitter ε appends √ε·x to the immersion, so G = JᵀJ + εI is itself a pullback and every
formula above stays exact for the regularised metric.

Through a non-Euclidean ambient metric M (`Pullback(f, ambient=M)`, G = Jᵀ M(f) J) the
spray keeps its fast form, −G⁻¹ Jᵀ M (D²f[v, v] + Γᴹ(Jv, Jv)) with the ambient's own
spray, and the other kernels take the generic path (autodiff of G).
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from . import _autodiff
from ._autodiff import area_squared
from ._custom_types import ChristoffelArray, MetricMatrix, Point, RiemannArray, Scalar, Tangent
from ._linalg import raise_first_index, solve, solve_matrix_free
from ._metrics import (
    PSD_TAGS,
    AbstractDiagonalMetric,
    AbstractMetric,
    as_pytree_callable,
    check_dim,
)


def trace_decoder(fn: Callable, x: Point, name: str, owner: str):
    """The abstract output of `fn` at `x` (shapes and dtypes, nothing computed); a
    `ValueError` naming the decoder if it cannot be called there."""
    try:
        return jax.eval_shape(fn, x)
    except Exception as error:
        raise ValueError(
            f"{owner}: calling the decoder `{name}` on a point of shape {x.shape} failed "
            f"({type(error).__name__}: {error}). Check that points have the decoder's "
            "latent dimension."
        ) from error


def _check_decoder(fn: Callable, x: Point, name: str, owner: str) -> tuple[int, ...]:
    """Trace `fn` at `x` and check that it returns one floating vector."""
    out = trace_decoder(fn, x, name, owner)
    if not hasattr(out, "shape") or len(out.shape) != 1:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"{owner}: the decoder `{name}` must map a point of shape (d,) to a vector of "
            f"shape (D,), but it returned {shape}; flatten it, e.g. "
            f"`{owner}(lambda z: {name}(z).ravel())`."
        )
    check_float_output(out, name, owner)
    return out.shape


def check_float_output(out, name: str | None, owner: str) -> None:
    """A `TypeError` naming the decoder if its output (an array or its abstract value)
    is not floating point: a pullback differentiates it, and JAX cannot differentiate
    integer or boolean outputs (it fails deep inside with float0 tangents)."""
    if not jnp.issubdtype(out.dtype, jnp.floating):
        decoder = "the decoder" if name is None else f"the decoder `{name}`"
        raise TypeError(
            f"{owner}: {decoder} returned dtype {out.dtype}, but a pullback "
            "metric differentiates the decoder's output, which must be floating point (an "
            "integer output, e.g. from rounding, has no derivative). Return the decoder's "
            "continuous output, before any `round` or `astype(int)`."
        )


class AbstractPullback(AbstractMetric):
    """The metric G = Jᵀ M J (+ εI) induced by an immersion into a Riemannian space
    (Rᴰ, M): Euclidean (M = I) when `ambient` is None.

    Subclasses give the immersion (and the ambient metric); this class gives the fast
    kernel paths. Through a Euclidean ambient every kernel has one; through another
    ambient the spray has one, and the rest differentiate G.

    **Fields:** (abstract, given by subclasses)

    - `jitter`: ε ≥ 0, added as εI.
    - `ambient`: the metric M on the output space, or None for the Euclidean one.
    - `linear_solver`: how the spray solves G u = b and the energy stage of
      `connecting_geodesic` its normal equations: None for Cholesky factorisations (of G
      from d JVPs; of d × d blocks), or a `lineax` solver such as `lineax.CG(rtol, atol,
      max_steps=...)` to solve matrix-free by products (`metric_operator`).
    - `immersion(z)`: the map whose Jacobian J is pulled back.
    """

    jitter: eqx.AbstractVar[float]
    ambient: eqx.AbstractVar[AbstractMetric | None]
    linear_solver: eqx.AbstractVar[lx.AbstractLinearSolver | None]

    @abc.abstractmethod
    def immersion(self, x: Point) -> Float[Array, " D"]:
        """The map whose Euclidean metric is pulled back (without jitter)."""

    def embedding(self, x: Point) -> Float[Array, " D"]:
        """The immersion, with √ε·x appended when `jitter` ε > 0."""
        y = self._float_immersion(x)
        if self.jitter:
            return jnp.concatenate([y, jnp.sqrt(jnp.asarray(self.jitter, y.dtype)) * x])
        return y

    def _float_immersion(self, x: Point) -> Float[Array, " D"]:
        # Checked when traced, so that calling the metric directly (`metric(x)`, which
        # skips the kernels' `check_point`) also names an integer decoder output.
        y = self.immersion(x)
        check_float_output(y, None, type(self).__name__)
        return y

    def jacobian(self, x: Point) -> Float[Array, "D d"]:
        """J = ∂ embedding / ∂x, by forward mode (d JVPs; decoders have D ≫ d)."""
        return self._jacobian_rows(x).T

    def _jacobian_rows(self, x: Point) -> Float[Array, "d D"]:
        return self._embedding_and_rows(x)[1]

    def _embedding_and_rows(self, x: Point) -> tuple[Float[Array, " D"], Float[Array, "d D"]]:
        # (f(x), Jᵀ): one linearisation, pushed along each coordinate direction. Kept
        # tangent-major, and every contraction over the output axis m is written as an
        # einsum over trailing axes: under vmap, XLA on CPU runs `rows @ rows.T` about
        # twice slower (it materialises the transpose per batch element).
        y, push = jax.linearize(self.embedding, x)
        return y, jax.vmap(push)(jnp.eye(x.shape[0], dtype=x.dtype))

    def _check_rank(self, x: Point, output_dim: int) -> None:
        if output_dim < x.shape[0] and not self.jitter:
            raise ValueError(
                f"{type(self).__name__}: the decoder maps {x.shape[0]} latent coordinates to "
                f"only {output_dim} outputs, so JᵀJ is singular everywhere; use a latent "
                "dimension ≤ the output dimension, or pass `jitter=1e-6`."
            )

    def __call__(self, x: Point) -> MetricMatrix:
        if self.ambient is not None:
            return self._ambient_gram(x)[2]
        return _gram(self._jacobian_rows(x))

    def _ambient_gram(self, x: Point) -> tuple[Array, Array, Array]:
        """(f(x), Jᵀ, Jᵀ M J + εI) through the ambient metric M."""
        y, push = jax.linearize(self._float_immersion, x)
        rows = jax.vmap(push)(jnp.eye(x.shape[0], dtype=x.dtype))
        g = jnp.einsum("im,jm->ij", rows, _lower(self.ambient, y, rows))
        if self.jitter:
            g = g + self.jitter * jnp.eye(x.shape[0], dtype=g.dtype)
        return y, rows, g

    def _second_order(self, x: Point) -> tuple[Array, Array, Array, Array]:
        """(Jᵀ, H, G, Γ) with H[i, j, m] = ∂ᵢ∂ⱼ embeddingᵐ and Γ[k, i, j] = Γᵏᵢⱼ.

        Γ of the first kind is Γₗᵢⱼ = Jₗ · Hᵢⱼ: the tangential part of the Hessian.
        """
        basis = jnp.eye(x.shape[0], dtype=x.dtype)
        push = lambda e: jax.jvp(self._jacobian_rows, (x,), (e,))  # noqa: E731
        rows, hess = jax.vmap(push, out_axes=(None, 0))(basis)
        g = _gram(rows)
        first_kind = jnp.einsum("lm,ijm->lij", rows, hess)
        return rows, hess, g, solve(g, first_kind)

    def christoffel(self, x: Point) -> ChristoffelArray:
        if self.ambient is not None:
            return _autodiff.christoffel(self, x)
        return self._second_order(x)[3]

    def geodesic_acceleration(self, x: Point, v: Tangent) -> Tangent:
        if self.linear_solver is not None:
            return self._matrix_free_spray(x, v)
        if self.ambient is not None:
            # Jᵀ M (J ẍ + D²f[v, v] + Γᴹ(Jv, Jv)) + εẍ = 0: the ambient acceleration of
            # the image curve is normal to the image (the jitter coordinates are flat).
            y, rows, g = self._ambient_gram(x)
            immersion = self._float_immersion
            jv, accel = jax.jvp(lambda z: jax.jvp(immersion, (z,), (v,))[1], (x,), (v,))
            force = accel - self.ambient.geodesic_acceleration(y, jv)
            return -solve(g, jnp.einsum("im,m->i", rows, _lower(self.ambient, y, force)))
        rows = self._jacobian_rows(x)
        accel = _second_directional(self.embedding, x, v, v)
        return -solve(_gram(rows), jnp.einsum("im,m->i", rows, accel))

    def _matrix_free_spray(self, x: Point, v: Tangent) -> Tangent:
        # −G⁻¹ Jᵀ M (D²f[v, v] + Γᴹ(Jv, Jv)) with Jᵀ(·) one VJP and G⁻¹ by the solver on
        # the operator (products G u only); a solve that fails gives NaN, so the ODE
        # solve reports it.
        immersion = self._float_immersion
        y, push = jax.linearize(immersion, x)
        jv, force = jax.jvp(lambda z: jax.jvp(immersion, (z,), (v,))[1], (x,), (v,))
        if self.ambient is not None:
            force = _lower(self.ambient, y, force - self.ambient.geodesic_acceleration(y, jv))
        b = jax.linear_transpose(push, x)(force)[0]
        return -solve_matrix_free(self.operator(x).mv, b, self.linear_solver)

    def riemann(self, x: Point) -> RiemannArray:
        if self.ambient is not None:
            return _autodiff.riemann(self, x)
        # II_ij = P_N Hᵢⱼ = Hᵢⱼ − Γᵏᵢⱼ Jₖ, the part of the Hessian normal to the image.
        # H and II are symmetric: only their d(d+1)/2 distinct rows are computed (one
        # second-order JVP each, the dominant cost) and enter the Gram matrix of inner
        # products, which is then gathered into R.
        i, j, pair = _symmetric_pairs(x.shape[0])
        rows = self._jacobian_rows(x)
        basis = jnp.eye(x.shape[0], dtype=x.dtype)
        second = lambda a, b: _second_directional(self.embedding, x, a, b)  # noqa: E731
        hess = jax.vmap(second)(basis[i], basis[j])  # (pairs, D)
        g = _gram(rows)
        gamma = solve(g, jnp.einsum("km,pm->kp", rows, hess))  # Γᵏ of each pair
        normal = hess - jnp.einsum("kp,km->pm", gamma, rows)
        gram = jnp.einsum("pm,qm->pq", normal, normal)
        inner = gram[pair[:, None, :, None], pair[None, :, None, :]]  # ⟨II_ac, II_bd⟩
        return raise_first_index(g, inner - jnp.swapaxes(inner, 2, 3))

    def sectional_curvature(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        if self.ambient is not None:
            return _autodiff.sectional_from_riemann(self(x), self.riemann(x), u, v)
        # Gauss: K(u, v) = (⟨II(u,u), II(v,v)⟩ − ‖II(u,v)‖²) / area², three second-order JVPs.
        rows = self._jacobian_rows(x)
        g = _gram(rows)
        pairs = jnp.stack([u, u, v]), jnp.stack([u, v, v])
        hess_dirs = jax.vmap(lambda a, b: _second_directional(self.embedding, x, a, b))(*pairs)
        tangential = solve(g, jnp.einsum("im,pm->ip", rows, hess_dirs))
        normal = hess_dirs - jnp.einsum("ip,im->pm", tangential, rows)
        uu, uv, vv = normal
        return (uu @ vv - uv @ uv) / area_squared(g, u, v)

    def operator(self, x: Point) -> lx.AbstractLinearOperator:
        # v ↦ Jᵀ M (J v) + εv: the immersion is linearised once, and each product is
        # one JVP and one VJP (the transpose of the same linear map); G is never formed.
        y, push = jax.linearize(self._float_immersion, x)
        pull = jax.linear_transpose(push, x)
        ambient, jitter = self.ambient, self.jitter

        def mv(v):
            w = push(v)
            if ambient is not None:
                w = _lower(ambient, y, w)
            out = pull(w)[0]
            return out + jitter * v if jitter else out

        return lx.FunctionLinearOperator(mv, jax.ShapeDtypeStruct(x.shape, x.dtype), PSD_TAGS)

    def pushforward(self, x: Point, vectors: Float[Array, "d k"]) -> Float[Array, "D k"]:
        # J v of the immersion (without the jitter coordinates), one JVP per column.
        push = jax.linearize(self._float_immersion, x)[1]
        return jax.vmap(push, in_axes=1, out_axes=-1)(vectors)

    def log_volume(self, x: Point) -> Scalar:
        if self.ambient is not None:
            return _autodiff.log_volume(self, x)
        # ½ log det JᵀJ = log |det R| for J = QR: no squaring of J's condition number.
        r = jnp.linalg.qr(self.jacobian(x), mode="r")
        return jnp.sum(jnp.log(jnp.abs(jnp.diagonal(r))))


def _symmetric_pairs(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs i ≤ j, and the d × d table mapping (i, j) and (j, i) to their pair."""
    i, j = np.triu_indices(d)
    pair = np.empty((d, d), dtype=np.int32)
    pair[i, j] = pair[j, i] = np.arange(i.size)
    return i, j, pair


def _lower(ambient: AbstractMetric, y: Array, w: Array) -> Array:
    """M(y) w for vectors w (..., D) (M is symmetric): elementwise for a diagonal M."""
    if isinstance(ambient, AbstractDiagonalMetric):
        return w * jnp.broadcast_to(ambient.diagonal(y), w.shape)
    return w @ ambient(y)


def _gram(rows: Float[Array, "d D"]) -> MetricMatrix:
    """JᵀJ from the rows of Jᵀ."""
    return jnp.einsum("im,jm->ij", rows, rows)


def _second_directional(fn: Callable, x: Point, a: Tangent, b: Tangent) -> Array:
    """D²fn(x)[a, b] by a JVP of a JVP."""
    return jax.jvp(lambda y: jax.jvp(fn, (y,), (a,))[1], (x,), (b,))[1]


class Pullback(AbstractPullback):
    """Pullback metric G(z) = J(z)ᵀ J(z) of a decoder (immersion) `f: Rᵈ → Rᴰ`, or
    J(z)ᵀ M(f(z)) J(z) through an `ambient` metric M.

    **Arguments:**

    - `f`: any JAX callable from a point of shape (d,) to a vector of shape (D,): a
      function, an equinox Module, a Flax NNX Module, or a function closing over
      parameters. Modules stay PyTrees inside the metric, so `jax.grad` with respect to
      the metric reaches their parameters.
    - `dim`: the latent dimension d, if known (validates points; needed in `Product`).
    - `jitter`: ε ≥ 0; the metric becomes JᵀJ + εI, which keeps it positive definite
      where J loses rank (dead ReLUs, collapsed decoders). Without jitter, kernels raise
      there rather than return NaN.
    - `ambient`: a jgeo metric M on the output space Rᴰ, or None for the Euclidean one:
      the metric becomes G = Jᵀ M(f(z)) J. The spray (hence exp maps and shooting) keeps
      its fast path, −G⁻¹ Jᵀ M (D²f[v, v] + Γᴹ(Jv, Jv)) with M's own spray; Christoffel
      symbols, curvature and the volume differentiate G (`method="autodiff"`), which
      costs third derivatives of `f`. Where M is the Euclidean metric of a chart (the
      Fisher–Rao metrics of `FisherPullback` except the Gaussian's), pull back through
      `chart ∘ f` instead and keep every fast path.
    - `linear_solver`: None (default) solves the spray's G u = b by a Cholesky
      factorisation of G, which costs d JVPs and O(d³); a `lineax` solver, e.g.
      `lineax.CG(rtol=1e-6, atol=1e-6, max_steps=500)`, solves it matrix-free on
      `metric_operator` instead (one JVP and one VJP per iteration), for wide latent
      spaces: `exp_map`, `geodesic` and `parallel_transport` then never form G, nor
      does `connecting_geodesic(..., solver=EnergyBVP())`, whose Levenberg–Marquardt
      normal equations are then solved by the same solver (preconditioned by the
      curve's second differences) instead of factoring d × d blocks. Its tolerance must
      be tighter than the ODE's. Shooting (`ShootingBVP`, `Hybrid`) still takes the
      d × d Jacobian of the exp map (d tangents through the ODE), and the other kernels
      (Christoffel symbols, curvature, the exact log-volume) form G as before. Where it
      pays is measured in `docs/wide.md` (`bench/wide.py --parts geodesics`).
    """

    f: Callable
    dim: int | None = eqx.field(static=True)
    jitter: float = eqx.field(static=True)
    ambient: AbstractMetric | None
    linear_solver: lx.AbstractLinearSolver | None = eqx.field(static=True)

    def __init__(
        self,
        f: Callable,
        *,
        dim: int | None = None,
        jitter: float = 0.0,
        ambient: AbstractMetric | None = None,
        linear_solver: lx.AbstractLinearSolver | None = None,
    ):
        check_dim(dim, "Pullback")
        if ambient is not None and not isinstance(ambient, AbstractMetric):
            raise TypeError(
                "Pullback: `ambient` must be a jgeo metric on the decoder's output space "
                f"(or None for the Euclidean one), got {type(ambient).__name__}."
            )
        self.f = as_pytree_callable(f)
        self.dim = dim
        self.jitter = _check_jitter(jitter, "Pullback")
        self.ambient = ambient
        self.linear_solver = check_linear_solver(linear_solver, "Pullback")

    def check_point(self, x: Point, name: str = "x", *, full_rank: bool = True) -> None:
        super().check_point(x, name)
        (output_dim,) = _check_decoder(self.f, x, "f", "Pullback")
        if self.ambient is not None and self.ambient.dim not in (None, output_dim):
            raise ValueError(
                f"Pullback: the decoder returns {output_dim} outputs but `ambient` "
                f"({type(self.ambient).__name__}) is {self.ambient.dim}-dimensional; "
                "give an ambient metric of the decoder's output dimension."
            )
        if full_rank:
            self._check_rank(x, output_dim)

    def immersion(self, x: Point) -> Float[Array, " D"]:
        return self.f(x)


class StochasticPullback(AbstractPullback):
    """Expected metric of a Gaussian decoder N(μ(z), diag σ(z)²) (Arvanitidis et al. 2018).

    E[JᵀJ] = J_μᵀ J_μ + J_σᵀ J_σ, which is the pullback of z ↦ (μ(z), σ(z)) ∈ R²ᴰ; the
    fast pullback kernels therefore apply unchanged. Where σ grows away from the data
    (an RBF variance network), this metric makes geodesics avoid empty regions.

    **Arguments:**

    - `mean`, `std`: JAX callables from a point of shape (d,) to vectors of shape (D,).
    - `dim`, `jitter`, `linear_solver`: as for `Pullback`.
    """

    mean: Callable
    std: Callable
    dim: int | None = eqx.field(static=True)
    jitter: float = eqx.field(static=True)
    ambient: None = eqx.field(default=None, static=True)
    linear_solver: lx.AbstractLinearSolver | None = eqx.field(static=True)

    def __init__(
        self,
        mean: Callable,
        std: Callable,
        *,
        dim: int | None = None,
        jitter: float = 0.0,
        linear_solver: lx.AbstractLinearSolver | None = None,
    ):
        check_dim(dim, "StochasticPullback")
        self.mean = as_pytree_callable(mean)
        self.std = as_pytree_callable(std)
        self.dim = dim
        self.jitter = _check_jitter(jitter, "StochasticPullback")
        self.linear_solver = check_linear_solver(linear_solver, "StochasticPullback")

    def check_point(self, x: Point, name: str = "x", *, full_rank: bool = True) -> None:
        super().check_point(x, name)
        mean_shape = _check_decoder(self.mean, x, "mean", "StochasticPullback")
        std_shape = _check_decoder(self.std, x, "std", "StochasticPullback")
        if mean_shape != std_shape:
            raise ValueError(
                f"StochasticPullback: `mean` returns shape {mean_shape} but `std` returns "
                f"{std_shape}; a diagonal Gaussian decoder needs both of the same shape."
            )
        if full_rank:
            self._check_rank(x, 2 * mean_shape[0])

    def immersion(self, x: Point) -> Float[Array, " D"]:
        return jnp.concatenate([self.mean(x), self.std(x)])


def _check_jitter(jitter: float, owner: str) -> float:
    if not isinstance(jitter, int | float) or jitter < 0:
        raise ValueError(f"{owner}: `jitter` must be a float ≥ 0, got {jitter!r}.")
    return float(jitter)


def check_linear_solver(solver, owner: str):
    if solver is not None and not isinstance(solver, lx.AbstractLinearSolver):
        raise TypeError(
            f"{owner}: `linear_solver` must be a lineax solver such as "
            "`lineax.CG(rtol=1e-6, atol=1e-6, max_steps=500)`, or None for a Cholesky "
            f"factorisation of G; got {type(solver).__name__}."
        )
    return solver
