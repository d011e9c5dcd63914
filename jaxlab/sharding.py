"""Meshes and NamedShardings: data parallelism over every device (STYLE 2.8).

One mesh axis, ``"data"``, spans all devices. Batches (and vmapped populations) are sharded on
their leading axis; parameters and optimizer state are replicated. The axis type is **Auto**:
shardings are set at the jit boundary and XLA propagates them, so the same code runs unchanged on
one device. Nothing else in jaxlab builds a data mesh.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def data_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh ``("data",)`` over the first ``num_devices`` devices (default: all).

    Axis type Auto (see module docstring): data-parallel code needs no explicit sharding types.
    """
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices must be in [1, {len(devices)}], got {num_devices}")
    return jax.sharding.Mesh(np.array(devices[:n]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimizer state, scalars)."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading axis split over ``data``; other axes whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_divisible(batch_size: int, mesh: jax.sharding.Mesh, what: str = "batch size") -> None:
    """Fails loudly when a leading axis cannot be split evenly over the data axis."""
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(f"{what} {batch_size} is not divisible by the {n} devices of the mesh")


def shard_batch(tree, mesh: jax.sharding.Mesh):
    """Places every array of ``tree`` with its leading axis sharded over ``data``."""
    sharding = batch_sharding(mesh)

    def put(x):
        check_divisible(x.shape[0], mesh)
        return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)


def replicate(tree, mesh: jax.sharding.Mesh):
    """Places every array of ``tree`` replicated on all devices of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))
