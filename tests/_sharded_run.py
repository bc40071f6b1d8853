"""Run by tests/test_sharding.py in a fresh process with 4 simulated CPU devices (XLA
reads XLA_FLAGS once, when JAX starts). Prints one JSON line of results."""

import json
import sys
import tempfile
from pathlib import Path

import jax

# The multi-host entry point, on its single-process path: one process, this machine.
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{sys.argv[1]}", num_processes=1, process_id=0
)

import jax.numpy as jnp  # noqa: E402

import jgeo  # noqa: E402
from jgeo.train import make_config, read_rows, train  # noqa: E402

result = {"devices": jax.device_count(), "process_index": jax.process_index()}
mesh = jgeo.make_mesh(4)
a = jnp.array([[1.0, 2.0], [0.5, -1.0], [0.3, 0.3]])
metric = jgeo.Pullback(lambda z: jnp.tanh(a @ z))
z = jax.random.normal(jax.random.key(0), (16, 2))
kernel = jax.jit(jax.vmap(lambda z: jgeo.scalar_curvature(metric, z)))
sharded = kernel(jgeo.shard_batch(mesh, z))
result["kernel_max_difference"] = float(jnp.max(jnp.abs(sharded - kernel(z))))
result["kernel_output_spec"] = str(sharded.sharding.spec)

# Geodesic solves: adaptive ODE steps and Levenberg–Marquardt iterations in lock-step
# over the batch, so every loop condition is an all-reduce over the devices. (A graph
# surface: its metric is regular everywhere, so every solve of the batch succeeds.)
surface = jgeo.Pullback(lambda z: jnp.append(z, jnp.sin(z[0]) * jnp.cos(z[1])))
v = 0.5 * jax.random.normal(jax.random.key(1), (16, 2))
y = z + 0.5 * jax.random.normal(jax.random.key(2), (16, 2))
solves = {
    "exp": (jax.jit(jax.vmap(lambda z, v: jgeo.exp_map(surface, z, v))), (z, v)),
    "distance": (jax.jit(jax.vmap(lambda z, y: jgeo.distance(surface, z, y))), (z, y)),
}
for name, (solve, args) in solves.items():
    reference = solve(*args)  # one device first, then the same program split over four
    out = solve(*(jgeo.shard_batch(mesh, a) for a in args))
    result[f"{name}_max_difference"] = float(jnp.max(jnp.abs(out - reference)))
    result[f"{name}_output_spec"] = str(out.sharding.spec)

# Failures in a sharded batch: on the saturating tanh decoder some pairs cannot be
# joined; with throw=False they come back unconverged (NaN) on any device, as on one.
connect = jax.jit(jax.vmap(lambda z, y: jgeo.connecting_geodesic(metric, z, y, throw=False)))
reference = connect(z, y)
out = connect(jgeo.shard_batch(mesh, z), jgeo.shard_batch(mesh, y))
result["failed_pairs"] = int(jnp.sum(~reference.converged))
result["same_failures"] = bool(jnp.array_equal(out.converged, reference.converged))
result["failure_length_difference"] = float(
    jnp.nanmax(jnp.abs(jnp.where(reference.converged, out.length - reference.length, 0.0)))
)

config = dict(data="swissroll", n=256, hidden=[32, 32], epochs=3, batch_size=64,
              eval_points=64, probe_every=0, regularizer="isometry")  # fmt: skip
rows = {}
for devices in (1, 4):
    with tempfile.TemporaryDirectory() as out:
        train(make_config({**config, "devices": devices}), out, progress=False, report=False)
        rows[devices] = read_rows(Path(out) / "metrics.jsonl")
result["rows_1"], result["rows_4"] = rows[1], rows[4]
print(json.dumps(result))
