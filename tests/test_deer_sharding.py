"""Data-parallel DEER on 4 simulated CPU devices: sharded vmapped solves, populations of problems
(``deer.population``) and the running-mean training step (``train.make_step`` with
``deer.task``) equal their unsharded versions (STYLE 2.8)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P
from numerics import solver_tol, tol

from jaxlab import deer, launch, sharding, train
from jaxlab.deer import cells, population, task
from jaxlab.deer.layer import ParallelRNNConfig

B, T, N = 8, 64, 4
ATOL = 1e-5  # DEER step tolerance (float32), rtol 0


def _gru_batch(key, batch=B, scale=1.0):
    k1, k2 = jax.random.split(key)
    params = cells.init_gru(N, N, scale=scale, key=k1)
    return params, jax.random.normal(k2, (batch, T, N), jnp.float32)


def _solve(xs, params):
    y0 = jnp.zeros((N,), xs.dtype)
    res = deer.deer(cells.gru, y0, xs, params, atol=ATOL, rtol=0.0)
    return res.value, res.iterations


def _assert_sharded_over_4(x):
    assert x.sharding.spec == P(sharding.DATA_AXIS)
    assert len(x.sharding.device_set) == 4
    assert {s.data.shape[0] for s in x.addressable_shards} == {x.shape[0] // 4}


def test_sharded_vmapped_deer_equals_unsharded(key):
    """Batch over 'data', params replicated (the benchmark's and ParallelRNN's layout)."""
    params, xs = _gru_batch(key)
    batched = jax.vmap(_solve, in_axes=(0, None))
    ref_value, ref_its = jax.jit(batched)(xs, params)
    mesh = sharding.data_mesh(4)
    rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    fn = jax.jit(batched, in_shardings=(data, rep), out_shardings=data)
    value, its = fn(sharding.shard_batch(xs, mesh), sharding.replicate(params, mesh))
    _assert_sharded_over_4(value)
    _assert_sharded_over_4(its)
    np.testing.assert_array_equal(np.asarray(its), np.asarray(ref_its))
    np.testing.assert_allclose(np.asarray(value), np.asarray(ref_value), **tol(jnp.float32))
    # Both against the sequential recurrence, so a wrong solve cannot pass by agreeing with itself.
    y0 = jnp.zeros((N,), jnp.float32)
    seq = jax.jit(jax.vmap(lambda x: deer.sequential(cells.gru, y0, x, params)))(xs)
    np.testing.assert_allclose(np.asarray(value), np.asarray(seq), **solver_tol(ATOL))


def test_solve_population_equals_single_solves(key):
    """population.solve_population: per-problem params, 6 problems padded to 8 on 4 devices."""
    size = 6
    keys = jax.random.split(key, size)
    problems = [_gru_batch(k, batch=1, scale=0.5 + 0.3 * i) for i, k in enumerate(keys)]
    params_P = jax.tree.map(lambda *a: jnp.stack(a), *[p for p, _ in problems])
    xs_P = jnp.concatenate([x for _, x in problems])
    solve = population.make_solve("gru", "newton", tol=ATOL)
    stats = population.solve_population(solve, params_P, xs_P, sharding.data_mesh(4))
    assert all(v.shape == (size,) for v in stats)
    single = jax.jit(_solve)
    for i, (params, xs) in enumerate(problems):
        ref_value, ref_its = single(xs[0], params)
        assert int(stats.iterations[i]) == int(ref_its)
        y0 = jnp.zeros((N,), jnp.float32)
        seq = deer.sequential(cells.gru, y0, xs[0], params)
        want = float(jnp.max(jnp.abs(ref_value - seq)))
        np.testing.assert_allclose(stats.error[i], want, **solver_tol(ATOL))
        assert stats.error[i] <= 10 * ATOL
    assert len(set(stats.iterations.tolist())) > 1  # rows with different sweep counts
    assert stats.converged.all() and not stats.hit_limit.any()


def test_spectral_radius_is_the_eigenvalue_modulus(key):
    params, _ = population.draw_population("tanh", 5, 3, 1.0, 4, dtype=jnp.float32, key=key)
    radius = population.spectral_radius("tanh", params)
    want = [max(abs(np.linalg.eigvals(np.asarray(w, np.float64)))) for w in params.W]
    np.testing.assert_allclose(radius, want, **tol("float64"))


def _train_losses(mesh, mode, batch, steps=2):
    cfg = ParallelRNNConfig(cell="gru", in_features=1, hidden=N, mode=mode)
    model = task.Regressor(cfg, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    state = sharding.replicate(state, mesh)
    objective = lambda m, b: task.mse(m, b, per_example=mesh.size > 1)  # noqa: E731
    step = train.make_step(graphdef, objective, mesh)
    batch = sharding.shard_batch(batch, mesh)
    losses = []
    for _ in range(steps):
        state, stats = step(state, batch)
        assert stats["loss"].sharding.is_fully_replicated
        losses.append(float(stats["loss"]))
    return np.array(losses)


@pytest.mark.parametrize("mode", ["newton", "sequential"])
def test_train_step_sharded_equals_unsharded(key, mode):
    """Same losses over two Adam steps (so the sharded gradient is checked too)."""
    batch = task.running_mean_batch(B, T, key=key)
    one = _train_losses(sharding.data_mesh(1), mode, batch)
    four = _train_losses(sharding.data_mesh(4), mode, batch)
    assert one[1] != one[0]  # the step changed the parameters
    np.testing.assert_allclose(four, one, **tol(jnp.float32))


def test_running_mean_targets(key):
    x_BTM, y_BT = task.running_mean_batch(3, 7, key=key)
    x = np.asarray(x_BTM[..., 0], np.float64)
    want = np.cumsum(x, axis=1) / np.arange(1, 8)
    np.testing.assert_allclose(np.asarray(y_BT), want, **tol("float32"))


def test_train_uneven_batch_fails_loudly(tmp_path):
    """No silent padding of a training batch: the run stops before training."""
    config = launch.load_config(
        "configs/deer_train.py:quick", ["--config.num_devices=4", "--config.data.batch=6"]
    )
    with pytest.raises(ValueError, match=r"data\.batch 6 is not divisible by the 4 devices"):
        launch.run_experiment(config, tmp_path)
