"""Metric Modules: `metric(x) -> (d, d)` at one point, plus their kernel paths.

A metric is an `equinox.Module`, so it crosses `jax.jit` boundaries as a PyTree and
gradients reach the decoder parameters it holds. The kernel methods below are the
generic autodiff path; a subclass overrides one when it knows a faster formula
(see `AbstractPullback`). Users call the free functions (`jgeo.riemann(metric, x)`),
which validate their arguments and dispatch here.
"""

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
from jax.scipy.linalg import block_diag
from jaxtyping import Array, Bool, Float

from . import _autodiff, _closed_forms as cf
from ._custom_types import ChristoffelArray, MetricMatrix, Point, RiemannArray, Scalar, Tangent
from ._linalg import PSD_TAGS  # the tags of every metric operator


def as_pytree_callable(fn: Callable) -> Callable:
    """Make `fn` a PyTree whose leaves are only its arrays, so a metric holding it can be
    passed straight to `jax.jit` and differentiated with `jax.grad`.

    A Module with array leaves only (Flax NNX, `jax.tree_util.Partial`) is kept as is;
    one that also holds functions or other non-arrays (an `eqx.nn.MLP` holds its
    activation) has those moved into static structure; a plain function is wrapped in a
    leafless `Partial` (arrays it closes over become compile-time constants).
    """
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}.")
    if jtu.treedef_is_leaf(jtu.tree_structure(fn)):
        return jtu.Partial(fn)
    arrays, static = eqx.partition(fn, eqx.is_array)
    if all(leaf is None for leaf in jtu.tree_leaves(static, is_leaf=lambda x: x is None)):
        return fn
    return _Partitioned(arrays, static)


class _Partitioned(eqx.Module):
    """A callable Module split into its arrays (leaves) and the rest (static)."""

    arrays: Any
    static: Any = eqx.field(static=True)

    def __call__(self, *args):
        return eqx.combine(self.arrays, self.static)(*args)


