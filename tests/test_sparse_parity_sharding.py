"""Data-parallel seeds of the sparse-parity runner on the 4 simulated CPU devices of conftest.py.

The seed axis of the vmapped training (states, subtasks, test sets, data keys, metrics) is split
over ``data``: the sharded run equals the one-device run, every per-seed array is sharded over
the 4 devices, and a seed count that does not divide them is padded by repeating seeds whose
results are dropped.
"""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from numerics import tol

from jaxlab import config_args, sharding
from jaxlab.quanta import parity_mlp
from jaxlab.quanta import parity_sweep as runner
from jaxlab.quanta import sparse_parity as sp

CONFIG_FILE = pathlib.Path(__file__).parents[1] / "configs" / "sparse_parity.py"


def _config(num_seeds, data_size=-1):
    spec = importlib.util.spec_from_file_location("sparse_parity_config", CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("quick")
    c.task.update(n_tasks=6, n=8, k=2)
    c.train.update(batch_size=64, lr=1e-2, data_size=data_size)
    c.sweep.update(num_seeds=num_seeds, widths=(2, 4), num_steps=20, log_every=10, eval_every=10)
    c.sweep.update(test_points=120, test_points_per_task=10)
    return c


def _tiny(c):
    return sp.TaskConfig(**c.task), parity_mlp.TrainConfig(**c.train)


def _assert_seeds_on_data(tree, mesh):
    for x in jax.tree.leaves(tree):
        assert isinstance(x.sharding, NamedSharding)
        assert x.sharding.spec == P("data")
        assert len(x.sharding.device_set) == mesh.size == 4
        assert x.addressable_shards[0].data.shape[0] == x.shape[0] // 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """3 seeds (padded to 4 on 4 devices) and a fixed training set, on 1 and on 4 devices."""
    c = _config(num_seeds=3, data_size=256)
    task, train = _tiny(c)
    out = {}
    for n in (1, 4):
        sweep = config_args.to_dataclass(runner.WidthSweep, c.sweep)
        groups = runner.make_groups(
            sweep, task, train, sharding.data_mesh(n), key=jax.random.key(c.seed)
        )
        out[n] = groups, runner.train_all(sweep, groups)
    return out


def test_pad_seed_keys_repeats_first_seeds():
    mesh = sharding.data_mesh()
    keys = jax.random.split(jax.random.key(0), 5)
    data = np.asarray(jax.random.key_data(runner.pad_seed_keys(keys, mesh)))
    assert data.shape[0] == 8
    np.testing.assert_array_equal(data[:5], np.asarray(jax.random.key_data(keys)))
    np.testing.assert_array_equal(data[5:], data[:3])
    one = np.asarray(jax.random.key_data(runner.pad_seed_keys(keys, sharding.data_mesh(1))))
    np.testing.assert_array_equal(one, data[:5])  # one device: no padding


def test_seed_axis_sharded_over_data(runs):
    mesh = sharding.data_mesh()
    (g,), _ = runs[4]
    assert len(jax.tree.leaves(g.states)) > 0 and g.dataset is not None
    for tree in (g.states, g.subtasks, g.test, g.dataset, g.key, g.m0, g.evaluate()):
        _assert_seeds_on_data(tree, mesh)
    _assert_seeds_on_data(g.step(0), mesh)  # (padded seeds, W) train losses
    (g1,), _ = runs[1]
    assert len(jax.tree.leaves(g1.states)[0].sharding.device_set) == 1


def test_sharded_equals_unsharded_and_padding_dropped(runs):
    steps1, widths1, m1 = runs[1][1]
    steps4, widths4, m4 = runs[4][1]
    np.testing.assert_array_equal(steps4, steps1)
    np.testing.assert_array_equal(widths4, widths1)
    assert m4.keys() == m1.keys()
    for k in m1:
        assert m4[k].shape == m1[k].shape and m4[k].shape[:3] == (3, 3, 2), k  # (S, seeds, W)
        np.testing.assert_allclose(m4[k], m1[k], **tol("float32"), err_msg=k)
    # Training moved the loss, and the 3 real seeds differ (no seed reported twice).
    loss = m4["loss"]
    assert (loss[-1] < loss[0]).mean() > 0.5
    assert len({tuple(r) for r in loss[-1].round(6).tolist()}) == 3
