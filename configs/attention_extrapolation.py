"""Length extrapolation under softmax scale rules: train at n = 64, evaluate at 64 … 1024 (8823).

  jaxlab run configs/attention_extrapolation.py:quick --workdir runs/attn_extrap   # ~1 min, 2 CPUs
  jaxlab run configs/attention_extrapolation.py:gpu --workdir runs/attn_extrap-gpu # ~1 min, 1 H100
  jaxlab run configs/attention_extrapolation.py --workdir runs/attn_extrap-full    # ~15 min, 2 CPUs

Three tiny RoPE byte LMs, identical except for the softmax scale rule: standard 1/√d,
entropy-invariant log_512(n)/√d with n the keys each causal row attends to (kexue.fm/archives/8823),
and gradient-max α*(L_max/2)/√d (kexue.fm/archives/9812). Each is evaluated without fine-tuning
on the same held-out windows at lengths 64 … 1024. Su's direction (the entropy-invariant model
degrades less beyond the training length) is decided by paired bootstrap CIs over windows; at
quick size it is reported, not checked (too small and short to resolve).
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    q, big = opts.quick, opts.gpu
    length = 64  # Su trained at n = 64
    c = ml_collections.ConfigDict()
    c.experiment = "attention_extrapolation"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # seeds every model's init and batch stream, and the bootstrap
    c.data = dict(
        files=(),  # user text files; () = Python stdlib source of this interpreter
        heldout_every=10,  # stdlib: a file is held out when crc32(path) % 10 == 0
        max_bytes=2_000_000 if q else 0,  # cap per split (0 = all)
    )
    c.model = dict(
        num_layers=2 if q else 4,
        embed_dim=64 if q else 256,  # D
        num_heads=4 if q else 8,  # H (head dim D/H)
        mlp_dim=256 if q else 1024,
        position="rope",
        rope_theta=10_000.0,
        train_len=length,  # L; must equal train.seq_len
        dtype="float32",
    )
    c.rules = dict(  # name -> jaxlab.attention_scale.ScaleRule fields
        standard=dict(kind="inverse_sqrt"),
        entropy_invariant=dict(kind="logn", base_len=512),  # Su: log_512 n, calibrated at 512
        gradient_max=dict(kind="gradmax", max_len=1024),  # α*(L_max/2) = α*(512) ≈ 2.008
    )
    c.reference_rule = "standard"  # differences are taken against this rule
    c.train = dict(
        batch_size=16 if q else 64,  # global; divisible by the device count
        seq_len=length,
        num_steps=150 if q else (3_000 if big else 1_000),
        learning_rate=3e-3 if q else 1e-3,
        warmup_steps=15 if q else 100,
        weight_decay=0.1,
        grad_clip=1.0,
        loss="cross_entropy",
        log_every=50 if q else 250,
        eval_every=0,
        eval_windows=8,  # fit's own end-of-training check (the comparison uses eval_windows)
        checkpoint_every=0,
    )
    c.num_devices = 1 if q else 0  # data-parallel devices (0 = all)
    c.eval_lengths = (64, 128, 256, 512, 1024)  # Su's columns
    c.eval_windows = 16 if q else (256 if big else 64)  # shared held-out windows of 1025 bytes
    c.eval_chunk = 8  # windows per forward pass
    c.num_bootstrap = 2_000  # resamples of windows for the CIs
    c.check_direction = not q  # quick: the E-vs-O direction is reported, not checked
    c.known_disagreements = ()
    return c
