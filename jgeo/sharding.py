"""Scale-out with JAX's own SPMD engine: a data mesh, batch-sharded arrays, replicated
parameters. jgeo's kernels and geodesic solves are per-point functions under `vmap`, so
`jax.jit(jax.vmap(kernel))` applied to a batch sharded along its first axis runs on
every device at once and returns results sharded the same way; nothing here is
specific to one host (under `jax.distributed.initialize`, `jax.devices()` spans all
processes).

Geodesic solves on sharded batches need `throw=False`: a failed solve raises on its own
device, and the other devices then wait for it at the next all-reduce of their loops.
"""

from ._sharding import (
    AXIS as AXIS,
    batch_sharding as batch_sharding,
    make_mesh as make_mesh,
    replicate as replicate,
    shard_batch as shard_batch,
)
