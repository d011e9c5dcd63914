"""``min_abc_jax`` over a data-parallel population of N on 4 simulated CPU devices (STYLE 2.8):
sharded equals unsharded and the Python-integer minimiser, the output sharding is the declared
one, and ``survey.min_abc_population`` pads any length and slices it back."""

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlab import ab_plus_c as abc
from jaxlab import sharding
from jaxlab.ab_plus_c import survey
from jaxlab.ab_plus_c import vectorized as abc_jax


def _assert_on_data(x, mesh, spec):
    assert isinstance(x.sharding, NamedSharding)
    assert x.sharding.spec == spec
    assert len(x.sharding.device_set) == mesh.size == 4


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
        # The library pads (rows repeated) and slices back: any length on any mesh.
        padded = survey.min_abc_population(N[:31], mesh)
        for got, ref in zip(padded, want, strict=True):
            np.testing.assert_array_equal(got, np.asarray(ref)[:31])
        with pytest.raises(ValueError, match="31 is not divisible by the 4 devices"):
            sharding.shard_population(N[:31], mesh)
