"""Data-parallel populations (STYLE 2.8) on the 4 simulated CPU devices of conftest.py:
``sharding.shard_population`` places a population or fails loudly on uneven sizes, and
``sharding.pad_population`` (the one padding scheme) pads any size, keeps the real rows, and its
vmapped, sharded result equals the unsharded one after ``unpad``. Topic populations are tested in
test_ab_plus_c_sharding.py, test_quanta_sharding.py, test_tokenizer_sharding.py and
test_deer_sharding.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from numerics import tol

from jaxlab import sharding


def _assert_on_data(x, mesh, spec):
    assert isinstance(x.sharding, NamedSharding)
    assert x.sharding.spec == spec
    assert len(x.sharding.device_set) == mesh.size == 4


def test_shard_population_places_and_rejects_uneven():
    mesh = sharding.data_mesh()
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    y = sharding.shard_population(x, mesh, axis=1)
    _assert_on_data(y, mesh, P(None, "data"))
    np.testing.assert_array_equal(np.asarray(y), x)
    assert y.addressable_shards[0].data.shape == (3, 2)
    with pytest.raises(ValueError, match=r"population size 3 .* 4 devices"):
        sharding.shard_population(x, mesh, axis=0)
    with pytest.raises(ValueError, match="out of range"):
        sharding.population_sharding(mesh, 2, axis=2)
    assert [sharding.pad_to_multiple(n, mesh) for n in (0, 1, 4, 5)] == [0, 4, 4, 8]


@pytest.mark.parametrize("size", [1, 3, 4, 5, 8])
def test_pad_population_sharded_equals_unsharded(size, key):
    """Uneven sizes are padded, the output sharding is the declared one, unpad restores size."""
    mesh = sharding.data_mesh()
    x = jax.random.normal(key, (size, 3), jnp.float32)
    keys = jax.random.split(key, size)
    tree = {"x": x, "n": np.arange(size, dtype=np.int32), "key": keys}
    padded, unpad = sharding.pad_population(tree, mesh, what="members")
    width = -(-size // 4) * 4
    for leaf in jax.tree.leaves(padded):
        assert leaf.shape[0] == width
        _assert_on_data(leaf, mesh, sharding.population_sharding(mesh, leaf.ndim).spec)
    # Padding rows repeat real rows cyclically: valid inputs; real rows and keys unchanged.
    np.testing.assert_array_equal(np.asarray(padded["n"]), np.arange(width) % size)
    np.testing.assert_array_equal(
        np.asarray(jax.random.key_data(padded["key"]))[:size], np.asarray(jax.random.key_data(keys))
    )

    def member(t):
        return jnp.sum(jnp.sin(t["x"])) * t["n"].astype(jnp.float32) + jax.random.uniform(t["key"])

    fn = jax.jit(jax.vmap(member), out_shardings=sharding.batch_sharding(mesh))
    out = fn(padded)
    _assert_on_data(out, mesh, P("data"))
    got = unpad(out)
    assert got.shape == (size,)
    want = jax.jit(jax.vmap(member))(tree)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), **tol("float32"))
    # Independent reference in float64 NumPy for the deterministic part.
    ref = np.sin(np.asarray(x, np.float64)).sum(1) * np.arange(size)
    uniforms = np.asarray(jax.vmap(jax.random.uniform)(keys), np.float64)
    np.testing.assert_allclose(np.asarray(got, np.float64), ref + uniforms, **tol("float32"))


def test_pad_population_one_device_and_bad_trees():
    padded, unpad = sharding.pad_population(np.arange(5.0), sharding.data_mesh(1))
    assert padded.shape == (5,) and unpad(padded) is padded  # nothing to pad
    mesh = sharding.data_mesh()
    with pytest.raises(ValueError, match="same leading axis"):
        sharding.pad_population((np.zeros(3), np.zeros(4)), mesh)
    with pytest.raises(ValueError, match="same leading axis"):
        sharding.pad_population(np.float32(1.0), mesh)
    with pytest.raises(ValueError, match="at least one member"):
        sharding.pad_population(np.zeros((0, 2)), mesh)
