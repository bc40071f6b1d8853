"""Geodesic throughput and accuracy (issue: geodesics).

1. Exp maps on the sphere of radius 2 given as a pullback of its embedding, endpoint
   error against the rotation formula; against geomstats when it is installed.
2. Log maps between random latent pairs of a random tanh MLP decoder R² → R⁷⁸⁴:
   convergence rate and time.
3. Distances at each accuracy tier, pairs drawn in [−1.5, 1.5]^d of the tanh MLP decoder
   d → 256 → 256 → 784 (d = 2, 16 and 64): ms per pair, length error against the exact
   connecting geodesic (rtol 1e-8), endpoint residual and convergence rate — the exact
   solve, the contract `distance(metric, x, y, rtol=1e-3, atol=1e-3)` (its default
   solver: the energy curve's Simpson length), the log map's default (`Hybrid`) at rtol
   1e-3, the fastest tier (`EnergyBVP(check_length=True)` at 8 points, rtol 5e-3), and at
   d ≤ 16 the exact solve as the last release ran it (Newton through the ODE); and
   stochman 0.3 (its `connecting_geodesic`: a cubic spline fitted by Adam) on the same
   pairs and weights when it is installed (it needs torch: run this script with an
   interpreter that has it and jgeo, e.g. a venv with `pip install '.[bench]'`).

    python bench/geodesics.py [--points 1000] [--pairs 1000] [--distance-pairs 50] [--json ...]
"""

import argparse
import importlib.util
import time

import jax
import jax.numpy as jnp
import jax.random as jr
from _decoder import decoder
from _timing import environment, print_table, time_jitted, write_json

import jgeo

RADIUS = 2.0


def sphere(q):
    theta, phi = q[0], q[1]
    return RADIUS * jnp.stack(
        [jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)]
    )


def sphere_exp_maps(n: int) -> dict:
    key_x, key_v = jr.split(jr.key(0))
    xs = jnp.stack(
        [jr.uniform(key_x, (n,), minval=0.6, maxval=2.5), jr.uniform(key_v, (n,)) * 6.0], -1
    )
    vs = 0.4 * jr.normal(jr.fold_in(key_v, 1), (n, 2))
    metric = jgeo.Pullback(sphere)
    solve = jax.jit(jax.vmap(lambda m, x, v: jgeo.exp_map(m, x, v), in_axes=(None, 0, 0)))
    timing, ends = time_jitted(solve, metric, xs, vs, repeats=5)
    ends = jax.vmap(sphere)(ends)
    starts, velocities = (
        jax.vmap(sphere)(xs),
        jax.vmap(lambda x, v: jax.jacfwd(sphere)(x) @ v)(xs, vs),
    )
    speed = jnp.linalg.norm(velocities, axis=-1, keepdims=True)
    angle = speed / RADIUS
    expected = jnp.cos(angle) * starts + RADIUS * jnp.sin(angle) * velocities / speed
    error = float(jnp.max(jnp.linalg.norm(ends - expected, axis=-1)))
    row = {"task": f"{n} exp maps, sphere r=2 (pullback)", "library": "jgeo", **timing}
    row.update(per_item_s=timing["median_s"] / n, max_error=error)
    rows = [row]
    try:
        rows += _geomstats_exp_maps(xs, vs, starts, velocities, expected, min(n, 100))
    except ImportError as error:
        print(f"geomstats unavailable ({error}); pip install '.[bench]': comparison skipped")
    return rows


