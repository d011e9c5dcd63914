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
    does not divide; callers that want padding use :func:`pad_population` (the one padding
    scheme), which also returns the function that slices the result back. Integer dtypes are
    kept (int64 under ``jax.enable_x64(True)``).

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


def pad_population(tree, mesh: jax.sharding.Mesh, *, what: str = "population"):
    """Pads a population to a multiple of the device count and splits it over ``data``.

    The one padding scheme of jaxlab (STYLE 2.8): every leaf of ``tree`` (arrays, NumPy arrays or
    typed PRNG key arrays) has the same leading size n, one independent member per row. Rows are
    repeated cyclically (padded row i is row ``i mod n``), so padding rows are valid inputs, the
    real rows keep their values (and keys), and on a mesh whose size divides n nothing is added.
    Feed the result to ``jax.jit(jax.vmap(fn), out_shardings=batch_sharding(mesh))`` and apply
    ``unpad`` to its outputs.

    Args:
      tree: A pytree of arrays with a common leading axis of size n >= 1.
      mesh: A mesh with a ``data`` axis.
      what: Names the population in error messages.

    Returns:
      ``(padded, unpad)``: ``padded`` is ``tree`` with leading size ``pad_to_multiple(n, mesh)``,
      each leaf placed with axis 0 over ``data``; ``unpad(outputs)`` keeps the first n rows of
      every leaf of ``outputs`` (a no-op when nothing was padded).

    Raises:
      ValueError: leaves of different leading sizes, a scalar leaf, or an empty population.

    Examples:
      >>> mesh = data_mesh()
      >>> padded, unpad = pad_population(np.arange(3.0), mesh)
      >>> padded.shape[0] % mesh.size, unpad(padded).tolist()
      (0, [0.0, 1.0, 2.0])
    """
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(tree)}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"{what}: every leaf needs the same leading axis, got sizes {sizes}")
    n = sizes.pop()
    if n < 1:
        raise ValueError(f"{what}: expected at least one member, got {n}")
    size = pad_to_multiple(n, mesh)
    rows = np.arange(size) % n

    def place(x):
        return shard_population(x if size == n else x[rows], mesh, what=f"{what} (padded)")

    def unpad(outputs):
        return outputs if size == n else jax.tree.map(lambda x: x[:n], outputs)

    return jax.tree.map(place, tree), unpad


def vmap_population(fn, mesh: jax.sharding.Mesh, *arrays, what: str = "population"):
    """``jit(vmap(fn))(*arrays)`` over a population split across the mesh; NumPy outputs, unpadded.

    The common case of :func:`pad_population`: every argument of ``fn`` is one member's row of
    ``arrays`` (same leading size n); the population is padded to the device count, placed over
    ``data``, mapped, and the first n rows of every output leaf come back as NumPy arrays.

    Examples:
      >>> out = vmap_population(lambda x: 2 * x, data_mesh(), np.arange(3.0))
      >>> out.tolist()
      [0.0, 2.0, 4.0]
    """
    padded, unpad = pad_population(tuple(arrays), mesh, what=what)
    out = jax.jit(jax.vmap(fn), out_shardings=batch_sharding(mesh))(*padded)
    return jax.tree.map(np.asarray, unpad(out))
