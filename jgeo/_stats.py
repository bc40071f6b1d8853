"""The implementation of `jgeo.stats`, documented there."""

import abc
import warnings
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ._autodiff import frozen
from ._banded_least_squares import solve_queue
from ._bvp import AbstractBVPSolver, EnergyBVP, check_max_steps, energy_start
from ._checks import check_dtype, check_values, curve_in_domain, points_of
from ._custom_types import Points
from ._energy import energy_linear_solver, energy_residuals
from ._geodesics import curve_length, exp_map, geodesic
from ._graph import geodesic_graph
from ._log_map import check_tolerances, connecting_geodesic, distance
from ._metrics import AbstractMetric


def _check_points(points, name="points") -> Array:
    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[0] < 1:
        raise ValueError(f"`{name}` must be an array of shape (n, d), got shape {points.shape}.")
    check_dtype(points.dtype, name)
    return points


def _check_weights(weights, n: int, dtype) -> Array:
    """Weights (n,), finite and ≥ 0 with a positive sum, normalised to sum to 1."""
    weights = jnp.asarray(weights)
    if weights.shape != (n,):
        raise ValueError(f"`weights` must have shape ({n},) like `points`, got {weights.shape}.")
    check_dtype(jnp.result_type(weights.dtype, jnp.float32), "weights")
    weights = weights.astype(dtype)
    bad = ~jnp.all(jnp.isfinite(weights) & (weights >= 0)) | ~(jnp.sum(weights) > 0)
    message = (
        "`weights` must be finite and ≥ 0 with a positive sum (a Fréchet mean is a convex "
        "combination); give a zero weight to leave a point out, never a negative one."
    )
    weights = check_values(weights, bad, message)
    return weights / jnp.sum(weights)


class FrechetMean(NamedTuple):
    """Result of `frechet_mean`.

    **Fields:** `mean` (d,); `converged`: the Riemannian gradient fell below `tol`;
    `steps` taken; `gradient_norm`: its final G-norm; `log_maps_failed`: how many log
    maps of the last step did not converge (their points were left out of that step).
    """

    mean: Float[Array, " d"]
    converged: Bool[Array, ""]
    steps: Int[Array, ""]
    gradient_norm: Float[Array, ""]
    log_maps_failed: Int[Array, ""]


def frechet_mean(
    metric: AbstractMetric,
    points: Points,
    weights: Float[Array, " n"] | None = None,
    *,
    init: Float[Array, " d"] | None = None,
    step_size: float = 1.0,
    max_steps: int = 50,
    tol: float | None = None,
    **log_map_kwargs,
) -> FrechetMean:
    """The weighted Fréchet (Karcher) mean argmin_μ Σᵢ wᵢ d(μ, xᵢ)², by Riemannian
    gradient descent μ ← exp_μ(step_size · Σᵢ wᵢ log_μ(xᵢ)) (Pennec 2006).

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ.
    - `points` (n, d), float32 or float64; `weights` (n,), finite and ≥ 0 with a positive
      sum (normalised; default uniform). A zero weight leaves its point out.
    - `init`: the starting point (default: the weighted coordinate mean).
    - `step_size`: 1 is Newton-like where the space is nearly flat; lower it on strongly
      curved spaces if the iteration oscillates.
    - `max_steps`, `tol`: stop when the G-norm of the gradient is below `tol` (default
      1e-6 in float64, 1e-3 in float32) or after `max_steps`.
    - further keyword arguments go to `connecting_geodesic` (e.g. `solver=jgeo.EnergyBVP()`).

    **Returns:** a `FrechetMean`.

    **Raises:** `ValueError` for negative, non-finite or all-zero weights (at run time
    under `jax.jit`), `TypeError` for points that are not float32 or float64.
    """
    points = _check_points(points)
    n, _ = points.shape
    weights = _check_weights(jnp.ones(n) if weights is None else weights, n, points.dtype)
    if tol is None:
        tol = 1e-6 if points.dtype == jnp.float64 else 1e-3
    mean0 = weights @ points if init is None else jnp.asarray(init, points.dtype)

    def gradient(mu):
        def log(x):
            return connecting_geodesic(metric, mu, x, throw=False, **log_map_kwargs)

        logs = jax.vmap(log)(points)
        ok = logs.converged
        w = jnp.where(ok, weights, 0.0)
        v = jnp.where(ok[:, None], logs.velocity, 0.0)
        grad = (w / jnp.maximum(jnp.sum(w), jnp.finfo(w.dtype).tiny)) @ v
        return grad, jnp.sqrt(grad @ metric(mu) @ grad), jnp.sum(~ok)

    def cond(state):
        _, _, norm, _, steps = state
        return (norm > tol) & (steps < max_steps)

    def body(state):
        mu, grad, _, _, steps = state
        mu = exp_map(metric, mu, step_size * grad, throw=False)
        grad, norm, failed = gradient(mu)
        return mu, grad, norm, failed, steps + 1

    grad, norm, failed = gradient(mean0)
    mu, _, norm, failed, steps = jax.lax.while_loop(
        cond, body, (mean0, grad, norm, failed, jnp.zeros((), jnp.int32))
    )
    return FrechetMean(mu, norm <= tol, steps, norm, failed)