def _geomstats_exp_maps(xs, vs, starts, velocities, expected, n_gs):
    """geomstats 2.8, pytorch backend: the closed-form `Hypersphere` exp (the floor), and
    the like-for-like case, a `PullbackMetric` of the same spherical-coordinate
    immersion, whose exp integrates the geodesic ODE (its default: 100 Euler steps; and
    100 RK4 steps)."""
    import os

    os.environ.setdefault("GEOMSTATS_BACKEND", "pytorch")
    import geomstats.backend as gs
    import numpy as np
    import torch
    from geomstats.geometry.base import ImmersedSet
    from geomstats.geometry.euclidean import Euclidean
    from geomstats.geometry.hypersphere import Hypersphere
    from geomstats.numerics.geodesic import ExpODESolver
    from geomstats.numerics.ivp import GSIVPIntegrator

    class RadiusTwoSphere(ImmersedSet):
        def __init__(self):
            super().__init__(dim=2)

        def immersion(self, point):
            theta, phi = point[..., 0], point[..., 1]
            return RADIUS * gs.stack(
                [gs.sin(theta) * gs.cos(phi), gs.sin(theta) * gs.sin(phi), gs.cos(theta)],
                axis=-1,
            )

        def _define_embedding_space(self):
            return Euclidean(dim=3)

    def timed(fn, *args):
        fn(*args)
        start = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - start, np.asarray(out)

    rows = []
    unit = Hypersphere(dim=2)
    seconds, ends = timed(
        unit.metric.exp, torch.tensor(np.asarray(velocities) / RADIUS),
        torch.tensor(np.asarray(starts) / RADIUS),
    )  # fmt: skip
    error = float(np.max(np.linalg.norm(RADIUS * ends - np.asarray(expected), axis=-1)))
    rows.append(
        {
            "task": "same, closed-form Hypersphere.exp",
            "library": "geomstats",
            "median_s": seconds,
            "per_item_s": seconds / len(starts),
            "max_error": error,
        }
    )
    space = RadiusTwoSphere()
    base, tangent = torch.tensor(np.asarray(xs[:n_gs])), torch.tensor(np.asarray(vs[:n_gs]))
    for step_type in ["euler", "rk4"]:
        space.metric.exp_solver = ExpODESolver(
            space, integrator=GSIVPIntegrator(n_steps=100, step_type=step_type)
        )
        seconds, ends = timed(space.metric.exp, tangent, base)
        ends = np.asarray(jax.vmap(sphere)(jnp.asarray(ends)))
        error = float(np.max(np.linalg.norm(ends - np.asarray(expected[:n_gs]), axis=-1)))
        rows.append({"task": f"{n_gs} exp maps, PullbackMetric, 100 {step_type} steps",
                     "library": "geomstats", "median_s": seconds,
                     "per_item_s": seconds / n_gs, "max_error": error})  # fmt: skip
    return rows


def decoder_log_maps(n: int) -> list[dict]:
    mlp = decoder(jr.key(1))
    metric = jgeo.Pullback(mlp)
    k1, k2 = jr.split(jr.key(2))
    xs, ys = jr.normal(k1, (n, 2)), jr.normal(k2, (n, 2))
    solve = jax.jit(
        jax.vmap(
            lambda m, x, y: jgeo.connecting_geodesic(m, x, y, throw=False), in_axes=(None, 0, 0)
        )
    )
    timing, results = time_jitted(solve, metric, xs, ys, repeats=1, min_seconds=0.0)
    ends = jax.jit(jax.vmap(lambda m, x, v: jgeo.exp_map(m, x, v, throw=False),
                            in_axes=(None, 0, 0)))(metric, xs, results.velocity)  # fmt: skip
    hit = jnp.max(jnp.abs(ends - ys), axis=-1)
    row = {"task": f"{n} log maps, tanh MLP 2→256→256→784", "library": "jgeo", **timing}
    row.update(
        per_item_s=timing["median_s"] / n,
        converged=float(jnp.mean(results.converged)),
        max_error=float(jnp.nanmax(hit)),
    )
    if importlib.util.find_spec("stochman") is None:
        print("stochman is not installed (pip install '.[bench]'): comparison skipped")
    return [row]


def decoder_distances(n: int, d: int) -> list[dict]:
    mlp = decoder(jr.key(1), d)
    metric = jgeo.Pullback(mlp)
    k1, k2 = jr.split(jr.key(3))
    xs = jr.uniform(k1, (n, d), minval=-1.5, maxval=1.5)
    ys = jr.uniform(k2, (n, d), minval=-1.5, maxval=1.5)
    loose = {"rtol": 1e-3, "atol": 1e-3}
    fastest = jgeo.EnergyBVP(check_length=True)
    tiers = [
        ("exact (rtol 1e-8)", "geodesic", {}),
        ("distance(rtol=1e-3, atol=1e-3)", "distance", loose),
        ("log map, rtol 1e-3 (Hybrid)", "geodesic", loose),
        ("fastest: EnergyBVP, 8 points, rtol 5e-3", "distance",
         {"solver": fastest, "num_points": 8, "rtol": 5e-3, "atol": 5e-3}),
    ]  # fmt: skip
    if d <= 16:  # before this release's chord steps: Newton through the ODE (d + 1 solves)
        tiers.append(("exact, Newton Jacobian (old)", "geodesic",
                      {"solver": jgeo.Hybrid(seed_jacobian=False)}))  # fmt: skip
    rows, exact = [], None
    for name, kind, kwargs in tiers:
        solve = jax.jit(jax.vmap(
            lambda m, x, y, kind=kind, kw=kwargs: _solve(kind, m, x, y, kw),
            in_axes=(None, 0, 0),
        ))  # fmt: skip
        timing, (length, converged, residual) = time_jitted(
            solve, metric, xs, ys, repeats=1, min_seconds=0.0
        )
        exact = length if exact is None else exact
        rows.append({
            "task": f"{n} distances, tanh MLP {d}→256→256→784", "library": "jgeo", "tier": name,
            "d": d, **timing, "per_item_s": timing["median_s"] / n,
            "converged": float(jnp.mean(converged)),
            "residual_max": float(jnp.nanmax(residual)),
            **_length_errors(length, exact),
        })  # fmt: skip
    try:
        rows.append(_stochman_distances(mlp, xs, ys, exact, d))
    except ImportError as error:
        print(f"stochman unavailable ({error}); pip install '.[bench]': comparison skipped")
    return rows


