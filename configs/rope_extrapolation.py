"""RoPE context extension without fine-tuning: train at L, evaluate at 8L (kexue.fm/archives/9706).

  jaxlab run configs/rope_extrapolation.py:quick --workdir runs/rope_extrapolation  # ~1 min, 2 CPUs
  jaxlab run configs/rope_extrapolation.py:gpu --workdir runs/rope-gpu  # one H100, ~2 min
  jaxlab run configs/rope_extrapolation.py --workdir runs/rope_extrapolation-full     # GPU, ~1 h

Two single-head byte LMs (plain, and pre-trained with log-n scaling) are trained at L (quick 64,
full 512) and evaluated at 8L on held-out stdlib text ("natural") and on a held-out passage of 2L
bytes repeated to fill 8L ("repeated"), for baseline, PI, NTK-aware, NTK-old, NTK-fixed,
NTK-mixed, YaRN, ReRoPE and Leaky ReRoPE, each plain / log n† (post-hoc) / log n (pre-trained).

Expected (Su's GAU at L = 512): PI < baseline << NTK-old ~ NTK-fixed < NTK-mixed < ReRoPE
(w = L/4..L/2) ~ train-length accuracy; log n > log n† > plain (for NTK-fixed, NTK-mixed and
ReRoPE, the rows where Su's tables make that claim); ReRoPE at w = L collapses. Each ordering is
decided by a 95% bootstrap interval over the evaluation windows; with the quick run's 4 + 4
windows most are "not resolvable at this size". GPU (:gpu): a 4-layer width-256 model trained
2 000 steps at L = 512, evaluated at 4096 on 64 + 64 windows; sized for one H100, not run here.
"""

import ml_collections

from jaxlab import config_args

# Enum-like fields, validated when the config is loaded (one line and exit 2 on a bad value).
CHOICES = {
    "model.position": ("none", "rope"),
}


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    q, g = opts.quick, opts.gpu
    length = 64 if q else 512
    c = ml_collections.ConfigDict()
    c.experiment = "rope_extrapolation"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # seeds both models' init and batch streams, and the bootstrap
    c.data = dict(
        files=(),  # user text files; () = Python stdlib source of this interpreter
        heldout_every=10,  # stdlib: a file is held out when crc32(path) % 10 == 0
        max_bytes=3_000_000 if q else 0,  # cap per split (0 = all)
    )
    c.model = dict(
        num_layers=2 if q else 4 if g else 12,
        embed_dim=64 if q else 256 if g else 768,  # D
        num_heads=1,  # single head, like Su's GAU test bed
        mlp_dim=192 if q else 1024 if g else 3072,
        position="rope",
        rope_theta=10_000.0,
        train_len=length,  # L; must equal train.seq_len
        dtype="float32" if q else "bfloat16",
    )
    c.train = dict(
        batch_size=16 if q else 32 if g else 64,  # global; divisible by the device count
        seq_len=length,  # L
        num_steps=300 if q else 2_000 if g else 20_000,
        learning_rate=3e-3 if q else 1e-3 if g else 6e-4,
        warmup_steps=30 if q else 200 if g else 1_000,
        weight_decay=0.1,
        grad_clip=1.0,
        loss="cross_entropy",
        log_every=50 if q else 500,
        eval_every=0,  # held-out eval only at the end of each training run
        eval_windows=8 if q else 64,
        checkpoint_every=0,  # no checkpoints (two models per run)
    )
    c.num_devices = 1 if q else 0  # data-parallel devices (0 = all); quick: one is fastest
    c.eval_factor = 8  # k: evaluate at k·L without fine-tuning
    c.eval_windows = 4 if q else 64  # natural-text windows of k·L + 1 bytes
    c.repeat_windows = 4 if q else 64  # repeated-text windows
    c.eval_chunk = 8 if q else 16  # windows per forward pass at 8L
    c.jit_eval = not q  # quick: eager forward (per-op compiles are shared by all variants)
    c.repeat_passage = 2 * length  # bytes of held-out text repeated to fill k·L
    c.mix_b = 0.625  # NTK-mixed exponent (Su's best for his GAU model)
    c.rerope_windows = [length // 4, length // 2, length] if q else [
        length // 8, length // 4, length // 2, 3 * length // 4, length]  # fmt: skip
    c.leaky = [(length // 4, k) for k in ((16.0,) if q or g else (8.0, 16.0, 32.0, 64.0))]
    c.bootstrap = dict(
        num_resamples=2_000,  # resamples of the evaluation windows per ordering claim
        level=0.95,  # confidence level; a claim whose interval straddles is not resolvable
    )
    c.tolerance = dict(
        same=0.01,  # "≈": accuracies within this absolute difference count as equal
        ntk_aware_base=0.01,  # abs tolerance on b·k^{d/(d-2)} = 82,684.62 (d=128, k=8)
        identity_rel=1e-8,  # float64 identities of the multipliers (mixed b=1, b -> 0)
        multiplier_table_abs=5e-5,  # the multiplier table is given to 4 decimals
    )
    c.known_disagreements = ()  # (claim name, reason) pairs this config is known to disagree with
    if q:
        c.known_disagreements = (
            (
                "ReRoPE w=L collapses: below Baseline and best ReRoPE by > 0.01 (natural)",
                "quick: a 2-layer width-64 byte LM trained 300 steps at L = 64 makes little use "
                "of distances near L, so clipping them at w = L costs nothing (ReRoPE w=64 0.353 "
                "vs Baseline 0.341 at 512); Su's collapse (7-8 % vs 23 %) is at L = 512 on a "
                "~100M-parameter model (see :gpu)",
            ),
        )
    return c
