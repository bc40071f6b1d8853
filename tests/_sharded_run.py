"""Run by tests/test_sharding.py in a fresh process with 4 simulated CPU devices (XLA
reads XLA_FLAGS once, when JAX starts). Prints one JSON line of results.

`python _sharded_run.py PORT` goes through `jax.distributed.initialize` (the multi-host
entry point, on its single-process path) and checks a kernel and training;
`python _sharded_run.py local` checks geodesic solves without it: after `initialize`,
CPU collectives go through the distributed runtime, and the all-reduce in every
iteration of a solver loop then costs several times more."""

import json
import sys
import tempfile
from pathlib import Path

import jax

DISTRIBUTED = sys.argv[1] != "local"
if DISTRIBUTED:  # one process, this machine
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

if DISTRIBUTED:
    config = dict(data="swissroll", n=256, hidden=[32, 32], epochs=3, batch_size=64,
                  eval_points=64, probe_every=0, regularizer="isometry")  # fmt: skip
    rows = {}
    for devices in (1, 4):
        with tempfile.TemporaryDirectory() as out:
            train(make_config({**config, "devices": devices}), out, progress=False)
            rows[devices] = read_rows(Path(out) / "metrics.jsonl")
    result["rows_1"], result["rows_4"] = rows[1], rows[4]
else:
    # Geodesic solves: adaptive ODE steps and Levenberg–Marquardt iterations in lock-step
    # over the batch, so every loop condition is an all-reduce over the devices.
    # Exp maps on a graph surface (regular everywhere: every solve succeeds)...
    surface = jgeo.Pullback(lambda z: jnp.append(z, jnp.sin(z[0]) * jnp.cos(z[1])))
    v = 0.5 * jax.random.normal(jax.random.key(1), (16, 2))
    exp = jax.jit(jax.vmap(lambda z, v: jgeo.exp_map(surface, z, v)))
    reference = exp(z, v)  # one device first, then the same program split over four
    out = exp(jgeo.shard_batch(mesh, z), jgeo.shard_batch(mesh, v))
    result["exp_max_difference"] = float(jnp.max(jnp.abs(out - reference)))
    result["exp_output_spec"] = str(out.sharding.spec)

    # ...and connecting geodesics on the saturating tanh decoder, where shooting cannot join
    # some pairs in 4 Newton steps: with throw=False they come back unconverged (NaN) on
    # any device, as on one. (Shooting alone keeps it short: a failed pair runs its whole
    # budget, every iteration an all-reduce between the simulated devices.)
    y = z + 0.5 * jax.random.normal(jax.random.key(2), (16, 2))
    options = dict(solver=jgeo.ShootingBVP(max_steps=4), throw=False)
    connect = jax.jit(jax.vmap(lambda z, y: jgeo.connecting_geodesic(metric, z, y, **options)))
    reference = connect(z, y)
    out = connect(jgeo.shard_batch(mesh, z), jgeo.shard_batch(mesh, y))
    result["failed_pairs"] = int(jnp.sum(~reference.converged))
    result["same_failures"] = bool(jnp.array_equal(out.converged, reference.converged))
    joined = jnp.where(reference.converged, out.length - reference.length, 0.0)
    result["distance_max_difference"] = float(jnp.max(jnp.abs(joined)))
    result["distance_output_spec"] = str(out.length.sharding.spec)

print(json.dumps(result))
