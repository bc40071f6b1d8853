"""Geodesic throughput and accuracy (issue: geodesics).

1. Exp maps on the sphere of radius 2 given as a pullback of its embedding, endpoint
   error against the rotation formula; against geomstats when it is installed.
2. Log maps between random latent pairs of a random tanh MLP decoder R² → R⁷⁸⁴:
   convergence rate and time; against stochman when it is installed.

    python bench/geodesics.py [--points 1000] [--pairs 1000] [--json ...]
"""

import argparse
import importlib.util
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
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
    timing = time_jitted(solve, metric, xs, vs, repeats=5)
    ends = jax.vmap(sphere)(solve(metric, xs, vs))
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
        rows.append(_geomstats_exp_maps(starts, velocities, expected))
    except ImportError as error:
        print(f"geomstats unavailable ({error}); pip install '.[bench]': comparison skipped")
    return rows


def _geomstats_exp_maps(starts, velocities, expected):
    # geomstats' Hypersphere exp is the closed form, not an ODE solve: this row is the
    # accuracy and speed floor, not a like-for-like comparison with a pullback metric.
    import os

    os.environ.setdefault("GEOMSTATS_BACKEND", "pytorch")
    import numpy as np
    from geomstats.geometry.hypersphere import Hypersphere

    sphere_gs = Hypersphere(dim=2)
    # geomstats' unit sphere: scale points and velocities by 1/r, results by r.
    base, tangent = np.asarray(starts) / RADIUS, np.asarray(velocities) / RADIUS
    import torch

    base_t, tangent_t = torch.tensor(base), torch.tensor(tangent)
    sphere_gs.metric.exp(tangent_t, base_t)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        out = sphere_gs.metric.exp(tangent_t, base_t)
        runs.append(time.perf_counter() - start)
    ends = RADIUS * np.asarray(out)
    error = float(np.max(np.linalg.norm(ends - np.asarray(expected), axis=-1)))
    median = sorted(runs)[len(runs) // 2]
    return {
        "task": "same, closed-form sphere exp", "library": "geomstats", "median_s": median,
        "per_item_s": median / len(base), "max_error": error,
    }  # fmt: skip


def decoder_log_maps(n: int) -> list[dict]:
    mlp = eqx.nn.MLP(2, 784, 256, depth=2, activation=jnp.tanh, key=jr.key(1))
    metric = jgeo.Pullback(mlp)
    k1, k2 = jr.split(jr.key(2))
    xs, ys = jr.normal(k1, (n, 2)), jr.normal(k2, (n, 2))
    solve = jax.jit(
        jax.vmap(
            lambda m, x, y: jgeo.connecting_geodesic(m, x, y, throw=False), in_axes=(None, 0, 0)
        )
    )
    timing = time_jitted(solve, metric, xs, ys, repeats=1, min_seconds=0.0)
    results = solve(metric, xs, ys)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--json", default="bench/results/geodesics.json")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)  # the accuracy targets are below float32's
    rows = sphere_exp_maps(args.points) + decoder_log_maps(args.pairs)
    print(f"float64, {environment()['backend']}\n")
    columns = ["task", "library", "median_s", "per_item_s", "max_error", "converged", "compile_s"]
    print_table(rows, columns)
    write_json(args.json, {"environment": environment(), "rows": rows})


if __name__ == "__main__":
    main()