class AbstractTier(eqx.Module):
    """A way of computing a matrix of geodesic distances (`pairwise_distances`'s
    `tier`): `Exact`, `Graph` or `Refined`. A subclass implements `__call__(metric,
    points)` → the (n, n) matrix.

    **Arguments:** those of the subclass.
    """

    @abc.abstractmethod
    def __call__(self, metric: AbstractMetric, points: Array) -> Float[Array, "n n"]:
        """The symmetric distance matrix of `points` (n, d), zero on the diagonal."""


class Exact(AbstractTier):
    """One geodesic solve per pair i < j (`jgeo.distance`), `batch_size` pairs per
    vmapped solve, so memory stays bounded for large n; NaN where a solve did not
    converge.

    **Arguments:** `solver`, `rtol`, `atol`, `num_points`: those of `jgeo.distance`
    (so from rtol = 1e-3 up, the default solver is the energy curve's length, no
    shooting); `batch_size`: pairs per vmapped solve.
    """

    solver: AbstractBVPSolver | None = None
    rtol: float | None = eqx.field(default=None, static=True)
    atol: float | None = eqx.field(default=None, static=True)
    num_points: int = eqx.field(default=16, static=True)
    batch_size: int = eqx.field(default=256, static=True)

    def __call__(self, metric, points):
        n = points.shape[0]
        i, j = jnp.triu_indices(n, k=1)
        pairs = i.shape[0]
        if pairs == 0:
            return jnp.zeros((n, n), points.dtype)
        size = min(self.batch_size, pairs)
        padded = -(-pairs // size) * size
        i_pad = jnp.concatenate([i, jnp.zeros(padded - pairs, i.dtype)])
        j_pad = jnp.concatenate([j, jnp.ones(padded - pairs, j.dtype) % n])
        options = dict(solver=self.solver, rtol=self.rtol, atol=self.atol,
                       num_points=self.num_points, throw=False)  # fmt: skip

        def batch(index):
            a, b = index
            one = lambda x, y: distance(metric, x, y, **options)  # noqa: E731
            return jax.vmap(one)(points[a], points[b])

        chunks = (i_pad.reshape(-1, size), j_pad.reshape(-1, size))
        lengths = jax.lax.map(batch, chunks).reshape(-1)[:pairs]
        return _symmetric(n, i, j, lengths)


class Graph(AbstractTier):
    """Shortest paths on the k-nearest-neighbour graph of the points (and `reference`
    points, which densify it), every edge weighted by the Riemannian length of its
    straight segment (`geodesic_graph`). No solves: Dijkstra from every one of the
    m = n + len(reference) nodes on the sparse graph (scipy, on the host), O(m² log m)
    time and O(m²) memory (an m × m float and int32 matrix: 1.2 GB at m = 10,000 in
    float64; `bench/distances.py` measures its time and peak memory). A path along
    graph edges is longer than the geodesic, so this overestimates (by a few percent on
    a dense graph; see `bench/distances.py`), and is ∞ between components the graph
    does not connect.

    **Arguments:** `k`, neighbours per node; `reference`, extra nodes (r, d), e.g. a
    subsample of the training codes.
    """

    k: int = eqx.field(default=10, static=True)
    reference: Points | None = None

    def __call__(self, metric, points):
        n = points.shape[0]
        return _graph(metric, points, self.k, self.reference).distances[:n, :n]


def _graph(metric, points: Array, k: int, reference: Points | None):
    """The `geodesic_graph` of the points, then the reference points."""
    nodes = points
    if reference is not None:
        reference = _check_points(reference, "reference").astype(points.dtype)
        nodes = jnp.concatenate([points, reference])
    return geodesic_graph(metric, nodes, k)


class Refined(AbstractTier):
    """Each pair's graph path (`Graph`), resampled at `num_points`, or the straight
    segment where its discrete energy is the lower, minimised in energy (`EnergyBVP`):
    close to exact where the start lies in the right basin, at the cost of one energy
    solve per pair; lengths by Simpson's rule (`curve_length(..., rule="simpson")`).

    The tolerance (on the curve's points) is loose because the length is stationary at
    the solution, so a curve δ off changes it by O(δ²): on `bench/distances.py`'s pairs,
    1e-4 took 2.7× the iterations of 1e-3 for the same errors, and 3e-3 a quarter less
    time than 1e-3. The solves run as a queue (`slots` in flight; a finished pair's slot
    takes the next pair), not as vmapped batches, which would run every pair for as many
    steps as the batch's slowest needs (2 to over 20); 64 slots ran 1.2× faster than
    256. The lengths are measured on the solved curves with gradients stopped at them:
    gradients reach the points and the metric as the envelope theorem gives them at a
    stationary curve.

    **Arguments:** `k`, `reference`: the graph's (`Graph`); `slots`: solves in flight;
    `max_steps`, `rtol`, `atol`: each energy solve's; `num_points`: of each curve.
    """

    k: int = eqx.field(default=10, static=True)
    reference: Points | None = None
    slots: int = eqx.field(default=64, static=True)
    max_steps: int = eqx.field(default=100, static=True)
    rtol: float = eqx.field(default=3e-3, static=True)
    atol: float = eqx.field(default=3e-3, static=True)
    num_points: int = eqx.field(default=16, static=True)

    def __check_init__(self):
        if self.num_points < 3:
            raise ValueError(f"`num_points` must be at least 3, got {self.num_points}.")
        check_max_steps(self.max_steps)
        check_tolerances(self.rtol, self.atol)

    def __call__(self, metric, points):
        n = points.shape[0]
        i, j = jnp.triu_indices(n, k=1)
        if i.size == 0:
            return jnp.zeros((n, n), points.dtype)
        graph = _graph(metric, points, self.k, self.reference)
        return _symmetric(n, i, j, _refined_lengths(metric, points, i, j, graph, self))


def _symmetric(n: int, i: Array, j: Array, upper: Array) -> Array:
    matrix = jnp.zeros((n, n), upper.dtype).at[i, j].set(upper)
    return matrix + matrix.T


def pairwise_distances(
    metric: AbstractMetric,
    points: Points,
    tier: AbstractTier | None = None,
    *,
    approximation: Literal["graph", "refined"] | None = None,
    k: int | None = None,
    reference: Points | None = None,
    batch_size: int | None = None,
    **kwargs,
) -> Float[Array, "n n"]:
    """The symmetric matrix of geodesic distances between `points` (n, d), in one of three
    tiers of cost and accuracy.

    **Arguments:**

    - `metric`: a jgeo metric; `points`: shape (n, d).
    - `tier`: how (`jgeo.stats.AbstractTier`), default `Exact()`:
        - `Exact(solver=None, rtol=None, atol=None, num_points=16, batch_size=256)`: one
          `jgeo.distance` solve per pair i < j; NaN where a solve did not converge.
        - `Graph(k=10, reference=None)`: shortest paths on the k-nearest-neighbour
          graph; no solves; overestimates by a few percent.
        - `Refined(k=10, reference=None, slots=64, rtol=3e-3, ...)`: each pair's graph
          path minimised in energy; close to exact at one energy solve a pair.
      See each class, and the distance guide (docs/geodesics.md) for which to use when.
    - Deprecated, for one release (a `DeprecationWarning`): `approximation` (None,
      "graph", "refined"), `k`, `reference`, `batch_size` and further keyword arguments
      of `connecting_geodesic`, which build the tier.

    **Returns:** an (n, n) array, symmetric with a zero diagonal.

    **Raises:** `ValueError` for malformed points, an unknown `approximation`, or `k` out
    of range; `TypeError` for a `tier` that is not one, or one given with the deprecated
    arguments.
    """
    points = _check_points(points)
    old = (approximation, k, reference, batch_size)
    if any(a is not None for a in old) or kwargs:
        if tier is not None:
            raise TypeError(
                "pass either `tier` or the deprecated `approximation`/`k`/`reference`/"
                "`batch_size`/solver arguments, not both."
            )
        tier = _deprecated_tier(approximation, k, reference, batch_size, kwargs)
    tier = Exact() if tier is None else tier
    if not isinstance(tier, AbstractTier):
        raise TypeError(
            "`tier` must be jgeo.stats.Exact(...), jgeo.stats.Graph(...) or "
            f"jgeo.stats.Refined(...); got {type(tier).__name__}."
        )
    return tier(metric, points)


def _deprecated_tier(approximation, k, reference, batch_size, kwargs) -> AbstractTier:
    """The tier the old call form meant."""
    if approximation not in (None, "graph", "refined"):
        raise ValueError(
            f'`approximation` must be None (exact), "graph" or "refined", got {approximation!r}.'
        )
    warnings.warn(
        "pairwise_distances(approximation=..., k=..., reference=..., batch_size=..., "
        "**kwargs) is deprecated: pass a tier, e.g. `jgeo.stats.Graph(k=10)`, "
        "`jgeo.stats.Refined(k=10)` or `jgeo.stats.Exact(rtol=1e-3)`.",
        DeprecationWarning,
        stacklevel=3,
    )
    graph = {} if k is None else {"k": k}
    if reference is not None:
        graph["reference"] = reference
    if approximation == "graph":
        return Graph(**graph)
    solver = kwargs.pop("solver", None)
    if kwargs.get("graph", 0) is None:
        del kwargs["graph"]
    if approximation == "refined" and (solver is None or isinstance(solver, EnergyBVP)):
        if solver is not None:
            kwargs["max_steps"] = solver.max_steps
        slots = {} if batch_size is None else {"slots": batch_size}
        return Refined(**graph, **slots, **kwargs)
    if approximation == "refined":
        raise TypeError(
            'approximation="refined" with a solver other than EnergyBVP is gone with the '
            "string tiers: the refined tier runs energy solves only; for another solver "
            "use `jgeo.stats.Exact(solver=...)`."
        )
    if kwargs.pop("graph", None) is not None or set(kwargs) - {"rtol", "atol", "num_points"}:
        raise TypeError(f"unknown arguments for the exact tier: {sorted(kwargs)}.")
    size = {} if batch_size is None else {"batch_size": batch_size}
    return Exact(solver=solver, **size, **kwargs)


def _refined_lengths(metric, points, i, j, graph, tier: Refined):
    """The `Refined` tier's lengths: every pair's energy solve from its graph path (or
    line, `energy_start`), in a queue of `tier.slots` solves at a time (`solve_queue`),
    each exactly the solve of `connecting_geodesic(..., solver=EnergyBVP(), graph=graph)`.

    The solves see constants (gradients stopped); the lengths are then measured on the
    solved curves between the pairs' own points, so gradients reach the points and the
    metric's parameters as the envelope theorem gives them at a stationary curve.
    """
    fixed_metric, fixed_points, fixed_graph = frozen((metric, points, graph))
    # A pair with a point that is not one of the metric's (NaN, outside the domain) is
    # NaN, as in the exact tier; its slot solves the trivial problem from a valid point
    # to itself instead, so that no NaN enters the solves (or the gradients).
    valid = points_of(metric, points)
    anchor = jnp.argmax(valid)

    def ends(pts, k):
        ok = valid[i[k]] & valid[j[k]]
        return jnp.where(ok, pts[i[k]], pts[anchor]), jnp.where(ok, pts[j[k]], pts[anchor])

    def start(k):
        x, y = ends(fixed_points, k)
        ts = jnp.linspace(0, 1, tier.num_points, dtype=x.dtype)
        return energy_start(fixed_metric, x, y, ts, fixed_graph)[1:-1], (x, y)

    residuals, band = energy_residuals(fixed_metric)
    # As `EnergyBVP()` solves: matrix-free from d = 8 on for a pullback ("auto").
    linear_solver = energy_linear_solver(metric, points.shape[1], "auto")
    interiors, converged = solve_queue(
        residuals, start, i.shape[0], slots=tier.slots, max_steps=tier.max_steps,
        rtol=tier.rtol, atol=tier.atol, jacobian=band, linear_solver=linear_solver,
    )  # fmt: skip

    def measure(pair):
        k, interior, ok = pair
        x, y = ends(points, k)
        curve = jnp.concatenate([x[None], interior, y[None]])
        ok &= valid[i[k]] & valid[j[k]] & curve_in_domain(metric, curve)
        return jnp.where(ok, curve_length(metric, curve, rule="simpson"), jnp.nan)

    pairs = (jnp.arange(i.shape[0]), interiors, converged)
    return jax.lax.map(measure, pairs, batch_size=tier.slots)


class KMedoids(NamedTuple):
    """Result of `kmedoids`.

    **Fields:** `medoids` (k,), indices of the cluster centres; `labels` (n,), the index
    0…k−1 of each point's medoid; `cost`, Σᵢ d(xᵢ, its medoid).
    """

    medoids: Int[Array, " k"]
    labels: Int[Array, " n"]
    cost: Float[Array, ""]


def kmedoids(
    distances: Float[Array, "n n"],
    k: int,
    key: PRNGKeyArray,
    *,
    restarts: int = 10,
    max_iter: int = 50,
) -> KMedoids:
    """k-medoids on a distance matrix: k-means++ seeding, then alternating assignment
    and medoid update (each cluster's new medoid is its member with the least total
    distance to the others), from `restarts` seeds; the lowest-cost result. NaN
    distances (failed solves) count as infinitely far.

    **Arguments:**

    - `distances`: a symmetric distance matrix, shape (n, n).
    - `k`: the number of clusters, 1 ≤ k ≤ n (static).
    - `key`: a JAX PRNG key for the seeding.
    - `restarts`, `max_iter`: seeds tried, and iterations per seed.

    **Returns:** a `KMedoids`.
    """
    distances = jnp.asarray(distances)
    n = distances.shape[0]
    if distances.shape != (n, n) or not 1 <= k <= n:
        raise ValueError(
            f"`distances` must be (n, n) and 1 ≤ `k` ≤ n, got {distances.shape} and k = {k}."
        )
    d = jnp.where(jnp.isnan(distances), jnp.inf, distances)

    def seed(key):  # k-means++: next medoid with probability ∝ squared distance
        keys = jr.split(key, k)
        medoids = jnp.zeros(k, jnp.int32).at[0].set(jr.randint(keys[0], (), 0, n, jnp.int32))
        for c in range(1, k):
            nearest = jnp.min(d[:, medoids[:c]], axis=1)
            p = jnp.where(jnp.isfinite(nearest), nearest**2, 0.0)
            p = jnp.where(jnp.sum(p) > 0, p, 1.0)
            medoids = medoids.at[c].set(jr.choice(keys[c], n, p=p / jnp.sum(p)).astype(jnp.int32))
        return medoids

    finite = jnp.where(jnp.isinf(d), 1e30, d)  # so that sums over a cluster stay defined

    def step(_, medoids):
        labels = jnp.argmin(d[:, medoids], axis=1)
        member = jax.nn.one_hot(labels, k, dtype=d.dtype)  # (n, k)
        totals = finite.T @ member  # [j, c]: total distance from j to the members of c
        totals = jnp.where(member > 0, totals, jnp.inf)  # candidates: c's own members
        best = jnp.argmin(totals, axis=0)
        return jnp.where(jnp.any(member > 0, axis=0), best, medoids).astype(jnp.int32)

    def run(key):
        medoids = jax.lax.fori_loop(0, max_iter, step, seed(key))
        labels = jnp.argmin(d[:, medoids], axis=1)
        return medoids, labels, jnp.sum(d[jnp.arange(n), medoids[labels]])

    medoids, labels, cost = jax.vmap(run)(jr.split(key, restarts))
    best = jnp.argmin(cost)
    return KMedoids(medoids[best], labels[best], cost[best])


def geodesic_kmedoids(
    metric: AbstractMetric,
    points: Points,
    k: int,
    key: PRNGKeyArray,
    *,
    restarts: int = 10,
    tier: AbstractTier | None = None,
    batch_size: int | None = None,
    **kwargs,
) -> tuple[KMedoids, Float[Array, "n n"]]:
    """k-medoids clustering under geodesic distances (Arvanitidis et al. 2018): the
    clusters that the decoder's geometry sees, e.g. separated by a low-density region
    that a stochastic decoder's metric makes expensive to cross.

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ; `points`: shape (n, d).
    - `k`, `key`, `restarts`: as for `kmedoids`.
    - `tier`: how the distances are computed (`pairwise_distances`; default `Exact()`).
    - `batch_size`, `**kwargs`: deprecated, `pairwise_distances`'s old arguments.

    **Returns:** the `KMedoids` clustering and the distance matrix (n, n).
    """
    distances = pairwise_distances(metric, points, tier, batch_size=batch_size, **kwargs)
    return kmedoids(distances, k, key, restarts=restarts), distances


class TangentPCA(NamedTuple):
    """Result of `tangent_pca`.

    **Fields:** `base` (d,); `components` (d, d), rows the principal directions as
    tangent vectors at `base`, orthonormal in G(base); `explained_variance` (d,) and
    `explained_variance_ratio`, decreasing; `coordinates` (n, d) of the points' log maps
    in that basis; `log_maps_failed`.
    """

    base: Float[Array, " d"]
    components: Float[Array, "d d"]
    explained_variance: Float[Array, " d"]
    explained_variance_ratio: Float[Array, " d"]
    coordinates: Float[Array, "n d"]
    log_maps_failed: Int[Array, ""]


def tangent_pca(
    metric: AbstractMetric, points: Points, base: Float[Array, " d"] | None = None, **kwargs
) -> TangentPCA:
    """Principal geodesic analysis in its linearised form (Fletcher et al. 2004): PCA of
    the log maps log_base(xᵢ) in the inner product G(base). `base` defaults to the
    Fréchet mean; points whose log map fails are left out.

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ; `points`: shape (n, d).
    - `base`: the tangent space's base point (d,) (default: the Fréchet mean).
    - `**kwargs`: go to `connecting_geodesic`.

    **Returns:** a `TangentPCA`.
    """
    points = _check_points(points)
    if base is None:
        base = frechet_mean(metric, points, **kwargs).mean
    base = jnp.asarray(base, points.dtype)
    logs = jax.vmap(lambda x: connecting_geodesic(metric, base, x, throw=False, **kwargs))(points)
    ok = logs.converged
    v = jnp.where(ok[:, None], logs.velocity, 0.0)
    chol = jnp.linalg.cholesky(metric(base))  # G = L Lᵀ: u = Lᵀ v has ‖u‖ = ‖v‖_G
    u = v @ chol
    count = jnp.maximum(jnp.sum(ok), 1)
    centred = jnp.where(ok[:, None], u - (jnp.sum(u, 0) / count)[None], 0.0)
    variance, vectors = jnp.linalg.eigh(centred.T @ centred / count)
    variance, vectors = variance[::-1], vectors[:, ::-1]
    components = jax.scipy.linalg.solve_triangular(chol.T, vectors, lower=False).T
    total = jnp.sum(variance)
    ratio = variance / jnp.where(total > 0, total, 1.0)
    return TangentPCA(base, components, variance, ratio, centred @ vectors, jnp.sum(~ok))


def geodesic_interpolation(
    metric: AbstractMetric, x: Float[Array, " d"], y: Float[Array, " d"], n: int, **kwargs
) -> Float[Array, "n d"]:
    """`n` points from `x` to `y` along their connecting geodesic, evenly spaced in arc
    length (a geodesic has constant speed, so these are exp_x(t log_x(y)) at evenly
    spaced t): decode them for a semantic morph.

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ; `x`, `y`: the end points (d,).
    - `n`: how many points, both ends included (static).
    - `**kwargs`: go to `connecting_geodesic`.

    **Returns:** shape (n, d); NaN if the log map fails.
    """
    if n < 2:
        raise ValueError(f"`n` must be at least 2, got {n}.")
    x = jnp.asarray(x)
    found = connecting_geodesic(metric, x, y, throw=False, **kwargs)
    ts = jnp.linspace(0.0, 1.0, n, dtype=x.dtype)
    path = geodesic(metric, x, found.velocity, ts, throw=False).xs
    return jnp.where(found.converged, path, jnp.nan)
