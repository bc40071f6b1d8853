"""A geodesic graph over reference latent points, to start connecting geodesics between
far-apart points from a path that already follows the geometry.

Straight lines are poor starts when the segment crosses a region of high cost (a gap
between clusters under a stochastic decoder): the energy minimisation then settles on
the straight geodesic through the wall, a critical point but not the shortest path.
Shortest paths on a k-nearest-neighbour graph of reference points, with edges weighted
by their Riemannian length, go around it (the initialisation stochman's users ask for).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._checks import metric_point, points_of
from ._geodesics import curve_length
from ._metrics import AbstractMetric


class GeodesicGraph(eqx.Module):
    """All-pairs shortest paths on a k-NN graph of reference points.

    **Fields:**

    - `points`: the reference points, shape (m, d).
    - `distances`: shortest-path lengths between them, shape (m, m); ∞ between
      components that the graph does not connect, NaN between a node that is not a
      point of the metric and any other (the diagonal stays 0).
    - `next_hop`: `next_hop[i, j]` is the node after i on the shortest path to j.
    - `valid`: which nodes are points of the metric (finite, and inside its domain),
      shape (m,). The others have no edges: no path passes through them.
    """

    points: Float[Array, "m d"]
    distances: Float[Array, "m m"]
    next_hop: Int[Array, "m m"]
    valid: Bool[Array, " m"]

    def path(self, x: Array, y: Array, num_points: int) -> Float[Array, "n d"]:
        """A curve of `num_points` points from x to y through the graph: x, the valid
        node nearest x, the shortest path to the valid node nearest y, y; resampled
        evenly in (coordinate) arc length."""
        start = self._nearest(x)
        end = self._nearest(y)

        # Hop until the end node (a path has at most m − 1 hops; under vmap, until every
        # path has arrived): the rest of the buffer stays at the end node.
        length = self.points.shape[0] - 1

        def hop(carry):
            node, k, nodes = carry
            following = self.next_hop[node, end]
            return following, k + 1, nodes.at[k].set(following)

        def travelling(carry):
            node, k, _ = carry
            return (node != end) & (k < length)

        nodes = jnp.full(length, end)
        _, _, nodes = jax.lax.while_loop(travelling, hop, (start, 0, nodes))
        polyline = jnp.concatenate([x[None], self.points[start][None], self.points[nodes], y[None]])
        arc = jnp.concatenate(
            [jnp.zeros(1, x.dtype), jnp.cumsum(_norms(jnp.diff(polyline, axis=0)))]
        )
        targets = jnp.linspace(0.0, 1.0, num_points, dtype=x.dtype) * arc[-1]
        return jax.vmap(lambda column: jnp.interp(targets, arc, column), in_axes=1, out_axes=1)(
            polyline
        )

    def _nearest(self, x: Array) -> Array:
        squared = jnp.sum((self.points - x[None]) ** 2, -1)
        return jnp.argmin(jnp.where(self.valid & ~jnp.isnan(squared), squared, jnp.inf))


def _norms(steps: Array) -> Array:
    # A zero-length hop (the path has reached its end node) must not give a NaN gradient.
    squared = jnp.sum(steps**2, -1)
    safe = jnp.where(squared > 0, squared, 1.0)
    return jnp.where(squared > 0, jnp.sqrt(safe), 0.0)


def geodesic_graph(
    metric: AbstractMetric,
    points: Float[Array, "m d"],
    k: int = 8,
    *,
    segment_points: int = 5,
) -> GeodesicGraph:
    """Build the k-nearest-neighbour graph of `points` (neighbours in coordinates),
    weight each edge by the Riemannian length of its straight segment (`segment_points`
    points), and solve all-pairs shortest paths (Floyd–Warshall, O(m³): meant for a few
    hundred reference points, e.g. a subsample of the training codes).

    **Arguments:**

    - `metric`: a jgeo metric on Rᵈ.
    - `points`: the graph's nodes, shape (m ≥ 2, d). A node that is not a point of the
      metric (not finite, or outside its domain: `metric.contains`) is left out of the
      graph: no edges, NaN distances to the others, as the exact distances give.
    - `k`: neighbours per node, 1 ≤ k < m (the graph is symmetrised).
    - `segment_points`: points of the polygon that measures each edge.

    **Returns:** a `GeodesicGraph`, to pass as `connecting_geodesic(..., graph=graph)`.

    **Raises:** `ValueError` for `points` of the wrong shape or `k` out of range.
    """
    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[0] < 2:
        raise ValueError(f"`points` must have shape (m ≥ 2, d), got {points.shape}.")
    metric_point(metric, points[0], throw=False)  # shapes only
    m = points.shape[0]
    if not 1 <= k < m:
        raise ValueError(f"`k` must be between 1 and m − 1 = {m - 1}, got {k}.")
    valid = points_of(metric, points)
    # Invalid nodes are measured at a valid one (no NaN, also in gradients), then cut off.
    safe = jnp.where(valid[:, None], points, points[jnp.argmax(valid)][None])
    squared = jnp.sum((safe[:, None] - safe[None]) ** 2, -1)
    squared = jnp.where(valid[None], squared, jnp.inf)  # never a neighbour
    neighbours = jnp.argsort(squared, axis=1)[:, 1 : k + 1]
    t = jnp.linspace(0.0, 1.0, segment_points, dtype=points.dtype)[:, None]

    def edge(i, j):
        return curve_length(metric, (1 - t) * safe[i][None] + t * safe[j][None])

    lengths = jax.vmap(jax.vmap(edge, in_axes=(None, 0)))(jnp.arange(m), neighbours)
    lengths = jnp.where(valid[:, None] & valid[neighbours], lengths, jnp.inf)
    weights = jnp.full((m, m), jnp.inf, points.dtype)
    weights = weights.at[jnp.arange(m)[:, None], neighbours].set(lengths)
    weights = jnp.minimum(weights, weights.T)  # symmetric: an edge if either side chose it
    weights = weights.at[jnp.diag_indices(m)].set(0.0)
    next_hop = jnp.broadcast_to(jnp.arange(m)[None], (m, m))

    def relax(via, state):
        dist, nxt = state
        through = dist[:, via, None] + dist[None, via, :]
        better = through < dist
        return jnp.where(better, through, dist), jnp.where(better, nxt[:, via, None], nxt)

    distances, next_hop = jax.lax.fori_loop(0, m, relax, (weights, next_hop))
    paired = (valid[:, None] & valid[None]) | jnp.eye(m, dtype=bool)
    return GeodesicGraph(points, jnp.where(paired, distances, jnp.nan), next_hop, valid)
