"""Data-parallel seeds of sparse-parity training on the 4 simulated CPU devices of conftest.py.

The seed axis of vmapped training (states, subtasks, test sets, data keys, metrics) is a
population: ``sharding.pad_population`` pads 3 seeds to 4 by repeating seeds, every per-seed array
is sharded over the 4 devices, the sharded run equals the one-device run, and the padding is
dropped (the real seeds keep their keys and results).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from numerics import tol

from jaxlab import sharding
from jaxlab.quanta import parity_mlp
from jaxlab.quanta import sparse_parity as sp

TASK = sp.TaskConfig(n_tasks=6, n=8, k=2, alpha_code=1.4)
TRAIN = parity_mlp.TrainConfig(batch_size=64, lr=1e-2)
WIDTHS = (2, 4)
NUM_SEEDS = 3


def _assert_seeds_on_data(tree, mesh):
    for x in jax.tree.leaves(tree):
        assert isinstance(x.sharding, NamedSharding)
        assert x.sharding.spec[0] == "data" and all(s is None for s in x.sharding.spec[1:])
        assert len(x.sharding.device_set) == mesh.size == 4
        assert x.addressable_shards[0].data.shape[0] == x.shape[0] // 4


def _train(mesh, steps=20):
    """Sets up and trains every seed (vmapped, seeds over ``data``); returns padded outputs."""
    logits = sp.task_logits(TASK.n_tasks, TASK.alpha_code)
    widths_W = jnp.asarray(WIDTHS, jnp.int32)

    def setup(key):
        k_sub, k_init, k_test, k_data = jax.random.split(key, 4)
        subtasks = sp.make_subtasks(TASK.n_tasks, TASK.n, TASK.k, key=k_sub)
        states = jax.vmap(
            lambda w: parity_mlp.init_state(
                TASK, TRAIN, w, max(WIDTHS), key=jax.random.fold_in(k_init, w)
            )
        )(widths_W)
        return states, subtasks, sp.make_test_set(subtasks, TASK, 120, 10, key=k_test), k_data

    def train(states, subtasks, test, key):
        states, loss = parity_mlp.train_widths(
            states, subtasks, logits, 0, widths=WIDTHS, num_steps=steps, task=TASK,
            config=TRAIN, key=key,
        )  # fmt: skip
        evals = jax.lax.map(
            lambda pw: parity_mlp.evaluate(pw[0], pw[1], test), (states.params, widths_W)
        )
        return loss, evals

    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    padded, unpad = sharding.pad_population(keys, mesh, what="number of seeds")
    seeds = sharding.batch_sharding(mesh)
    setup_out = jax.jit(jax.vmap(setup), out_shardings=seeds)(padded)
    out = jax.jit(jax.vmap(train), out_shardings=seeds)(*setup_out)
    return padded, setup_out, out, unpad


@pytest.fixture(scope="module")
def runs():
    return {n: _train(sharding.data_mesh(n)) for n in (1, 4)}


def test_seed_axis_padded_and_sharded_over_data(runs):
    mesh = sharding.data_mesh()
    padded, setup_out, out, _ = runs[4]
    keys = np.asarray(jax.random.key_data(padded))
    assert keys.shape[0] == 4  # 3 seeds padded to the 4 devices
    np.testing.assert_array_equal(keys[3], keys[0])  # the padding repeats a real seed
    for tree in (padded, setup_out, out):
        _assert_seeds_on_data(tree, mesh)
    assert len(jax.tree.leaves(runs[1][2])[0].sharding.device_set) == 1


def test_sharded_equals_unsharded_and_padding_dropped(runs):
    loss1, evals1 = runs[1][3](runs[1][2])
    loss4, evals4 = runs[4][3](runs[4][2])
    assert loss1.shape == loss4.shape == (NUM_SEEDS, 20, len(WIDTHS))
    np.testing.assert_allclose(np.asarray(loss4), np.asarray(loss1), **tol("float32"))
    for k in evals1:
        assert evals4[k].shape[:2] == (NUM_SEEDS, len(WIDTHS)), k
        np.testing.assert_allclose(
            np.asarray(evals4[k]), np.asarray(evals1[k]), **tol("float32"), err_msg=k
        )
    # Training moved the loss, and the 3 real seeds differ (no seed reported twice).
    final = np.asarray(loss4)[:, -1]
    assert (final < np.asarray(loss4)[:, 0]).mean() > 0.5
    assert len({tuple(r) for r in final.round(6).tolist()}) == NUM_SEEDS
