"""Tests for jaxlab.deer.seq_parallel on 4 simulated CPU devices: sharded == unsharded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from numerics import NAMED, TOL

from jaxlab import deer, sharding
from jaxlab.deer import cells, scan, seq_parallel


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() >= 4, "tests/conftest.py sets 4 simulated CPU devices"
    return sharding.sequence_mesh(4)


@pytest.mark.parametrize("layout", ["dense", "diag"])
def test_sharded_linear_recurrence_equals_unsharded(mesh, layout, key):
    t, d = 24, 3
    k1, k2, k3 = jax.random.split(key, 3)
    shape = (t, d, d) if layout == "dense" else (t, d)
    with jax.enable_x64(True):
        a = 0.6 * jax.random.normal(k1, shape, jnp.float64)
        b = jax.random.normal(k2, (t, d), jnp.float64)
        y0 = jax.random.normal(k3, (d,), jnp.float64)
        got = jax.jit(
            lambda a, b, y0: seq_parallel.linear_recurrence_sharded(
                a, b, y0, mesh=mesh, layout=layout
            )
        )(a, b, y0)
        want = scan.linear_recurrence(a, b, y0, layout=layout, method="sequential")
        np.testing.assert_allclose(got, want, **TOL["float64"])
        assert got.sharding.spec == P("seq")


@pytest.mark.parametrize("method", [deer.Newton(), deer.Quasi(), deer.Picard()])
def test_sharded_deer_equals_unsharded(mesh, method, key):
    t, n = 32, 4
    k1, k2 = jax.random.split(key)
    params = cells.init_gru(n, 2, key=k1)
    xs = jax.random.normal(k2, (t, 2), jnp.float32)
    y0 = jnp.zeros((n,), jnp.float32)
    tol = NAMED["solver_fp32"]
    sharded = jax.jit(
        lambda xs, p: seq_parallel.deer_sharded(
            cells.gru, y0, xs, p, mesh=mesh, method=method, **tol
        )
    )(xs, params)
    single = deer.deer(cells.gru, y0, xs, params, method=method, **tol)
    np.testing.assert_allclose(sharded.value, single.value, **TOL["float32"])
    assert int(sharded.iterations) == int(single.iterations)
    assert bool(sharded.converged) and float(sharded.residual) <= 1e-5
    ref = deer.sequential(cells.gru, y0, xs, params)
    assert float(jnp.max(jnp.abs(sharded.value - ref))) <= 1e-5
    assert sharded.value.sharding.spec == P("seq")


def test_uneven_length_fails_loudly(mesh):
    with pytest.raises(ValueError, match="not divisible"):
        seq_parallel.linear_recurrence_sharded(
            jnp.zeros((6, 2)), jnp.zeros((6, 2)), jnp.zeros(2), mesh=mesh, layout="diag"
        )
