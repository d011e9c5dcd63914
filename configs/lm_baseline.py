"""Tiny byte-level LM on the Python standard library source: the foundation's baseline.

  jaxlab run configs/lm_baseline.py:quick --workdir runs/lm_baseline   # ~30 s, 2 CPU cores
  jaxlab run configs/lm_baseline.py --workdir runs/lm_baseline-full     # GPU/TPU, ~10 min

Expect (quick): held-out loss ~2.6-3.0 bits/byte, well below the ~4.7-bit unigram byte entropy
of the same held-out files; next-byte accuracy ~0.45.
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, seed=0)
    q = opts.quick
    c = ml_collections.ConfigDict()
    c.experiment = "lm_baseline"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # seeds init and the batch stream
    c.data = dict(
        files=(),  # user text files; () = Python stdlib source of this interpreter
        heldout_every=10,  # stdlib: a file is held out when crc32(path) % 10 == 0
        max_bytes=0,  # cap per split (0 = all)
    )
    c.model = dict(
        num_layers=2 if q else 4,
        embed_dim=64 if q else 256,  # D
        num_heads=4 if q else 8,  # H
        mlp_dim=256 if q else 1024,
        position="rope",  # "none" | "rope"
        rope_theta=10_000.0,
        attention_scale="inverse_sqrt",  # jaxlab.attention_scale.KINDS ("logn": L = train_len)
        train_len=64 if q else 256,  # must equal train.seq_len
        dtype="float32",
    )
    c.train = dict(
        batch_size=16 if q else 64,  # global; divisible by the device count
        seq_len=64 if q else 256,  # L
        num_steps=400 if q else 5_000,
        learning_rate=3e-3 if q else 1e-3,
        warmup_steps=40 if q else 200,
        weight_decay=0.1,
        grad_clip=1.0,
        loss="cross_entropy",
        log_every=25 if q else 100,
        eval_every=100 if q else 500,
        eval_windows=32 if q else 128,
        checkpoint_every=100 if q else 1_000,  # orbax checkpoints; runs resume from them
    )
    c.num_devices = 1 if q else 0  # data-parallel devices (0 = all); quick runs on one CPU device
    c.final_eval_windows = 128 if q else 1_024  # held-out windows for the reported figures
    c.tolerance = dict(
        min_gap_bits=0.5,  # claim: held-out bits/byte <= unigram entropy - this
    )
    return c
