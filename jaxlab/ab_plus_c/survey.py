"""Exhaustive and random verification of every exact path, and the statistics of the post.

The survey behind the ab_plus_c experiment: every exact minimiser (``min_abc``, vmapped
``min_abc_jax``, Algorithms B and C, the published and fixed Algorithm A) against vectorised
brute force for all 0 <= N <= n_max, the post's worked table, bounds and iteration counts, the
gap S* - ceil(2 sqrt N) and the overshoot of the optimal p beyond 2 sqrt N, and random N up to
any size. All in exact integers (NumPy int64 where it fits, Python ints beyond).

References: Su, kexue.fm/archives/9775 (the post, its worked table and statistics).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import numpy as np

from jaxlab import sharding
from jaxlab.ab_plus_c import exact, vectorized

# The post's worked table: N -> (naive S, optimum (a, b, c), S*, bound-based C-iterations).
WORKED = {
    101: (21, (10, 10, 1), 21, 8),
    129: (None, (8, 16, 1), 25, None),
    130: (31, (10, 13, 0), 23, 9),
    1000: (71, (27, 37, 1), 65, 13),
    2023: (132, (43, 47, 2), 92, 16),
    999_999: (2998, (999, 1001, 0), 2000, 66),
    1_000_001: (2001, (1000, 1000, 1), 2001, 65),
    123_456_789: (24_690, (10821, 11409, 0), 22_230, 213),
    10**12 + 1: (2_000_001, (10**6, 10**6, 1), 2_000_001, 2002),
    2**40 + 12345: (2_109_497, (1046533, 1050623, 62), 2_097_218, 2050),
}
# Above this N the published Algorithm A interval provably contains the optimum (sqrt N >= 304.07).
ALGORITHM_A_EXACT_FROM = 92_459


def random_decimal(exponent: int, *, key: jax.Array) -> int:
    """A uniform random integer in [10^e, 2 * 10^e), from 9-digit chunks (exact for any e)."""
    chunks = jax.random.randint(key, (exponent // 9 + 1,), 0, 10**9)
    low = sum(int(d) * 10 ** (9 * i) for i, d in enumerate(chunks.tolist())) % 10**exponent
    return 10**exponent + low


def min_abc_population(N, mesh: jax.sharding.Mesh) -> exact.ABCStats:
    """``jit(vmap(min_abc_jax))`` over int64 ``N`` with the N axis split over ``data``.

    Padded by :func:`jaxlab.sharding.pad_population` (any length on any mesh), the padding
    dropped. Call under ``jax.enable_x64(True)``; returns NumPy arrays.
    """
    padded, unpad = sharding.pad_population(np.asarray(N, np.int64), mesh, what="number of N")
    fn = jax.jit(jax.vmap(vectorized.min_abc_jax), out_shardings=sharding.batch_sharding(mesh))
    return exact.ABCStats(*(np.asarray(v) for v in unpad(fn(padded))))


class Exhaustive(NamedTuple):
    """Every exact path against brute force for 0 <= N <= n_max (see :func:`exhaustive`)."""

    N: np.ndarray  # 0..n_max
    s_star: np.ndarray  # brute-force S*
    py: exact.ABCStats  # min_abc records
    checks: dict  # name -> bool: min_abc, min_abc_jax, jax == python, algorithm B, C (bound stop)
    c_bound_iterations: np.ndarray  # Algorithm C (bound stop), 4..bound_stop_max
    fails: dict  # Algorithm A interval -> failing N >= 4


def exhaustive(n_max: int, bound_stop_max: int, mesh: jax.sharding.Mesh) -> Exhaustive:
    """Runs every exact path for 0 <= N <= n_max (Algorithm C's bound stop up to bound_stop_max)."""
    n_hi = n_max + 1
    N = np.arange(n_hi)
    s_star = exact.s_star_range(0, n_hi)
    py = exact.exact_range(0, n_hi)
    with jax.enable_x64(True):
        jx = min_abc_population(N.astype(np.int64), mesh)
    s_b = exact.exact_range(4, n_hi, "algorithm_b").s
    c_bound = exact.exact_range(4, bound_stop_max + 1, "algorithm_c_bound")
    s_a = {iv: exact.algorithm_a_range(0, n_hi, iv) for iv in ("open", "closed", "fixed")}

    def feasible(t):
        return bool((t.a * t.b + t.c == N).all() and (t.a >= 0).all() and (t.a <= t.b).all())

    checks = dict(
        min_abc=bool((py.s == s_star).all()) and feasible(py),
        min_abc_jax=bool((jx.s == s_star).all()) and feasible(jx),
        jax_equals_python=all(bool((u == v).all()) for u, v in zip(jx, py, strict=True)),
        algorithm_b=bool((s_b == s_star[4:]).all()),
        algorithm_c_bound=bool((c_bound.s == s_star[4 : bound_stop_max + 1]).all()),
    )
    fails = {iv: N[(N >= 4) & (s != s_star)].tolist() for iv, s in s_a.items()}
    return Exhaustive(N, s_star, py, checks, c_bound.iterations, fails)


def bound_checks(ex: Exhaustive) -> dict:
    """Bounds and iteration counts over the sweep (N >= 4), in exact integers.

    Returns dict(in_bounds, iterations_ok, max_bound_iterations): ceil(2 sqrt N) <= S* <= U(N)
    and p* <= U(N); S* - ceil(2 sqrt N) + 1 <= integer-rule iterations (non-squares) <=
    bound-based count, and Algorithm C's bound stop runs exactly the bound-based count.
    """
    n_hi = len(ex.N)
    bounds = exact.bounds_range(4, n_hi)
    lb, n_bound, u_floor = bounds.lower, bounds.bound_iterations, bounds.upper_floor
    s4, it4 = ex.py.s[4:], ex.py.iterations[4:]
    in_bounds = bool(((lb <= s4) & (s4 <= u_floor) & (ex.py.p[4:] <= u_floor)).all())
    square = np.array([math.isqrt(int(n)) ** 2 == n for n in ex.N[4:]])
    it_ok = bool((((s4 - lb + 1) <= it4) | square).all() and (it4 <= n_bound).all())
    m = len(ex.c_bound_iterations)
    it_ok &= bool((ex.c_bound_iterations == n_bound[:m]).all())
    return dict(in_bounds=in_bounds, iterations_ok=it_ok, max_bound_iterations=int(n_bound.max()))


def gap_and_overshoot(ex: Exhaustive, start: int) -> tuple[np.ndarray, np.ndarray]:
    """S* - ceil(2 sqrt N) and (p* - 2 sqrt N) / N^{1/4} for start <= N <= n_max."""
    N = ex.N[start:]
    gap = ex.py.s[start:] - exact.bounds_range(start, len(ex.N)).lower
    return gap, (ex.py.p[start:] - 2 * np.sqrt(N)) / N**0.25


def mean_ratio(point: float, window: int) -> float:
    """Mean of bound-based iterations / N^{1/4} over ``window`` consecutive N from ``point``."""
    ns = range(int(point), int(point) + window)
    return float(np.mean([exact.bound_iterations(n) / n**0.25 for n in ns]))


def overshoot(n: int) -> float:
    """(p* - floor(2 sqrt N)) / N^{1/4} of the optimal record p* = a + b (exact integers)."""
    t = exact.min_abc(n, return_stats=True)
    return (t.p - math.isqrt(4 * n)) / n**0.25


class LargeN(NamedTuple):
    N: int
    iterations: int  # integer-rule iterations of min_abc
    overshoot: float  # (p* - 2 sqrt N) / N^{1/4}
    gap: int  # S* - ceil(2 sqrt N)
    seconds: float
    ok: bool  # Algorithm B == C, bounds hold, feasible


def large_n(n: int) -> LargeN:
    """min_abc at one large N, cross-checked by Algorithm B and the bounds (Python ints)."""
    t0 = time.perf_counter()
    t = exact.min_abc(n, return_stats=True)
    dt = time.perf_counter() - t0
    ok = exact.algorithm_b(n).s == t.s and exact.lower_bound(n) <= t.s
    ok &= exact.within_upper_bound(t.s, n) and t.a * t.b + t.c == n
    over = (t.p - math.isqrt(4 * n)) / n**0.25
    return LargeN(n, t.iterations, over, t.s - exact.lower_bound(n), dt, bool(ok))


def loglog_slope(x, y, *, z: float = 1.96) -> tuple[float, float, float]:
    """OLS slope of log y on log x with its normal-approximation interval (slope, lo, hi)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.maximum(np.asarray(y, float), 1.0))
    slope, icpt = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + icpt)
    se = math.sqrt(resid @ resid / max(len(lx) - 2, 1) / ((lx - lx.mean()) @ (lx - lx.mean())))
    return float(slope), float(slope - z * se), float(slope + z * se)


def worked_rows() -> tuple[list, bool]:
    """The post's worked table recomputed; True when every listed value is reproduced."""
    rows, ok = [], True
    for N, (naive, triple, s_want, iters_want) in WORKED.items():
        t = exact.min_abc(N, return_stats=True)
        naive_s, n_bound = exact.naive_guess(N).s, exact.bound_iterations(N)
        a_open = exact.algorithm_a(N, "open")
        ok &= (t.a, t.b, t.c) == triple and t.s == s_want
        ok &= naive is None or naive_s == naive
        ok &= iters_want is None or n_bound == iters_want
        rows.append(
            [N, naive_s, f"({t.a}, {t.b}, {t.c})", t.s, f"{2 * math.sqrt(N):.2f}", n_bound]
            + [t.iterations, f"({a_open.a}, {a_open.b}, {a_open.c}), S = {a_open.s}"]
        )
    return rows, bool(ok)


def failure_rows(fails: dict) -> list:
    """One row per N where the published (open-interval) Algorithm A fails."""
    closed, rows = set(fails["closed"]), []
    for N in fails["open"]:
        t, a_open = exact.min_abc(N), exact.algorithm_a(N, "open")
        got = "empty interval" if a_open is None else f"({a_open.a}, {a_open.b}, {a_open.c})"
        rows.append([N, f"({t.a}, {t.b}, {t.c})", t.s, got, "yes" if N in closed else "no"])
        rows[-1] += [f"2·{t.a}² + {N - 2 * t.a * t.a}"]
    return rows


def _best_time(fn, repeats: int = 1) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timing_rows(exponents, samples, jax_batch, a_max_exponent, mesh, *, key) -> list:
    """One quick in-process timing row per N ~ 10^e (not a benchmark: see benchmarks/)."""
    rows = []
    batch_size = sharding.pad_to_multiple(jax_batch, mesh)
    with jax.enable_x64(True):
        batched = jax.jit(
            jax.vmap(vectorized.min_abc_jax), out_shardings=sharding.batch_sharding(mesh)
        )
        for e in exponents:
            k1, k2, key = jax.random.split(key, 3)
            Ns = [random_decimal(e, key=k) for k in jax.random.split(k1, samples)]
            t_brute = _best_time(lambda Ns=Ns: [exact.min_abc_bruteforce(n) for n in Ns])
            t_py = _best_time(lambda Ns=Ns: [exact.min_abc(n) for n in Ns * 20], 3) / 20
            t_a = math.nan
            if e <= a_max_exponent:
                t_a = _best_time(lambda Ns=Ns: [exact.algorithm_a(n) for n in Ns])
            lo = np.int64(10**e)
            batch = lo + jax.random.randint(k2, (batch_size,), 0, 10**e, dtype=np.int64)
            batch = sharding.shard_population(batch, mesh, what="timing batch")
            jax.block_until_ready(batched(batch))  # compile (once: same shape every exponent)
            t_jax = _best_time(lambda b=batch: jax.block_until_ready(batched(b)), 3) / batch_size
            agree = exact.min_abc_bruteforce(Ns[0]).s == exact.min_abc(Ns[0]).s
            t_brute, t_py, t_a = (t / len(Ns) for t in (t_brute, t_py, t_a))
            rows.append(
                [f"1e{e}", t_brute * 1e3, t_a * 1e3, t_py * 1e6, t_jax * 1e6]
                + [t_brute / t_py, t_py / t_jax, "yes" if agree else "**no**"]
            )
    return rows


WORKED_HEADER = ["N", "naive S", "optimum (a, b, c)", "S*", "2√N", "C-iterations (bound)"]
WORKED_HEADER += ["iterations (integer rule)", "Algorithm A, open interval"]
FAILURE_HEADER = ["N", "optimum", "S*", "Algorithm A (open)", "closed fails too", "N = 2k² + r"]
LARGE_HEADER = ["N", "S* − ⌈2√N⌉", "iterations (integer rule)", "iterations / N^{1/4}"]
LARGE_HEADER += ["bound-based / N^{1/4}", "seconds"]
TIMING_HEADER = ["N ~", "brute force ms/N", "Algorithm A (fixed) ms/N", "min_abc µs/N"]
TIMING_HEADER += ["min_abc_jax vmapped µs/N", "brute / min_abc", "min_abc / jax", "S agrees"]


def log_uniform(num: int, lo: float, hi: float, *, key: jax.Array) -> list[int]:
    """``num`` integers int(10^u), u uniform in [log10 lo, log10 hi]."""
    u = jax.random.uniform(key, (num,), minval=math.log10(lo), maxval=math.log10(hi))
    return [int(10**e) for e in u.tolist()]


ALGORITHM_A_EXACT_FROM = 92_459  # Su: Algorithm A's open interval is provably exact from here


def random_checks(cfg, mesh: jax.sharding.Mesh, *, key: jax.Array) -> dict:
    """Random N against brute force and int64 JAX against Python (``cfg`` = config.random).

    Returns dict(bruteforce_ok, num_bruteforce, jax_ok, num_int64, max_lane_iterations,
    large=[LargeN, ...], overshoot_max over ``cfg.num_overshoot`` log-uniform N in [1e8, 1e16],
    overshoot_n and overshoot_iterations (those N and min_abc's integer-rule iteration counts),
    algorithm_a_ok / num_algorithm_a: the published open-interval Algorithm A equals min_abc on
    ``cfg.num_algorithm_a`` log-uniform N in [92,459, ``cfg.algorithm_a_hi``], the range where
    Su proves it exact).
    """
    k_brute, k_int64, k_large, k_over, k_a = jax.random.split(key, 5)
    rand_n = log_uniform(cfg.num_bruteforce, cfg.lo, cfg.hi, key=k_brute)
    brute_ok = all(
        exact.min_abc(n).s == exact.min_abc_bruteforce(n).s == exact.algorithm_b(n).s
        for n in rand_n
    )
    with jax.enable_x64(True):
        n64 = jax.random.randint(k_int64, (cfg.num_int64,), 0, exact.MAX_N_JAX, dtype=np.int64)
        n64 = np.concatenate([np.asarray(n64), [exact.MAX_N_JAX, 10**12 + 1]]).astype(np.int64)
        jx = min_abc_population(n64, mesh)
    jax_ok = all(
        tuple(int(v[i]) for v in jx) == tuple(exact.min_abc(int(n), return_stats=True))
        for i, n in enumerate(n64.tolist())
    )
    per = cfg.large_per_exponent
    keys = jax.random.split(k_large, len(cfg.large_exponents) * per)
    large = [
        large_n(random_decimal(cfg.large_exponents[i // per], key=k)) for i, k in enumerate(keys)
    ]
    over_n = log_uniform(cfg.num_overshoot, 1e8, 1e16, key=k_over)
    over = max(overshoot(n) for n in over_n)
    a_n = log_uniform(
        cfg.num_algorithm_a, float(ALGORITHM_A_EXACT_FROM), cfg.algorithm_a_hi, key=k_a
    )
    a_n = [max(n, ALGORITHM_A_EXACT_FROM) for n in a_n]  # float rounding at the lower end
    a_ok = all(exact.algorithm_a(n, "open").s == exact.min_abc(n).s for n in a_n)
    return dict(
        algorithm_a_ok=a_ok,
        num_algorithm_a=len(a_n),
        overshoot_n=over_n,
        overshoot_iterations=[exact.min_abc(n, return_stats=True).iterations for n in over_n],
        bruteforce_ok=brute_ok,
        num_bruteforce=len(rand_n),
        jax_ok=jax_ok,
        num_int64=len(n64),
        max_lane_iterations=int(jx.iterations.max()),
        large=large,
        overshoot_max=over,
    )


def large_rows(large: list[LargeN]) -> list:
    """Table rows (see LARGE_HEADER) for :func:`large_n` results."""
    return [
        [f"{r.N:.3e}", r.gap, r.iterations, r.iterations / r.N**0.25]
        + [exact.bound_iterations(r.N) / r.N**0.25, r.seconds]
        for r in large
    ]
