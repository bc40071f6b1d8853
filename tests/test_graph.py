"""The geodesic graph's shortest paths (Dijkstra from every node, scipy, on the host)
against a brute-force reference, across components, and in their gradients."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse.csgraph import floyd_warshall

from jgeo._graph import _shortest_paths


def _random_graph(seed, m=12, k=3):
    """Edge lengths of a random k-NN-like graph in two halves that share no edge."""
    rng = np.random.default_rng(seed)
    half = m // 2
    neighbours = np.stack([rng.choice(half - 1, k, replace=False) for _ in range(m)])
    neighbours += neighbours >= np.arange(m)[:, None] % half  # never the node itself
    neighbours += np.where(np.arange(m) >= half, half, 0)[:, None]  # stay in one's half
    lengths = rng.uniform(0.5, 2.0, (m, k))
    return jnp.asarray(lengths), jnp.asarray(neighbours, jnp.int32)


def _dense(lengths, neighbours):
    m = lengths.shape[0]
    dense = np.full((m, m), np.inf)
    for i, row in enumerate(np.asarray(neighbours)):
        for a, j in enumerate(row):
            dense[i, j] = min(dense[i, j], float(lengths[i, a]))
    return np.minimum(dense, dense.T)  # an edge if either end chose it, the shorter


def test_shortest_paths_match_floyd_warshall_and_next_hop_walks_them():
    lengths, neighbours = _random_graph(0)
    dense = _dense(lengths, neighbours)
    distances, next_hop = jax.jit(_shortest_paths)(lengths, neighbours)
    reference = floyd_warshall(dense, directed=False)
    np.testing.assert_allclose(distances, reference, rtol=1e-12)
    assert np.isinf(distances[0, -1]) and np.isinf(distances[-1, 0])  # two components
    m = lengths.shape[0]
    for i in range(m):
        for j in range(m):
            node, walked = i, 0.0
            for _ in range(m):  # follow next_hop; each hop is an edge of the graph
                if node == j or not np.isfinite(reference[i, j]):
                    break
                after = int(next_hop[node, j])
                walked += dense[node, after]
                node = after
            if np.isfinite(reference[i, j]):
                assert node == j and np.isclose(walked, reference[i, j], rtol=1e-12)
            else:
                assert int(next_hop[i, j]) == j  # no path: straight to the end


def test_shortest_path_gradients_are_the_sums_along_the_paths():
    lengths, neighbours = _random_graph(1)

    def total(lengths):  # the finite distances, weighted so every pair counts differently
        distances, _ = _shortest_paths(lengths, neighbours)
        weights = jnp.arange(distances.size, dtype=distances.dtype).reshape(distances.shape)
        return jnp.sum(jnp.where(jnp.isfinite(distances), weights * distances, 0.0))

    grad = jax.jit(jax.grad(total))(lengths)
    step = 1e-6
    numeric = np.zeros(lengths.shape)
    for index in np.ndindex(*lengths.shape):
        up, down = (total(lengths.at[index].add(s)) for s in (step, -step))
        numeric[index] = (up - down) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)
    assert np.any(grad != 0)
