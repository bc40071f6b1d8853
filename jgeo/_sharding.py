"""The implementation of `jgeo.sharding`, documented there."""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def make_mesh(devices: int | None = None, axis: str = AXIS) -> Mesh:
    """A one-dimensional mesh over the first `devices` devices.

    **Arguments:**

    - `devices`: how many of `jax.devices()` to use (default all).
    - `axis`: the mesh axis name (`"data"`).

    **Returns:** a `jax.sharding.Mesh`.

    **Raises:** `ValueError` if more devices are asked for than JAX sees (the message
    names the CPU flag that simulates more).
    """
    available = jax.devices()
    count = len(available) if devices is None else devices
    if not 1 <= count <= len(available):
        raise ValueError(
            f"`devices` = {count}, but JAX sees {len(available)} device(s) "
            f"({available[0].platform}). On a CPU, simulate more by setting "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={count} before Python starts."
        )
    return Mesh(np.array(available[:count]), (axis,))


def batch_sharding(mesh: Mesh, axis: str = AXIS) -> NamedSharding:
    """Sharding of arrays split along their first (batch) axis over `axis`.

    **Arguments:**

    - `mesh`: a mesh from `make_mesh`; `axis`: its axis name.

    **Returns:** a `NamedSharding` with `PartitionSpec(axis)`.
    """
    return NamedSharding(mesh, PartitionSpec(axis))


def shard_batch(mesh: Mesh, array, axis: str = AXIS):
    """`array` split along its first axis over the mesh's `axis`.

    **Arguments:**

    - `mesh`: a mesh from `make_mesh`; `axis`: its axis name.
    - `array`: an array whose first axis is a multiple of the number of devices.

    **Returns:** the array, placed on the devices with `batch_sharding(mesh, axis)`.

    **Raises:** `ValueError` if the first axis is not a multiple of the device count.
    """
    array = jax.numpy.asarray(array)
    size = mesh.shape[axis]
    if array.ndim == 0 or array.shape[0] % size:
        raise ValueError(
            f"the batch axis of an array of shape {array.shape} must be a multiple of the "
            f"{size} devices of the mesh: pad or trim the batch."
        )
    return jax.device_put(array, batch_sharding(mesh, axis))


def replicate(mesh: Mesh, tree):
    """Every leaf of `tree` copied to all devices of the mesh (parameters, optimiser
    state).

    **Arguments:**

    - `mesh`: a mesh from `make_mesh`; `tree`: any pytree of arrays.

    **Returns:** the tree with every array leaf replicated over the mesh.
    """
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
