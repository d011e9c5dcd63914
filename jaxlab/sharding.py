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


def sequence_mesh(num_devices: int | None = None, axis: str = "seq") -> jax.sharding.Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (default: all) for sequence parallelism.

    Axis type Auto, like :func:`data_mesh`; :mod:`jaxlab.deer.seq_parallel` splits the time axis
    of a recurrence over it with ``jax.shard_map``.
    """
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices must be in [1, {len(devices)}], got {num_devices}")
    return jax.sharding.Mesh(np.array(devices[:n]), (axis,), axis_types=(AxisType.Auto,))


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


def population_sharding(mesh: jax.sharding.Mesh, ndim: int, axis: int = 0) -> NamedSharding:
    """Axis ``axis`` of an ``ndim``-dimensional array split over ``data``; other axes whole.

    The sharding of a vmapped population (STYLE 2.8): ``axis`` is the vmapped axis, e.g. the N
    of a batch of independent problems or the D axis of a simulation grid.
    """
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array of rank {ndim}")
    spec = [None] * ndim
    spec[axis % ndim] = DATA_AXIS
    return NamedSharding(mesh, P(*spec))


def shard_population(x, mesh: jax.sharding.Mesh, axis: int = 0, what: str = "population size"):
    """Places ``x`` (array-like) with axis ``axis`` split evenly over the ``data`` axis of ``mesh``.

    No silent padding: raises ``ValueError`` naming the size and the device count when the axis
    does not divide; callers that want padding call :func:`pad_to_multiple` themselves and slice
    the result back. Integer dtypes are kept (int64 under ``jax.enable_x64(True)``).

    Examples:
      >>> mesh = data_mesh()
      >>> x = shard_population(np.arange(8 * len(jax.devices())), mesh)
      >>> x.sharding.spec
      P('data',)
    """
    shape = np.shape(x)
    sharding = population_sharding(mesh, len(shape), axis)
    check_divisible(shape[axis], mesh, what)
    return jax.device_put(x, sharding)


def pad_to_multiple(n: int, mesh: jax.sharding.Mesh) -> int:
    """The smallest multiple of the mesh's ``data`` size that is >= ``n`` (explicit padding)."""
    d = mesh.shape[DATA_AXIS]
    return -(-n // d) * d
