"""Unigram tokenization: exact sampling vs Su's v1 Viterbi Sampling, SentencePiece parity, speed.

Sources: kexue.fm/archives/9768 (v1 Viterbi Sampling), kexue.fm/archives/9811 (exact sampling),
kexue.fm/archives/9752 (BytePiece); Kudo, arXiv:1804.10959 (SentencePiece unigram, FFBS).

  jaxlab run configs/tokenizer_sampling.py:quick --workdir runs/tokenizer_sampling-quick
      # ~40 s on 2 CPU cores (SentencePiece 8k model on 1.5 MB, 64 KiB test slice, 1e4 draws)
  jaxlab run configs/tokenizer_sampling.py --workdir runs/tokenizer_sampling
      # ~3-5 min on 2 CPU cores (8k SP-ws model, 1 MiB test text, 1e5 draws)
  jaxlab run configs/tokenizer_sampling.py:gpu --workdir runs/tokenizer_sampling-gpu  # ~35 s
Expect: toy log Z = -3.055608 (alpha=1) and 1.528442 (alpha=0.1); FFBS and the one-pass
sampler pass chi-square (p > 1e-3) at alpha in {0, 0.1, 1, 5}; v1 fails it (p < 1e-10) and
gives 1/4, 1/4, 1/2 on three equal candidates; jaxlab Viterbi ids equal SentencePiece's on
every test line.

GPU (:gpu, part of ``jaxlab reproduce --gpu``; budget share 35 s): SentencePiece training, the
pure-Python reference samplers and the EM comparison run on the host, so they keep quick's
sizes; the JAX samplers, which the GPU runs, draw the full 1e5 samples per (method, alpha).
Estimate the budget rests on: quick measured ~40 s on 2 CPU cores, dominated by the host-side
SentencePiece training; 10x more JAX draws are one vmapped program each on the GPU (~ms).
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    quick = opts.quick or opts.gpu  # gpu: quick's host-side sizes, full JAX draws
    c = ml_collections.ConfigDict()
    c.experiment = "tokenizer_sampling"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # PRNG seed for every sampler (JAX keys and Python references)
    c.num_devices = 1 if quick else 0  # data-parallel devices (0 = all); DP rows split over them
    c.num_draws = 10_000 if opts.quick else 100_000  # samples per (method, alpha) on the toy
    c.ref_draws = 3_000 if quick else 30_000  # draws for the pure-Python reference samplers
    c.alphas = (0.0, 0.1, 1.0, 5.0)  # inverse temperatures for the exactness checks
    c.sp = ml_collections.ConfigDict()
    c.sp.vocab_size = 8000  # SentencePiece unigram vocabulary (SP-ws 8k, as in BENCHMARKS.md)
    c.sp.train_bytes = 1_500_000 if quick else 0  # cap on training text (0 = all stdlib text)
    c.sp.test_bytes = 64 * 1024 if quick else 1024 * 1024  # held-out text for parity/speed
    c.train = ml_collections.ConfigDict()
    c.train.vocab_size = 800 if quick else 4000  # jaxlab EM vs SentencePiece at this size
    c.train.train_bytes = 100_000 if quick else 1_000_000  # training text for that comparison
    # alphas for the bytes/token curve
    c.bpt_alphas = (0.1, 0.5, 2.0) if quick else (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
    c.timing_repeats = 2 if quick else 5  # timed repeats per mode (after one warm-up call)
    c.v1_ks = (3, 4, 5)  # v1 on K equal-score candidates: the 1/2, ..., 1/2^(K-1) law (9768)
    c.limit_alphas = (1.0, 10.0, 100.0, 1000.0)  # (1/alpha) log Z -> Viterbi score V
    c.two_sample_draws = 5_000 if quick else 20_000  # per library and line, vs SentencePiece FFBS
    c.tolerance = ml_collections.ConfigDict()
    c.tolerance.log_z_abs = 1e-6  # |log Z - 9811's toy value| on the toy
    c.tolerance.p_exact = 1e-3  # exact samplers: chi-square p-value must exceed this
    c.tolerance.p_biased = 1e-10  # v1 / 4e92759: chi-square p-value must be below this
    c.tolerance.freq_sigmas = 4.0  # |freq - p| <= this many binomial standard errors
    c.tolerance.limit_abs = 1e-5  # float32 rounding of (1/alpha) log Z on the toy strings
    c.tolerance.parity_lines = 1.0  # fraction of test lines with ids equal to SentencePiece
    return c
