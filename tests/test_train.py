"""The trainer: loss falls, resume reproduces an uninterrupted run, NaN guard, CLI resume."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx
from numerics import NAMED

from jaxlab import data, metrics, sharding, train
from jaxlab.main import main
from jaxlab.models import lm_config

MODEL = lm_config(num_layers=1, embed_dim=32, num_heads=2, mlp_dim=64, train_len=32)
TRAIN = train.TrainConfig(
    batch_size=8,
    seq_len=32,
    num_steps=40,
    learning_rate=1e-2,
    warmup_steps=5,
    log_every=10,
    eval_every=20,
    eval_windows=8,
    checkpoint_every=10,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    rng = np.random.default_rng(0)
    words = [b"alpha ", b"beta ", b"gamma ", b"delta ", b"epsilon\n"]
    path.write_bytes(b"".join(words[i] for i in rng.integers(0, 5, 3000)))
    return data.load_corpus(data.DataConfig(files=(str(path),)))


def test_loss_falls_on_a_tiny_task(corpus, tmp_path):
    result = train.fit(MODEL, TRAIN, corpus, tmp_path, mesh=sharding.data_mesh(1))
    lines = metrics.read_metrics(tmp_path)
    assert [line["step"] for line in lines] == [10, 20, 30, 40]
    first, last = lines[0]["loss"], lines[-1]["loss"]
    # 5 words chosen uniformly: after learning the words, ~log2(5)/6 bits per byte remain.
    assert last < 0.5 * first, (first, last)
    assert result.final["heldout_bits_per_byte"] < 1.5
    assert data.unigram_entropy_bits(corpus.heldout) > 3.0


def test_resume_reproduces_uninterrupted_run(corpus, tmp_path):
    mesh = sharding.data_mesh(1)
    full = train.fit(MODEL, TRAIN, corpus, tmp_path / "full", mesh=mesh)
    part = train.fit(MODEL, TRAIN, corpus, tmp_path / "resumed", mesh=mesh, stop_at=20)
    assert part.resumed_from is None and part.history[-1]["step"] == 20
    resumed = train.fit(MODEL, TRAIN, corpus, tmp_path / "resumed", mesh=mesh)
    assert resumed.resumed_from == 20
    a, b = metrics.read_metrics(tmp_path / "full"), metrics.read_metrics(tmp_path / "resumed")
    assert [x["step"] for x in a] == [x["step"] for x in b]
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, rel=1e-6), (x, y)
    for p, q in zip(
        jax.tree.leaves(nnx.state(full.model)),
        jax.tree.leaves(nnx.state(resumed.model)),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), **NAMED["resume_fp32"])


def test_nan_guard_names_the_step(corpus, tmp_path):
    bad = train.TrainConfig(**{**TRAIN.__dict__, "learning_rate": float("nan"), "num_steps": 10})
    with pytest.raises(FloatingPointError, match="at step"):
        train.fit(MODEL, bad, corpus, tmp_path, mesh=sharding.data_mesh(1))
    last = metrics.read_metrics(tmp_path)[-1]
    assert last["loss"] == "nan" or not np.isfinite(float(last["loss"]))


def test_train_step_compiles_once(corpus):
    mesh = sharding.data_mesh(1)
    cfg = dataclasses.replace(TRAIN, weight_decay=0.05)  # a config no other test compiled
    graphdef, state, _ = train.init_state(MODEL, cfg, jax.random.key(0), mesh)
    step = train.make_train_step(graphdef, cfg, mesh)
    for i in range(3):
        batch = data.sample_windows(corpus.train, 8, 33, key=jax.random.key(i))
        state, _ = step(state, batch)
    assert step._cache_size() == 1  # same shapes: one trace, one compile


def test_fit_reuses_its_compiled_step(corpus, tmp_path):
    """A second fit of the same configs (a resume, a repeat, other logging) compiles nothing."""
    mesh = sharding.data_mesh(1)
    cfg = dataclasses.replace(TRAIN, num_steps=4, eval_every=0, checkpoint_every=0)
    train.fit(MODEL, cfg, corpus, tmp_path / "a", mesh=mesh)
    graphdef, _, _ = train.init_state(MODEL, cfg, jax.random.key(0), mesh)
    step = train.make_train_step(graphdef, cfg, mesh)
    compiled = step._cache_size()
    assert compiled == 1
    quiet = dataclasses.replace(cfg, log_every=0)  # 0: lines only at evals and the end
    train.fit(MODEL, quiet, corpus, tmp_path / "b", mesh=mesh, seed=1)
    assert [r["step"] for r in metrics.read_metrics(tmp_path / "b")] == [4]
    assert train.make_train_step(graphdef, quiet, mesh) is step
    assert step._cache_size() == compiled


def test_cli_run_interrupted_then_resumed(tmp_path, monkeypatch, capsys):
    """`jaxlab run` killed mid-run leaves no results.json; re-running resumes from the checkpoint
    and ends with the same figures as an uninterrupted run."""
    text = tmp_path / "t.txt"
    text.write_bytes(b"to be or not to be, that is the question. " * 200)
    overrides = [
        f"--config.data.files=('{text}',)",
        "--config.model.num_layers=1",
        "--config.model.embed_dim=32",
        "--config.model.num_heads=2",
        "--config.model.mlp_dim=64",
        "--config.model.train_len=32",
        "--config.train.seq_len=32",
        "--config.train.batch_size=8",
        "--config.train.num_steps=30",
        "--config.train.log_every=10",
        "--config.train.eval_every=10",
        "--config.train.eval_windows=4",
        "--config.train.checkpoint_every=10",
        "--config.final_eval_windows=8",
    ]
    cfg = "configs/lm_baseline.py:quick"
    assert main(["run", cfg, "--workdir", str(tmp_path / "whole"), *overrides]) == 0

    real_fit = train.fit

    def interrupted_fit(*args, **kwargs):
        real_fit(*args, **kwargs, stop_at=20)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", interrupted_fit)
    assert main(["run", cfg, "--workdir", str(tmp_path / "cut"), *overrides]) == 130
    assert not (tmp_path / "cut" / "results.json").exists()
    monkeypatch.setattr(train, "fit", real_fit)
    assert main(["run", cfg, "--workdir", str(tmp_path / "cut"), *overrides]) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["figures"]
    cut = json.loads((tmp_path / "cut" / "results.json").read_text())["figures"]
    assert cut["resumed_from_step"] == 20 and whole["resumed_from_step"] == 0
    for name in ("heldout_bits_per_byte", "heldout_accuracy", "final_train_loss_bits"):
        assert cut[name] == pytest.approx(whole[name], rel=1e-5), name
    capsys.readouterr()
