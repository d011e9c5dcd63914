"""N = ab + c: exact O(N^{1/4}) minimiser of a + b + c vs brute force, Su's Algorithm A and B.

  jaxlab run configs/ab_plus_c.py:quick --workdir runs/ab_plus_c-quick  # ~40 s, 2 idle CPU cores
  jaxlab run configs/ab_plus_c.py --workdir runs/ab_plus_c              # ~3 min, 2 CPU cores
  jaxlab run configs/ab_plus_c.py:gpu --workdir runs/ab_plus_c-gpu      # 1 H100 machine, ~30 s
  jaxlab run configs/ab_plus_c.py:quick --config.query="(130, '1e40')"  # + print (a, b, c, S*)

Expect (Su, kexue.fm/archives/9775, and its derived statistics): min_abc, min_abc_jax,
Algorithm B and the fixed Algorithm A equal brute force for every 0 <= N <= 2e5; the published
Algorithm A interval fails on exactly 28 N (16 for the closed one), none from N = 92,459; the
worked table is reproduced exactly; bound-based iterations / N^{1/4} -> 2 (2.07 near 1e6, 2.001
near 2e13); the optimal p exceeds 2 sqrt N by 1.48 N^{1/4} at most for N <= 2e5 and by <= 0.43
N^{1/4} for random N in 1e8..1e16; the integer stopping rule needs far fewer iterations.

GPU (:gpu, part of ``jaxlab reproduce --gpu``; budget share 30 s): most of this experiment is
exact integer arithmetic in Python (brute force, Algorithm A) that a GPU does not speed up, so
the gpu variant keeps quick's Python-bound sizes and takes the full config's JAX sizes (the
vmapped int64 batch of 65 536, 5 000 int64 parity N). Estimate the
budget rests on: quick measured ~40 s on 2 idle CPU cores (docstring above); the GPU machine's
single core is assumed no slower, the JAX batches are a few ms on the GPU; ~30 s.
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    q, g = opts.quick, opts.gpu
    jax_full = g or not q  # the vmapped JAX sizes of the full config
    c = ml_collections.ConfigDict()
    c.experiment = "ab_plus_c"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # seeds the random N samples
    c.num_devices = 1 if q else 0  # data-parallel devices (0 = all); vmapped N axis split over them
    c.query = ()  # extra N to solve and print: ints or strings such as "1e40" (parsed exactly)
    c.sweep = dict(
        n_max=200_000,  # exhaustive check of every 0 <= N <= n_max (all exact paths)
        bound_stop_max=20_000 if q else 200_000,  # Algorithm C with stop="bound" up to this N
        gap_from=101,  # S* - ceil(2 sqrt N) statistics over gap_from <= N <= n_max (post's range)
    )
    c.random = dict(
        num_bruteforce=300,  # log-uniform N in [lo, hi] against brute force (the post's 300; ~4 s)
        lo=1e6,  # smallest random N for the brute-force check
        hi=1e14,  # largest (brute force is O(sqrt N): 1e7 steps at 1e14)
        num_int64=5_000 if jax_full else 500,  # uniform N in [0, 2^62) for Python vs JAX
        large_exponents=(16, 20, 24, 28, 30) if q else (16, 20, 24, 28, 32, 36, 40),  # 10^e N
        large_per_exponent=2 if q else 3,  # random N per exponent on the Python path
        num_overshoot=100 if q else 300,  # log-uniform N in [1e8, 1e16]: overshoot, N^k fit
        num_algorithm_a=50 if q else 300,  # log-uniform N in [92459, algorithm_a_hi]: A exact
        algorithm_a_hi=1e10 if q else 1e12,  # Algorithm A is an O(sqrt N) Python scan
    )
    c.iters = dict(
        ratio_points=(1e6, 2e13),  # bound-based iterations / N^{1/4} checked near these N
        ratio_window=200,  # consecutive N averaged at each point
        max_exponent=40,  # bound-based counts plotted for N up to 10^max_exponent
    )
    c.timing = dict(
        exponents=(6, 8, 10, 12) if q or g else (6, 8, 10, 12, 14),  # N ~ 10^e, timing table
        samples=3 if q else 5,  # N per exponent for the scalar paths (best-of-1 each)
        jax_batch=65_536 if jax_full else 4_096,  # vmapped batch size per exponent
        algorithm_a_max_exponent=10 if q else 12,  # Algorithm A (O(sqrt N) Python) up to 10^e
    )
    c.tolerance = dict(
        ratio_near_1e6=0.1,  # |bound iterations / N^{1/4} - 2| near 1e6 (the post: 2.07)
        ratio_near_2e13=0.01,  # same near 2e13 (the post: 2.001)
        max_bound_iterations=45,  # largest bound-based count for N <= 2e5 (exact)
        overshoot_max=1.48,  # max (p* - 2 sqrt N) / N^{1/4}, 101 <= N <= 2e5 (2 decimals)
        overshoot_random=0.43,  # max of the same over random N in [1e8, 1e16]
    )
    c.known_disagreements = ()  # (claim name, reason) pairs this config is known to fail
    return c
