"""EMO vs cross-entropy fine-tuning of a tiny byte LM on a held-out domain (Ren et al. 2023).

  jaxlab run configs/emo_finetune.py:quick --workdir runs/emo_finetune   # ~2.5 CPU-min (2 cores)
  jaxlab run configs/emo_finetune.py:gpu --workdir runs/emo_finetune-gpu # ~1-2 min, one H100

Pre-trains with CE on the standard library's Python source minus ``pydoc_data``, then fine-tunes
copies on the English reference text of ``pydoc_data/topics.py`` with CE, EMO mode 1 (paper recipe,
fixed head) and EMO mode 2 (fixed head), over several seeds. Expect (quick): every branch lowers
held-out bits/byte well below the pre-trained model's; EMO's bits/byte equal or slightly above CE's;
the MAUVE difference not resolvable at this size (64 samples per run).
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    q, g = opts.quick, opts.gpu
    c = ml_collections.ConfigDict()
    c.experiment = "emo_finetune"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # seeds pre-training; fine-tuning seeds are seed + 1 ... seed + num_seeds
    c.data = dict(
        domain_files=("pydoc_data/topics.py",),  # stdlib-relative: the fine-tuning domain
        exclude=("pydoc_data/",),  # stdlib-relative prefixes left out of pre-training
        pretrain_max_bytes=2_000_000 if q else 0,  # cap on pre-training bytes (0 = all)
        heldout_every=10,  # the last 1/10 of every file is held out
    )
    c.model = dict(  # TinyLM via LMConfig, default attention settings
        num_layers=2 if q else 4,
        embed_dim=64 if q else 256,  # D
        num_heads=4 if q else 8,
        mlp_dim=256 if q else 1024,
        train_len=64 if q else 256,  # = seq_len
    )
    c.pretrain = dict(
        batch_size=16 if q else 64,
        seq_len=64 if q else 256,
        num_steps=200 if q else (2_000 if g else 5_000),
        learning_rate=3e-3 if q else 1e-3,
        warmup_steps=30 if q else 200,
        log_every=50 if q else 200,
        eval_windows=32 if q else 128,
    )
    c.finetune = dict(
        batch_size=16 if q else 64,
        seq_len=64 if q else 256,
        num_steps=60 if q else (400 if g else 1_000),
        learning_rate=1e-3 if q else 3e-4,
        warmup_steps=10 if q else 50,
        log_every=10 if q else 50,
    )
    c.branches = dict(  # name -> key into jaxlab.train.LOSSES
        ce="cross_entropy",
        emo_mode1="emo",  # paper_emo: fixed head, exact EMO, 1/2 (MLE + sg(MLE/EMO) EMO), fused
        emo_mode2="emo_mode2_fixed",  # sg(EMO/MLE) MLE + EMO, fixed head, fused
    )
    c.num_seeds = 3 if q else 5  # fine-tuning and sampling seeds per branch
    c.eval = dict(
        windows=32 if q else 512,  # held-out domain windows for bits/byte and entropy
        num_samples=64 if q else (1_000 if g else 4_000),  # prompts = MAUVE sample size
        prefix_len=16 if q else 32,  # bytes of held-out text given as the prompt
        continuation_len=32 if q else 128,  # bytes sampled (unbiased ancestral sampling)
        distinct_n=(4, 8),  # byte n-grams for distinct-n
        repetition_n=8,  # byte n-grams for the repetition rate
    )
    c.num_devices = 1 if q else 0  # data-parallel devices (0 = all)
    c.known_disagreements = ()
    return c
