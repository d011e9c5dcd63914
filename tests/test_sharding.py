"""Data mesh: the sharded train step equals the unsharded one on 4 devices; uneven batches fail."""

import jax
import numpy as np
import pytest
from numerics import NAMED

from jaxlab import data, sharding, train
from jaxlab.models import lm_config

MODEL = lm_config(num_layers=1, embed_dim=32, num_heads=2, mlp_dim=64, train_len=16)
TRAIN = train.TrainConfig(batch_size=8, seq_len=16, num_steps=10, warmup_steps=1)


def _one_step(mesh, batch):
    graphdef, state, _ = train.init_state(MODEL, TRAIN, jax.random.key(0), mesh)
    step = train.make_train_step(graphdef, TRAIN, mesh)
    new_state, stats = step(state, jax.device_put(batch, sharding.batch_sharding(mesh)))
    return new_state, stats


def test_mesh_spans_devices():
    assert jax.device_count() == 4  # conftest
    mesh = sharding.data_mesh()
    assert mesh.shape == {"data": 4}
    assert sharding.data_mesh(1).shape == {"data": 1}
    with pytest.raises(ValueError):
        sharding.data_mesh(5)


def test_sharded_step_equals_unsharded(key):
    tokens = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 20, np.uint8)
    batch = data.sample_windows(tokens, TRAIN.batch_size, TRAIN.seq_len + 1, key=key)
    state1, stats1 = _one_step(sharding.data_mesh(1), batch)
    state4, stats4 = _one_step(sharding.data_mesh(4), batch)
    # Reduction order differs across shards, so float32 tolerance rather than bitwise.
    np.testing.assert_allclose(stats1["loss"], stats4["loss"], **NAMED["shard_loss_fp32"])
    np.testing.assert_allclose(
        stats1["grad_norm"], stats4["grad_norm"], **NAMED["shard_grad_norm_fp32"]
    )
    for a, b in zip(jax.tree.leaves(state1), jax.tree.leaves(state4), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **NAMED["train_fp32"])
    # Declared placement: state replicated over the 4 devices.
    leaf = jax.tree.leaves(state4)[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4


def test_uneven_batch_fails_loudly():
    mesh = sharding.data_mesh(4)
    with pytest.raises(ValueError, match="not divisible by the 4 devices"):
        sharding.shard_batch(np.zeros((6, 3), np.int32), mesh)
