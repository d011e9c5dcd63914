"""Data-parallel populations (STYLE 2.8) on the 4 simulated CPU devices of conftest.py.

For each vmapped computation wired to ``jaxlab.sharding`` (``min_abc_jax`` over N,
``quanta.simulate_grid`` over γ, the tokenizer DP over rows): the sharded result equals the
unsharded one, the output sharding is the declared one, and uneven sizes fail loudly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from numerics import tol

from jaxlab import ab_plus_c as abc
from jaxlab import sharding
from jaxlab.ab_plus_c import vectorized as abc_jax
from jaxlab.experiments import ab_plus_c as abc_experiment
from jaxlab.experiments import quanta_theory
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import from_pieces


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


def test_min_abc_jax_sharded_equals_unsharded():
    mesh = sharding.data_mesh()
    with jax.enable_x64(True):
        N = np.concatenate([np.arange(30), [10**12 + 1, abc_jax.MAX_N_JAX]]).astype(np.int64)
        fn = jax.vmap(abc_jax.min_abc_jax)
        want = jax.jit(fn)(N)
        out = jax.jit(fn, out_shardings=sharding.batch_sharding(mesh))(
            sharding.shard_population(N, mesh)
        )
        for got, ref in zip(out, want, strict=True):
            _assert_on_data(got, mesh, P("data"))
            np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
        # Independent reference: the Python-integer minimiser.
        assert np.asarray(out.s).tolist() == [abc.min_abc(int(n)).s for n in N]
        # The runner pads explicitly (N = 0) and slices back: any length on any mesh.
        padded = abc_experiment._batched_min_abc(N[:31], mesh)
        for got, ref in zip(padded, want, strict=True):
            np.testing.assert_array_equal(got, np.asarray(ref)[:31])
        with pytest.raises(ValueError, match="31 is not divisible by the 4 devices"):
            sharding.shard_population(N[:31], mesh)


def _quanta_inputs(num_gammas):
    gammas = jnp.array([0.2, 0.5, 0.8, 0.3][:num_gammas])
    num_params = jnp.geomspace(10.0, 100.0, 3)
    data_GD = jnp.broadcast_to(jnp.geomspace(100.0, 1e4, 5), (num_gammas, 5))
    return gammas, num_params, data_GD, jnp.array([4.0, 10.0]), 0.0, float(np.log(2.0))


@pytest.mark.parametrize("num_gammas", [4, 3])  # 3: padded to 4 explicitly, sliced back
def test_quanta_grid_sharded_equals_unsharded(num_gammas):
    static = dict(num_seeds=2, num_quanta_poisson=128, key=jax.random.key(0))
    with jax.enable_x64(True):
        args = _quanta_inputs(num_gammas)
        want = quanta_theory.simulate_grid_sharded(sharding.data_mesh(1), *args, **static)
        mesh = sharding.data_mesh()
        got = quanta_theory.simulate_grid_sharded(mesh, *args, **static)
        for name, x, ref in zip(want._fields, got, want, strict=True):
            assert x.shape == ref.shape, name
            if num_gammas == 4:
                _assert_on_data(x, mesh, P("data"))
            # Equal values and equal NaN patterns (NaN: too few sampled quanta for that D).
            np.testing.assert_allclose(np.asarray(x), np.asarray(ref), **tol("float64"))
        assert np.isfinite(np.asarray(want.loss_data)).all()
        poisson = np.asarray(want.loss_data_poisson)
        assert np.isfinite(poisson).any() and np.nanmax(poisson) > np.nanmin(poisson)  # not const
    with pytest.raises(ValueError, match=r"number of D grid points 5 .* 4 devices"):
        sharding.shard_population(args[2], mesh, axis=1, what="number of D grid points")


def test_tokenizer_rows_sharded_equal_unsharded(key):
    vocab = {"a": -2.0, "b": -2.5, "c": -2.0, "ab": -3.0, "bc": -3.5, "abc": -4.0, "ca": -3.0}
    model = from_pieces(vocab)
    mesh = sharding.data_mesh()
    plain, sharded = (
        Tokenizer(model, target_row_len=16),
        Tokenizer(model, target_row_len=16, mesh=mesh),
    )
    texts = ["abcab", "cabcabca", "", "bca", "abcabcabcabc", "c"] * 3
    batch = sharded.prepare(texts)
    assert batch.ids.shape[2] % 4 == 0  # rows (last axis) padded to the mesh
    out = sharded._device(batch, "viterbi", 0.0, None)
    _assert_on_data(out, mesh, P(None, "data"))
    assert sharded.encode(texts) == plain.encode(texts)
    for method in ("ffbs", "v1"):
        got = sharded.encode(texts, alpha=0.5, key=key, method=method)
        assert got == plain.encode(texts, alpha=0.5, key=key, method=method)
    np.testing.assert_allclose(
        sharded.log_partition(texts), plain.log_partition(texts), **tol("float32")
    )
    with pytest.raises(ValueError, match="rows 3 is not divisible by the 4 devices"):
        sharding.shard_population(np.zeros((3, 16)), mesh, what="rows")
