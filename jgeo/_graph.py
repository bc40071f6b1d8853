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
import numpy as np
from jaxtyping import Array, Bool, Float, Int
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from ._checks import metric_point, points_of
from ._geodesics import curve_length
from ._metrics import AbstractMetric


class GeodesicGraph(eqx.Module):
    """All-pairs shortest paths on a k-NN graph of reference points (`geodesic_graph`).

    **Fields:**

    - `points`: the reference points, shape (m, d).
    - `distances`: shortest-path lengths between them, shape (m, m); ∞ between
      components that the graph does not connect, NaN between a node that is not a
      point of the metric and any other (the diagonal stays 0).
    - `next_hop`: `next_hop[i, j]` is the node after i on the shortest path to j (int32;
      j itself on the diagonal and where no path joins them).
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
        start = self._nearest(x).astype(self.next_hop.dtype)
        end = self._nearest(y).astype(self.next_hop.dtype)

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
    points), and solve all-pairs shortest paths: Dijkstra from every node on the sparse
    graph (`scipy.sparse.csgraph.dijkstra`, on the host through `jax.pure_callback`, so
    also under `jit`), O(m² log m) time for the m·k edges. The edge lengths are JAX
    (m·k segments through the metric); the (m, m) distances (float) and next hops (int32)
    are the memory: 1.2 GB in float64 at m = 10,000 (the whole call's peak is
    higher: `bench/distances.py` measures it). Gradients reach the edge lengths
    (a path's length is the sum of its edges'); the paths themselves are piecewise
    constant.

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
    # |a − b|² as |a|² + |b|² − 2a·b: (m, m), never the (m, m, d) of the differences.
    norms = jnp.sum(safe**2, -1)
    squared = norms[:, None] + norms[None] - 2 * safe @ safe.T
    squared = jnp.where(valid[None], squared, jnp.inf)  # never a neighbour
    squared = squared.at[jnp.diag_indices(m)].set(jnp.inf)  # nor the node itself
    neighbours = jax.lax.top_k(-squared, k)[1]
    t = jnp.linspace(0.0, 1.0, segment_points, dtype=points.dtype)[:, None]

    def edge(i, j):
        return curve_length(metric, (1 - t) * safe[i][None] + t * safe[j][None])

    # In batches of nodes: all m·k segments at once would hold every decoded point.
    lengths = jax.lax.map(
        lambda row: jax.vmap(edge, in_axes=(None, 0))(*row),
        (jnp.arange(m), neighbours),
        batch_size=256,
    )
    lengths = jnp.where(valid[:, None] & valid[neighbours], lengths, jnp.inf)
    distances, next_hop = _shortest_paths(lengths, neighbours)
    paired = (valid[:, None] & valid[None]) | jnp.eye(m, dtype=bool)
    return GeodesicGraph(points, jnp.where(paired, distances, jnp.nan), next_hop, valid)


def _host_shortest_paths(lengths: np.ndarray, neighbours: np.ndarray):
    """Dijkstra from every node (scipy) on the undirected graph with an edge i – j of
    weight `lengths[i, a]` for `j = neighbours[i, a]` (the shorter one where both ends
    chose each other); infinite lengths are no edge. Returns (distances, next_hop)."""
    lengths, neighbours = np.asarray(lengths), np.asarray(neighbours)
    m, k = lengths.shape
    rows = np.repeat(np.arange(m), k)
    keep = np.isfinite(lengths.ravel())
    # Explicit zeros (coincident points) stay edges in a sparse csgraph.
    weights = coo_matrix(
        (lengths.ravel()[keep], (rows[keep], neighbours.ravel()[keep])), shape=(m, m)
    ).tocsr()
    distances, predecessors = dijkstra(weights, directed=False, return_predecessors=True)
    # Undirected: the node after i on a shortest path to j is i's predecessor on the
    # shortest path from j. Unreachable pairs and the diagonal hop straight to j.
    next_hop = predecessors.T.astype(np.int32)
    np.copyto(next_hop, np.arange(m, dtype=np.int32)[None], where=next_hop < 0)
    return distances.astype(lengths.dtype), next_hop


@jax.custom_jvp
def _shortest_paths(lengths: Array, neighbours: Array) -> tuple[Array, Array]:
    """All-pairs shortest paths on the k-NN graph (`_host_shortest_paths`, on the host
    through `jax.pure_callback`, so also under `jit` and `vmap`)."""
    m = lengths.shape[0]
    shapes = (
        jax.ShapeDtypeStruct((m, m), lengths.dtype),
        jax.ShapeDtypeStruct((m, m), jnp.int32),
    )
    return jax.pure_callback(
        _host_shortest_paths, shapes, lengths, neighbours, vmap_method="sequential"
    )


@_shortest_paths.defjvp
def _shortest_paths_jvp(primals, tangents):
    # A shortest path's length is the sum of its edges' lengths (the path itself is
    # locally constant), so its tangent is the sum of theirs: summed up each source's
    # tree of shortest paths by pointer doubling (⌈log₂ m⌉ gathers of m × m, linear in
    # the edges' tangents, so reverse mode transposes them to scatters).
    lengths, neighbours = primals
    dlengths, _ = tangents
    distances, next_hop = _shortest_paths(lengths, neighbours)
    m, k = lengths.shape
    rows = jnp.arange(m)[:, None]
    before = next_hop.T  # before[s, t]: the node before t on the path from s
    reached = jnp.isfinite(distances) & (before != rows.T)

    def edge(a, b):  # the index in `lengths` of the edge a – b: the shorter side's
        on_a, on_b = neighbours[a] == b, neighbours[b] == a
        from_a = jnp.where(on_a, lengths[a], jnp.inf)
        from_b = jnp.where(on_b, lengths[b], jnp.inf)
        use_a = jnp.min(from_a) <= jnp.min(from_b)
        return jnp.where(use_a, a * k + jnp.argmin(from_a), b * k + jnp.argmin(from_b))

    edges = jax.vmap(jax.vmap(edge))(before, jnp.broadcast_to(rows.T, (m, m)))
    total = jnp.where(reached, dlengths.reshape(-1)[edges], 0.0)
    ancestor = jnp.where(reached, before, rows)  # the source (tangent 0) is its own
    for _ in range(max(1, (m - 1).bit_length())):
        total = total + jnp.take_along_axis(total, ancestor, 1)
        ancestor = jnp.take_along_axis(ancestor, ancestor, 1)
    return (distances, next_hop), (total, np.zeros((m, m), jax.dtypes.float0))