def _solve(kind, metric, x, y, kwargs):
    """(length, converged, endpoint residual) of one pair: `distance`'s own answer, or a
    connecting geodesic's."""
    if kind == "distance":
        length = jgeo.distance(metric, x, y, throw=False, **kwargs)
        return length, jnp.isfinite(length), jnp.zeros_like(length)
    out = jgeo.connecting_geodesic(metric, x, y, throw=False, **kwargs)
    return out.length, out.converged, out.residual


def _length_errors(lengths, exact) -> dict:
    relative = jnp.abs(lengths / exact - 1)
    return {
        "error_median": float(jnp.nanmedian(relative)),
        "error_p90": float(jnp.nanpercentile(relative, 90)),
        "error_max": float(jnp.nanmax(relative)),
        "within_0.5%": float(jnp.mean(relative < 5e-3)),
    }


def _stochman_distances(mlp, xs, ys, exact, d: int) -> dict:
    """stochman 0.3's `EmbeddedManifold.connecting_geodesic` (its defaults) on the same
    decoder weights, float64; lengths measured by jgeo on a fine grid of its curves."""
    import numpy as np
    import stochman
    import torch

    layers = [torch.nn.Linear(1, 1, dtype=torch.float64) for _ in mlp.layers]
    for layer, source in zip(layers, mlp.layers):
        layer.weight = torch.nn.Parameter(torch.tensor(np.asarray(source.weight)))
        layer.bias = torch.nn.Parameter(torch.tensor(np.asarray(source.bias)))

    class Decoder(stochman.manifold.EmbeddedManifold):
        def embed(self, c, jacobian=False):
            for i, layer in enumerate(layers):
                c = layer(c) if i == len(layers) - 1 else torch.tanh(layer(c))
            return c

    manifold = Decoder()
    p0, p1 = torch.tensor(np.asarray(xs)), torch.tensor(np.asarray(ys))
    manifold.connecting_geodesic(p0[:2], p1[:2])  # warm-up
    start = time.perf_counter()
    curves, success = manifold.connecting_geodesic(p0, p1)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        fine = curves(torch.linspace(0, 1, 256, dtype=torch.float64)).numpy()  # (n, 256, d)
    lengths = jax.vmap(lambda c: jgeo.curve_length(jgeo.Pullback(mlp), c))(jnp.asarray(fine))
    return {
        "task": f"{len(xs)} distances, tanh MLP {d}→256→256→784", "library": "stochman",
        "tier": "connecting_geodesic (defaults)", "d": d, "median_s": seconds,
        "per_item_s": seconds / len(xs), "converged": float(np.mean(np.asarray(success, float))),
        **_length_errors(lengths, exact),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--distance-pairs", type=int, default=50)
    parser.add_argument("--json", default="bench/results/geodesics.json")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)  # the accuracy targets are below float32's
    rows = sphere_exp_maps(args.points) + decoder_log_maps(args.pairs)
    distances = [r for d in (2, 16, 64) for r in decoder_distances(args.distance_pairs, d)]
    print(f"float64, {environment()['backend']}\n")
    columns = ["task", "library", "median_s", "per_item_s", "max_error", "converged", "compile_s"]
    print_table(rows, columns)
    print()
    columns = ["task", "library", "tier", "per_item_s", "error_median", "error_p90",
               "error_max", "within_0.5%", "residual_max", "converged"]  # fmt: skip
    print_table(distances, columns)
    write_json(args.json, {"environment": environment(), "rows": rows, "distances": distances})


if __name__ == "__main__":
    main()
