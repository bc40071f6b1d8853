"""Shared test fixtures: tolerances by dtype and manifolds with known geometry."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import jgeo

# Every kernel as kernel(metric, x) -> array, with fixed extra vectors in 3 dimensions.
V = jnp.array([0.7, -0.2, 0.4])
U = jnp.array([0.1, 0.9, -0.3])
KERNELS = {
    "christoffel": jgeo.christoffel,
    "geodesic_acceleration": lambda m, x: jgeo.geodesic_acceleration(m, x, V),
    "riemann": jgeo.riemann,
    "ricci": jgeo.ricci,
    "scalar_curvature": jgeo.scalar_curvature,
    "sectional_curvature": lambda m, x: jgeo.sectional_curvature(m, x, U, V),
    "log_volume": jgeo.log_volume,
}

_TOLERANCES = {
    jnp.dtype("float64"): dict(rtol=1e-8, atol=1e-10),
    jnp.dtype("float32"): dict(rtol=2e-3, atol=2e-4),
}


def tree_allclose(a, b, **overrides) -> bool:
    """`allclose` on every leaf, with tolerances set by the leaves' dtype."""
    leaves_a, leaves_b = jtu.tree_leaves(a), jtu.tree_leaves(b)
    if jtu.tree_structure(a) != jtu.tree_structure(b):
        return False
    for x, y in zip(leaves_a, leaves_b):
        x, y = jnp.asarray(x), jnp.asarray(y)
        tol = dict(_TOLERANCES[jnp.result_type(x.dtype, y.dtype)], **overrides)
        if x.shape != y.shape or not np.allclose(x, y, **tol):
            return False
    return True


def mlp_decoder(key, d: int, D: int, width: int = 12, dtype=jnp.float64) -> eqx.nn.MLP:
    """A random smooth decoder Rᵈ → Rᴰ (tanh MLP); its weights are scaled up so the
    image is visibly curved."""
    mlp = eqx.nn.MLP(d, D, width, depth=2, activation=jnp.tanh, key=key, dtype=dtype)
    return jtu.tree_map(lambda p: 1.5 * p if eqx.is_array(p) else p, mlp)


def sphere_embedding(radius: float):
    """Spherical coordinates (θ, φ) ↦ r (sin θ cos φ, sin θ sin φ, cos θ)."""

    def f(q):
        theta, phi = q[0], q[1]
        return radius * jnp.stack(
            [jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)]
        )

    return f


def sphere_metric_matrix(radius: float):
    """The same sphere's metric diag(r², r² sin² θ) written out by hand."""
    return lambda q: jnp.diag(jnp.stack([radius**2, (radius * jnp.sin(q[0])) ** 2]))


def torus_embedding(big: float, small: float):
    """(θ, φ) ↦ ((R + r cos θ) cos φ, (R + r cos θ) sin φ, r sin θ).

    Gaussian curvature K = cos θ / (r (R + r cos θ)).
    """

    def f(q):
        theta, phi = q[0], q[1]
        ring = big + small * jnp.cos(theta)
        return jnp.stack([ring * jnp.cos(phi), ring * jnp.sin(phi), small * jnp.sin(theta)])

    return f


def space_form_riemann_lower(g, curvature):
    """R_abcd = K (g_ac g_bd − g_ad g_bc) of a space of constant curvature K."""
    return curvature * (jnp.einsum("ac,bd->abcd", g, g) - jnp.einsum("ad,bc->abcd", g, g))


def lower(g, riemann_tensor):
    """R_abcd = g_ae Rᵉ_bcd."""
    return jnp.einsum("ae,ebcd->abcd", g, riemann_tensor)


def random_points(key, n: int, d: int, scale: float = 0.5, dtype=jnp.float64):
    return scale * jr.normal(key, (n, d), dtype)


def central_difference(fn, x, direction, eps: float = 1e-6):
    """(fn(x + εv) − fn(x − εv)) / 2ε for a PyTree `x` and matching `direction`."""
    plus = jtu.tree_map(lambda a, b: a + eps * b, x, direction)
    minus = jtu.tree_map(lambda a, b: a - eps * b, x, direction)
    return jtu.tree_map(lambda a, b: (a - b) / (2 * eps), fn(plus), fn(minus))


def random_like(key, tree):
    """A random PyTree with the array leaves of `tree` (non-arrays kept)."""
    leaves, treedef = jtu.tree_flatten(tree)
    keys = jr.split(key, len(leaves))
    new = [
        jr.normal(k, leaf.shape, leaf.dtype) if eqx.is_inexact_array(leaf) else leaf
        for k, leaf in zip(keys, leaves)
    ]
    return jtu.tree_unflatten(treedef, new)


def tree_dot(a, b):
    products = jtu.tree_map(lambda x, y: jnp.sum(x * y) if eqx.is_inexact_array(x) else 0.0, a, b)
    return sum(jtu.tree_leaves(products))


# A training run small enough for a test (a few seconds on 2 cores). Probes are off (each
# run would compile them); tests/test_dynamics.py has them on.
TINY_RUN = dict(
    data="swissroll",
    n=256,
    hidden=(32, 32),
    epochs=3,
    batch_size=64,
    eval_points=64,
    probe_every=0,
)


def run_notebook(path, tmp_path, monkeypatch) -> None:
    """Execute the notebook at `path` top to bottom, small (`JGEO_QUICK=1`), in a kernel
    started in `tmp_path` (where its runs/ land); fail with the failing cell's error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("JGEO_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()  # the kernel inherits the environment set above
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}")
