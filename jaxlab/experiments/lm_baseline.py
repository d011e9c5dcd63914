"""Tiny byte-level LM on stdlib source: held-out bits/byte vs the unigram byte entropy.

The order-0 (unigram) entropy of the held-out bytes is the no-context baseline any LM must beat
(Shannon, "Prediction and Entropy of Printed English", 1951); the config's own promise for its
held-out bits/byte is checked as a sanity row.
"""

from __future__ import annotations

import pathlib

import jax
import ml_collections
import numpy as np
from flax import nnx

from jaxlab import config_args, data, plots, report, sharding, train
from jaxlab.metrics import read_metrics
from jaxlab.models import LMConfig, lm_config


def _model_config(config) -> LMConfig:
    """The one place an LMConfig is built from the config's model section."""
    return lm_config(config.model)


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    data_cfg = config_args.to_dataclass(data.DataConfig, config.data)
    model_cfg = _model_config(config)
    train_cfg = config_args.to_dataclass(train.TrainConfig, config.train)
    if model_cfg.train_len != train_cfg.seq_len:
        raise ValueError("model.train_len must equal train.seq_len")
    corpus = data.load_corpus(data_cfg)
    mesh = sharding.data_mesh(config.num_devices or None)
    result = train.fit(
        model_cfg, train_cfg, corpus, workdir, seed=config.seed, mesh=mesh, name="lm_baseline"
    )

    windows = data.eval_windows(corpus.heldout, config.final_eval_windows, train_cfg.seq_len + 1)
    ev = train.evaluate(result.model, windows)
    entropy = data.unigram_entropy_bits(corpus.heldout)
    bpb, acc = ev["bits_per_byte"], ev["accuracy"]
    counts = np.bincount(np.asarray(corpus.heldout, np.int64), minlength=256)
    majority = float(counts.max() / counts.sum())  # accuracy of always guessing the top byte

    history = read_metrics(workdir)  # the whole run, including steps before a resume
    fig, ax = plots.new_figure()
    steps = [h["step"] for h in history if "loss" in h]
    ax.plot(
        steps, [h["loss"] / np.log(2) for h in history if "loss" in h], label="train (bits/byte)"
    )
    ev_hist = [h for h in history if "heldout_bits_per_byte" in h]
    ax.plot(
        [h["step"] for h in ev_hist],
        [h["heldout_bits_per_byte"] for h in ev_hist],
        "o-",
        label="held-out (bits/byte)",
    )
    ax.axhline(entropy, color="gray", ls="--", label=f"unigram entropy {entropy:.2f}")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per byte")
    ax.set_title("lm_baseline: loss curve")
    ax.legend()
    loss_png = plots.save_figure(fig, workdir, "loss_curve.png")

    fig, ax = plots.new_figure()
    ax.plot(np.arange(1, len(ev["accuracy_by_position"]) + 1), ev["accuracy_by_position"])
    ax.set_xlabel("position in window")
    ax.set_ylabel("next-byte accuracy")
    ax.set_title("held-out accuracy by position")
    acc_png = plots.save_figure(fig, workdir, "accuracy_by_position.png")

    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(result.model, nnx.Param)))
    return {
        "summary": (
            f"{model_cfg.num_layers}-layer, width-{model_cfg.embed_dim} byte LM ({n_params:,} "
            f"parameters) trained {train_cfg.num_steps} steps at batch {train_cfg.batch_size} x "
            f"{train_cfg.seq_len} bytes on {corpus.train.size:,} bytes of "
            f"{len(corpus.train_files)} files; evaluated on {windows.shape[0]} windows from "
            f"{len(corpus.heldout_files)} held-out files ({data.split_fingerprint(corpus)})."
        ),
        "figures": {
            "heldout_bits_per_byte": bpb,
            "heldout_accuracy": acc,
            "unigram_entropy_bits": entropy,
            "majority_byte_accuracy": majority,
            "num_params": n_params,
            "final_train_loss_bits": [h["loss"] for h in history if "loss" in h][-1] / np.log(2),
            "resumed_from_step": result.resumed_from or 0,
        },
        "claims": _claims(config, bpb, acc, entropy, majority),
        "tables": {
            "Held-out figures": report.markdown_table(
                ["quantity", "value"],
                [
                    ["bits per byte (model)", bpb],
                    ["unigram byte entropy (same split)", entropy],
                    ["next-byte accuracy", acc],
                ],
            )
        },
        "plots": [loss_png, acc_png],
    }


def _claims(config, bpb: float, acc: float, entropy: float, majority: float) -> list:
    gap, expect = config.tolerance.min_gap_bits, config.expect
    claims = [
        report.at_most(f"held-out bits/byte at least {gap} bit below the unigram byte entropy",
                       bpb, entropy - gap, source="Shannon 1951 (order-0 entropy: no context)"),
    ]  # fmt: skip
    if expect.bits_per_byte:
        lo, hi = expect.bits_per_byte
        claims.append(report.between("held-out bits/byte in the config's promised range", bpb,
                                     lo, hi, source="this config", sanity=True))  # fmt: skip
    gain = config.tolerance.min_accuracy_gain
    claims.append(
        report.at_least(
            f"held-out next-byte accuracy at least {gain} above always guessing the most frequent "
            f"byte ({majority:.3f})",
            acc,
            majority + gain,
            source="order-0 baseline (no context: the top byte's frequency)",
        )
    )
    claims.append(report.reported(
        "held-out next-byte accuracy", acc, source="this config",
        expected=f"≈ {expect.accuracy:g}" if expect.accuracy else "–",
        why="no tolerance is promised"))  # fmt: skip
    return claims
