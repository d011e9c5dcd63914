"""``quanta.simulate_grid`` with its gamma axis as a data-parallel population on 4 simulated CPU
devices (STYLE 2.8): padded by ``sharding.pad_population`` and sliced back, the sharded result
equals the unsharded one, and the output sharding is the declared one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from numerics import tol

from jaxlab import quanta, sharding


def _assert_on_data(x, mesh, spec):
    assert isinstance(x.sharding, NamedSharding)
    assert x.sharding.spec == spec
    assert len(x.sharding.device_set) == mesh.size == 4


def _quanta_inputs(num_gammas):
    gammas = jnp.array([0.2, 0.5, 0.8, 0.3][:num_gammas])
    num_params = jnp.geomspace(10.0, 100.0, 3)
    data_GD = jnp.broadcast_to(jnp.geomspace(100.0, 1e4, 5), (num_gammas, 5))
    return gammas, num_params, data_GD, jnp.array([4.0, 10.0]), 0.0, float(np.log(2.0))


def _simulate(mesh, gammas, num_params, data_GD, taus, a, b, **static):
    (gammas, data_GD), unpad = sharding.pad_population((gammas, data_GD), mesh, what="gammas")
    sim = jax.jit(
        quanta.simulate_grid,
        static_argnames=("num_seeds", "num_quanta_poisson", "dtype"),
        out_shardings=sharding.batch_sharding(mesh),
    )
    out = sim(gammas, num_params, data_GD, taus, a, b, **static)
    return out, unpad(out)


@pytest.mark.parametrize("num_gammas", [4, 3])  # 3: padded to 4, sliced back
def test_quanta_grid_sharded_equals_unsharded(num_gammas):
    static = dict(num_seeds=2, num_quanta_poisson=128, key=jax.random.key(0))
    with jax.enable_x64(True):
        args = _quanta_inputs(num_gammas)
        _, want = _simulate(sharding.data_mesh(1), *args, **static)
        mesh = sharding.data_mesh()
        full, got = _simulate(mesh, *args, **static)
        for name, x, ref, whole in zip(want._fields, got, want, full, strict=True):
            assert x.shape == ref.shape, name
            _assert_on_data(whole, mesh, P("data"))
            # Equal values and equal NaN patterns (NaN: too few sampled quanta for that D).
            np.testing.assert_allclose(np.asarray(x), np.asarray(ref), **tol("float64"))
        assert np.isfinite(np.asarray(want.loss_data)).all()
        poisson = np.asarray(want.loss_data_poisson)
        assert np.isfinite(poisson).any() and np.nanmax(poisson) > np.nanmin(poisson)  # not const
    with pytest.raises(ValueError, match=r"number of D grid points 5 .* 4 devices"):
        sharding.shard_population(args[2], mesh, axis=1, what="number of D grid points")
