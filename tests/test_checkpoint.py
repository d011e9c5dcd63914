"""Checkpoints: the fingerprint, a checkpoint of another config is refused, and non-finite
parameters are never saved (issue 17 §3). Damaged checkpoints, kills, interrupts and full disks:
tests/test_protocol.py."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import checkpoint, data, metrics, sharding, train
from jaxlab.config_args import UsageError
from jaxlab.models import lm_config

MODEL = lm_config(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, train_len=16)
TRAIN = train.TrainConfig(
    batch_size=4,
    seq_len=16,
    num_steps=12,
    learning_rate=1e-2,
    warmup_steps=2,
    log_every=4,
    eval_every=0,
    eval_windows=4,
    checkpoint_every=4,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    rng = np.random.default_rng(0)
    words = [b"alpha ", b"beta ", b"gamma ", b"delta\n"]
    path.write_bytes(b"".join(words[i] for i in rng.integers(0, 4, 1500)))
    return data.load_corpus(data.DataConfig(files=(str(path),)))


def test_fingerprint_changes_with_one_bit():
    tree = {"w": jnp.arange(12, dtype=jnp.float32), "n": jnp.int32(3), "h": jnp.ones(3, "bfloat16")}
    fp = checkpoint.fingerprint(tree)
    assert len(fp) == 3
    bits = np.asarray(tree["w"]).view(np.uint32).copy()
    bits[5] ^= 1
    changed = dict(tree, w=jnp.asarray(bits.view(np.float32)))
    assert checkpoint.fingerprint(changed) != fp
    swapped = dict(tree, w=tree["w"][jnp.array([1, 0, *range(2, 12)])])
    assert checkpoint.fingerprint(swapped) != fp  # same sum, different order
    assert checkpoint.fingerprint(jax.tree.map(jnp.copy, tree)) == fp


def test_checkpoint_of_another_config_is_refused(corpus, tmp_path):
    mesh = sharding.data_mesh(1)
    train.fit(MODEL, TRAIN, corpus, tmp_path, mesh=mesh, stop_at=4)
    other = dataclasses.replace(TRAIN, learning_rate=3e-2)
    with pytest.raises(checkpoint.CheckpointMismatchError, match="another config"):
        train.fit(MODEL, other, corpus, tmp_path, mesh=mesh)


def test_checkpoint_of_other_training_text_is_refused(corpus, tmp_path):
    """Same configs, other data (a changed --config.data.files with config.json gone)."""
    mesh = sharding.data_mesh(1)
    train.fit(MODEL, TRAIN, corpus, tmp_path, mesh=mesh, stop_at=4)
    other = dataclasses.replace(corpus, train=corpus.train[::-1].copy())
    with pytest.raises(checkpoint.CheckpointMismatchError, match="another config"):
        train.fit(MODEL, TRAIN, other, tmp_path, mesh=mesh)


def test_nonfinite_step_between_logs_is_named_and_never_saved(corpus, tmp_path):
    bad = dataclasses.replace(
        TRAIN, learning_rate=float("nan"), log_every=50, checkpoint_every=2, num_steps=8
    )
    with pytest.raises(FloatingPointError, match="at step 2 "):
        train.fit(MODEL, bad, corpus, tmp_path, mesh=sharding.data_mesh(1))
    # Step 1's update makes the parameters NaN, so step 2 is the first non-finite loss; the
    # checkpoint at step 2 (and every later one) must not exist.
    ckpt = tmp_path / "ckpt"
    saved = [p.name for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.exists() else []
    assert saved == []
    last = metrics.read_metrics(tmp_path)[-1]
    assert last["first_nonfinite_step"] == 2


def test_checkpoint_path_that_is_a_file_fails_at_once(tmp_path):
    (tmp_path / "ckpt").write_text("not a directory")
    with pytest.raises(UsageError, match="not a directory"):
        checkpoint.Checkpoints(tmp_path / "ckpt", every=2)