class AbstractMetric(eqx.Module):
    """A Riemannian metric on an open subset of Rᵈ, evaluated one point at a time.

    **Fields:**

    - `dim`: the dimension d of the points, or `None` when only the first call can tell
      (a decoder of unknown latent size).

    A metric defined on part of Rᵈ only (the Poincaré models) says so in `contains`:
    every public function checks its points against it, and raises (or, with
    `throw=False`, reports a failure) instead of computing with the formula outside.
    """

    dim: eqx.AbstractVar[int | None]
    domain: ClassVar[str] = "all of Rᵈ"

    @abc.abstractmethod
    def __call__(self, x: Point) -> MetricMatrix:
        """The metric matrix gᵢⱼ(x), symmetric positive definite, shape (d, d)."""

    def contains(self, x: Point) -> Bool[Array, ""]:
        """Whether `x` lies in the open set the metric is defined on (`domain`)."""
        return jnp.all(jnp.isfinite(x))

    def check_point(self, x: Point, name: str = "x", *, full_rank: bool = True) -> None:
        """Raise a clear error (at trace time) if `x` is not a point of this metric.

        With `full_rank` (the kernels' default) it also raises where the shapes alone
        show that the metric is singular (a decoder with fewer outputs than latent
        coordinates, and no jitter); `metric_operator` and `local_basis`, which are
        defined there, pass False."""
        if self.dim is not None and x.shape[0] != self.dim:
            raise ValueError(
                f"`{name}` has {x.shape[0]} coordinates but {type(self).__name__} is "
                f"{self.dim}-dimensional; pass a point of shape ({self.dim},)."
            )

    # Kernel paths. Overriding one changes `jgeo.<kernel>(..., method="auto")` only.

    def christoffel(self, x: Point) -> ChristoffelArray:
        return _autodiff.christoffel(self, x)

    def geodesic_acceleration(self, x: Point, v: Tangent) -> Tangent:
        return _autodiff.geodesic_acceleration(self, x, v)

    def riemann(self, x: Point) -> RiemannArray:
        return _autodiff.riemann(self, x)

    def sectional_curvature(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        return _autodiff.sectional_from_riemann(self(x), self.riemann(x), u, v)

    def log_volume(self, x: Point) -> Scalar:
        return _autodiff.log_volume(self, x)

    def operator(self, x: Point) -> lx.AbstractLinearOperator:
        """G(x) as a symmetric positive semidefinite `lineax` operator (what
        `jgeo.metric_operator` returns): here the matrix itself; a pullback's applies
        G without forming it."""
        return lx.MatrixLinearOperator(self(x), PSD_TAGS)

    def pushforward(self, x: Point, vectors: Float[Array, "d k"]) -> Float[Array, "D k"] | None:
        """The images J v of tangent vectors (columns of `vectors`) in the space the
        metric is pulled back from, or None for a metric that is not a pullback (as
        here). `jgeo.local_basis` reports them as `outputs`."""
        return None

    # Closed-form geodesics. A metric that has them returns True here and overrides the
    # four methods; `jgeo.exp_map` and friends then use them instead of solving the
    # geodesic equation (which stays available with `method="ode"`).

    @property
    def closed_form_geodesics(self) -> bool:
        """Whether `exp_map`, `log_map`, `distance`, `parallel_transport` are closed forms."""
        return False

    def exp_map(self, x: Point, v: Tangent) -> Point:
        """exp_x(v) in closed form (only where `closed_form_geodesics`)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form exp map.")

    def log_map(self, x: Point, y: Point) -> Tangent:
        """log_x(y) in closed form (only where `closed_form_geodesics`)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form log map.")

    def distance(self, x: Point, y: Point) -> Scalar:
        """The geodesic distance in closed form (only where `closed_form_geodesics`)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form distance.")

    def parallel_transport(self, x: Point, v: Tangent, w: Tangent) -> Tangent:
        """Transport of w along t ↦ exp_x(t v), t ∈ [0, 1], in closed form (only where
        `closed_form_geodesics`)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form transport.")


class AbstractDiagonalMetric(AbstractMetric):
    """A metric whose matrix is diagonal, g = diag(`diagonal(x)`): a pullback through it
    as ambient metric (`Pullback(f, ambient=...)`) scales the Jacobian's rows instead of
    forming the D × D matrix."""

    @abc.abstractmethod
    def diagonal(self, x: Point) -> Float[Array, " d"]:
        """The diagonal of g(x), positive, shape (d,)."""

    def __call__(self, x: Point) -> MetricMatrix:
        return jnp.diag(self.diagonal(x))


class AbstractSpaceForm(AbstractMetric):
    """A metric of constant curvature whose geodesics are known in closed form.

    Subclasses implement `exp_map`, `log_map`, `distance` and `parallel_transport` as
    methods; the free functions use them under `method="auto"`, and the ODE path stays
    available (`method="ode"`) as the reference. `metric.closed_form_geodesics` is True.

    **Arguments:** those of the subclass (`dim`, and `radius` for the sphere).
    """

    @property
    def closed_form_geodesics(self) -> bool:
        return True


def check_point(metric: AbstractMetric, x: Point, name: str, full_rank: bool) -> None:
    """`metric.check_point`, passing `full_rank` only when it is False (so that a
    metric of one's own whose `check_point(x, name)` predates it keeps working)."""
    if full_rank:
        metric.check_point(x, name)
    else:
        metric.check_point(x, name, full_rank=False)


def check_dim(dim: int | None, owner: str) -> None:
    if dim is not None and (not isinstance(dim, int) or dim < 1):
        raise ValueError(f"{owner}: `dim` must be a positive int or None, got {dim!r}.")


class MetricField(AbstractMetric):
    """The metric given by a function `fn: x ↦ g(x)` with `g(x)` of shape (d, d).

    **Arguments:**

    - `fn`: any JAX callable returning a symmetric positive-definite matrix; a Module
      (equinox, Flax NNX) keeps its parameters differentiable through the metric.
    - `dim`: the dimension d, if known; used to validate points.
    """

    fn: Callable
    dim: int | None = eqx.field(static=True)

    def __init__(self, fn: Callable, dim: int | None = None):
        check_dim(dim, "MetricField")
        self.fn = as_pytree_callable(fn)
        self.dim = dim

    def check_point(self, x: Point, name: str = "x", *, full_rank: bool = True) -> None:
        super().check_point(x, name)
        shape = jax.eval_shape(self.fn, x).shape
        if shape != (x.shape[0], x.shape[0]):
            raise ValueError(
                f"MetricField: `fn` must return a ({x.shape[0]}, {x.shape[0]}) matrix at a "
                f"point of shape {x.shape}, but returned shape {shape}."
            )

    def __call__(self, x: Point) -> MetricMatrix:
        return self.fn(x)


class Euclidean(AbstractSpaceForm):
    """The flat metric gᵢⱼ = δᵢⱼ on Rᵈ; geodesics are straight lines.

    **Arguments:**

    - `dim`: the dimension d.
    """

    dim: int = eqx.field(static=True)

    def __check_init__(self):
        check_dim(self.dim, "Euclidean")

    def __call__(self, x: Point) -> MetricMatrix:
        return jnp.eye(self.dim, dtype=x.dtype)

    def exp_map(self, x: Point, v: Tangent) -> Point:
        return x + v

    def log_map(self, x: Point, y: Point) -> Tangent:
        return y - x

    def distance(self, x: Point, y: Point) -> Scalar:
        return cf.safe_norm(y - x)[0]

    def parallel_transport(self, x: Point, v: Tangent, w: Tangent) -> Tangent:
        return w


class PoincareBall(AbstractSpaceForm):
    """Poincaré ball model of hyperbolic space, curvature −1: g = (2 / (1 − ‖x‖²))² I.

    Defined for ‖x‖ < 1: every function raises on a point on or outside the unit
    sphere (or reports it, with `throw=False`). (Outside the ball the same formula is
    again a metric of curvature −1, the ball's inversion, but it is not a point of the
    model.) Geodesics are closed forms through Möbius addition (Ganea et al. 2018): the
    exp map never leaves the ball, also in float32 at large velocities; where its end
    would lie within a few machine epsilons of the unit sphere, it is NaN (see
    `jgeo.exp_map`).

    **Arguments:**

    - `dim`: the dimension d.
    """

    dim: int = eqx.field(static=True)
    domain: ClassVar[str] = "the open unit ball ‖x‖ < 1"

    def __check_init__(self):
        check_dim(self.dim, "PoincareBall")

    def __call__(self, x: Point) -> MetricMatrix:
        factor = 2.0 / (1.0 - x @ x)
        return factor**2 * jnp.eye(self.dim, dtype=x.dtype)

    def contains(self, x: Point) -> Bool[Array, ""]:
        return x @ x < 1

    def exp_map(self, x: Point, v: Tangent) -> Point:
        return cf.ball_exp(x, v)

    def log_map(self, x: Point, y: Point) -> Tangent:
        return cf.ball_log(x, y)

    def distance(self, x: Point, y: Point) -> Scalar:
        return cf.ball_distance(x, y)

    def parallel_transport(self, x: Point, v: Tangent, w: Tangent) -> Tangent:
        return cf.ball_transport(x, v, w)


class PoincareHalfSpace(AbstractSpaceForm):
    """Poincaré upper half-space model, curvature −1: g = I / x_d², for x_d > 0.

    Geodesics in closed form, through the ball: the inversion in the sphere of radius
    √2 about −e_d is an isometry onto the Poincaré ball.

    **Arguments:**

    - `dim`: the dimension d (the last coordinate is x_d).
    """

    dim: int = eqx.field(static=True)
    domain: ClassVar[str] = "the upper half-space x_d > 0"

    def __check_init__(self):
        check_dim(self.dim, "PoincareHalfSpace")

    def __call__(self, x: Point) -> MetricMatrix:
        return jnp.eye(self.dim, dtype=x.dtype) / x[-1] ** 2

    def contains(self, x: Point) -> Bool[Array, ""]:
        return (x[-1] > 0) & jnp.all(jnp.isfinite(x))

    def exp_map(self, x: Point, v: Tangent) -> Point:
        return cf.half_space_exp(x, v)

    def log_map(self, x: Point, y: Point) -> Tangent:
        return cf.half_space_log(x, y)

    def distance(self, x: Point, y: Point) -> Scalar:
        return cf.half_space_distance(x, y)

    def parallel_transport(self, x: Point, v: Tangent, w: Tangent) -> Tangent:
        return cf.half_space_transport(x, v, w)


class StereographicSphere(AbstractSpaceForm):
    """The round sphere of radius r in stereographic coordinates, curvature 1/r².

    g = (2r² / (r² + ‖x‖²))² I: projection from the north pole onto the equatorial
    plane, so the south pole is x = 0 and the equator is ‖x‖ = r. Geodesics are
    great circles, in closed form through the embedding in Rᵈ⁺¹; the north pole is not
    in the chart, so a geodesic through it has no coordinates there (the exp map
    returns infinity, and the log map of antipodal points is NaN).

    **Arguments:**

    - `dim`: the dimension d of the sphere (and of the chart).
    - `radius`: r > 0.
    """

    dim: int = eqx.field(static=True)
    radius: float = 1.0

    def __check_init__(self):
        check_dim(self.dim, "StereographicSphere")
        if isinstance(self.radius, int | float) and not self.radius > 0:
            raise ValueError(f"StereographicSphere: `radius` must be > 0, got {self.radius}.")

    def __call__(self, x: Point) -> MetricMatrix:
        r2 = jnp.square(self._radius(x))
        factor = 2.0 * r2 / (r2 + x @ x)
        return factor**2 * jnp.eye(self.dim, dtype=x.dtype)

    def _radius(self, x: Point) -> Array:
        return jnp.asarray(self.radius, x.dtype)

    def exp_map(self, x: Point, v: Tangent) -> Point:
        return cf.sphere_exp(x, v, self._radius(x))

    def log_map(self, x: Point, y: Point) -> Tangent:
        return cf.sphere_log(x, y, self._radius(x))

    def distance(self, x: Point, y: Point) -> Scalar:
        return cf.sphere_distance(x, y, self._radius(x))

    def parallel_transport(self, x: Point, v: Tangent, w: Tangent) -> Tangent:
        return cf.sphere_transport(x, v, w, self._radius(x))


class Product(AbstractMetric):
    """Product metric: block-diagonal over concatenated coordinates x = (x₁, …, xₖ).

    **Arguments:**

    - `*factors`: metrics whose `dim` is known (give a `Pullback` its `dim=`).
    """

    factors: tuple[AbstractMetric, ...]
    dim: int = eqx.field(static=True)

    def __init__(self, *factors: AbstractMetric):
        if not factors:
            raise ValueError("Product: give at least one factor metric.")
        for i, factor in enumerate(factors):
            if not isinstance(factor, AbstractMetric):
                raise TypeError(
                    f"Product: factor {i} must be a jgeo metric, got {type(factor).__name__}."
                )
            if factor.dim is None:
                raise ValueError(
                    f"Product: factor {i} ({type(factor).__name__}) has no known `dim`; "
                    "construct it with `dim=...` so the coordinates can be split."
                )
        self.factors = tuple(factors)
        self.dim = sum(f.dim for f in factors)

    def _split(self, x: Point) -> list[Point]:
        bounds = [0]
        for factor in self.factors:
            bounds.append(bounds[-1] + factor.dim)
        return [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def check_point(self, x: Point, name: str = "x", *, full_rank: bool = True) -> None:
        super().check_point(x, name)
        for factor, part in zip(self.factors, self._split(x)):
            check_point(factor, part, name, full_rank)

    @property
    def domain(self) -> str:
        return " × ".join(f"({factor.domain})" for factor in self.factors)

    def contains(self, x: Point) -> Bool[Array, ""]:
        return jnp.all(jnp.stack(self._per_factor(lambda m, y: m.contains(y), x)))

    def __call__(self, x: Point) -> MetricMatrix:
        return block_diag(*self._per_factor(lambda m, y: m(y), x))

    # Every kernel of a product is block-wise, so each factor keeps its own fast path.

    def _per_factor(self, kernel: Callable, x: Point) -> list:
        return [kernel(factor, part) for factor, part in zip(self.factors, self._split(x))]

    def _blockwise(self, method: str, *args: Point) -> list:
        """Each factor's `method` on its own coordinates of every argument."""
        parts = zip(self.factors, *(self._split(a) for a in args))
        return [getattr(factor, method)(*rest) for factor, *rest in parts]

    def _block_diagonal(self, blocks: list) -> Array:
        """Place one rank-r array per factor on the diagonal of a (dim,)*r array."""
        rank = blocks[0].ndim
        out = jnp.zeros((self.dim,) * rank, jnp.result_type(*blocks))
        start = 0
        for block in blocks:
            index = (slice(start, start + block.shape[0]),) * rank
            out = out.at[index].set(block)
            start += block.shape[0]
        return out

    def christoffel(self, x: Point) -> ChristoffelArray:
        return self._block_diagonal(self._per_factor(lambda m, y: m.christoffel(y), x))

    def geodesic_acceleration(self, x: Point, v: Tangent) -> Tangent:
        return jnp.concatenate(self._blockwise("geodesic_acceleration", x, v))

    def riemann(self, x: Point) -> RiemannArray:
        return self._block_diagonal(self._per_factor(lambda m, y: m.riemann(y), x))

    def log_volume(self, x: Point) -> Scalar:
        return sum(self._per_factor(lambda m, y: m.log_volume(y), x))

    def operator(self, x: Point) -> lx.AbstractLinearOperator:
        # Block-diagonal: each factor's own operator on its coordinates.
        operators = self._per_factor(lambda m, y: m.operator(y), x)

        def mv(v):
            return jnp.concatenate([op.mv(part) for op, part in zip(operators, self._split(v))])

        return lx.FunctionLinearOperator(mv, jax.ShapeDtypeStruct(x.shape, x.dtype), PSD_TAGS)

    # Geodesics of a product are products of geodesics: closed when every factor's is.

    @property
    def closed_form_geodesics(self) -> bool:
        return all(factor.closed_form_geodesics for factor in self.factors)

    def exp_map(self, x: Point, v: Tangent) -> Point:
        return jnp.concatenate(self._blockwise("exp_map", x, v))

    def log_map(self, x: Point, y: Point) -> Tangent:
        return jnp.concatenate(self._blockwise("log_map", x, y))

    def distance(self, x: Point, y: Point) -> Scalar:
        return cf.safe_norm(jnp.stack(self._blockwise("distance", x, y)))[0]

    def parallel_transport(self, x: Point, v: Tangent, w: Tangent) -> Tangent:
        return jnp.concatenate(self._blockwise("parallel_transport", x, v, w))
