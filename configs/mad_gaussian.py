"""Self-consuming Gaussian loops: the 1-D collapse laws and the d = 100 fresh-data limits.

  jaxlab run configs/mad_gaussian.py:quick --workdir runs/mad_gaussian-quick  # ~1 min, 2 CPUs
  jaxlab run configs/mad_gaussian.py:gpu --workdir runs/mad_gaussian-gpu      # sized for 1 H100
  jaxlab run configs/mad_gaussian.py --workdir runs/mad_gaussian              # CPU/any, minutes

Quick: 116 s of CPU time measured (412 s wall on a shared 2-core machine at load ~13). The gpu
variant (100,000 exact-law chains, 20 chains per d = 100 loop) has not been run: no device.

Expect (Su, kexue.fm/archives/9687; Alemohammad et al., arXiv:2307.01850): 1-D, λ = 1, n = 100,
20,000 chains: median σ_t² within 3 % of exp(t[ψ(49.5) − ln 49.5]) at t = 10, 50, 100, 200 while
the mean stays ≈ 1, Var μ_t ≈ t/n; λ = 0.9, 0.7: E σ_20² ≈ λ^19 and Var μ_20 ≈ (1 − λ^20)/(n(1 − λ))
within 5 %. Fresh-data loop in d = 100 (n_r = 100, n_s = 900): W_2² limits ≈ 12.3 (λ = 1) and
≈ 20.5 (λ = 0.8), the same for n_ini = 100 and 1000; fully synthetic > augmentation > fresh.
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    q, gpu = opts.quick, opts.gpu
    c = ml_collections.ConfigDict()
    c.experiment = "mad_gaussian"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # every chain's key derives from it
    c.num_devices = 1 if q else 0  # data-parallel devices over the chain axis (0 = all)
    c.dtype = "float64"  # the laws are checked in float64
    c.law = dict(
        n=100,  # samples per generation of the 1-D fully synthetic loop
        chains=20_000 if q else 100_000 if gpu else 20_000,  # exact-law chains (acceptance: 20k)
        generations=200,  # 1-D generations
        checkpoints=(10, 50, 100, 200),  # t of the law table
        mean_checked_until=50,  # mean σ_t² is asserted for t <= this (heavy tails beyond)
        var_mu_checked_until=100,  # Var μ_t is asserted for t <= n (heavy tails beyond)
        bias_lams=(0.9, 0.7),  # λ < 1 checks
        bias_t=20,  # generation of the λ < 1 checks
        sample_chains=500 if q else 2_000,  # sample-level chains (cross-check of the exact law)
        sample_generations=20 if q else 50,  # their generations; KS test at the last one
    )
    c.fresh = dict(
        dim=100,  # d of the truth N(0, I_d)
        n_real=100,  # fresh real samples per generation (also the augmentation's fixed set)
        n_syn=900,  # synthetic samples per generation (all loop kinds)
        lams=(1.0, 0.8),  # sampling bias λ
        n_inits=(100, 1000),  # real samples of G_1
        seeds=5 if q else 20 if gpu else 10,  # chains per (kind, λ, n_ini)
        generations=40,  # generations per chain
        limit_from=20,  # the limit is the mean of W_2² over t = limit_from..generations
    )
    c.tolerance = dict(
        median_rel=0.03,  # median σ_t² vs the digamma law
        mean_rel=0.03,  # mean σ_t² vs 1, t <= mean_checked_until
        var_mu_rel=0.03,  # Var μ_t vs t/n, t <= var_mu_checked_until
        bias_rel=0.05,  # λ < 1: E σ² and Var μ at bias_t
        ks_p=1e-3,  # exact vs sample-level KS p-value floor (false failure 0.1 %)
        limit_rel=0.05,  # fresh-data W_2² limits vs 12.3 and 20.5
        n_init_rel=0.02,  # limit at n_ini = 1000 vs n_ini = 100
    )
    c.known_disagreements = ()  # (claim name, reason) pairs this config is known to miss
    return c
