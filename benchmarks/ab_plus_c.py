"""Benchmark: min_abc (Python ints) and min_abc_jax (vmapped int64) vs brute force and Algorithm A.

  python benchmarks/ab_plus_c.py --quick   # < 1 min on 2 CPU cores
  python benchmarks/ab_plus_c.py           # 1e6 random N <= 1e12 vmapped; single N up to 1e30

Part 1: one batch of random N <= 1e12 through jit(vmap(min_abc_jax)) (whole batch, and in
chunks via lax.map so each chunk's while loop stops at its own slowest lane), with the N axis
split over a data mesh of every device (``--num-devices``), against a Python
loop of min_abc over the same N; brute force on a subset checks S. Part 2: single N per decade
through min_abc, Algorithm B, Algorithm C with the bound stop, the fixed Algorithm A and brute
force (the O(sqrt N) ones only where feasible). Every row checks S against the others.
"""

import argparse
import os
import subprocess
import time

import jax
import numpy as np
import timing

from jaxlab import ab_plus_c as abc
from jaxlab import sharding
from jaxlab.ab_plus_c import vectorized as abc_jax


def _py_time(fn, repeats: int) -> dict:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return dict(median_s=float(np.median(times)), best_s=min(times), out=out)


def batch_part(
    num: int, n_hi: int, repeats: int, chunk: int, num_brute: int, seed: int, mesh
) -> None:
    rng = np.random.default_rng(seed)
    N_B = rng.integers(0, n_hi + 1, num, dtype=np.int64)
    N_B = N_B[: num // chunk * chunk]
    # Data parallel: N split over the mesh (whole batch: axis 0; chunks [num/chunk, chunk]: the
    # within-chunk axis, so every lax.map step runs on all devices). Both must divide evenly.
    batch_sh = sharding.batch_sharding(mesh)
    chunk_sh = sharding.population_sharding(mesh, 2, axis=1)
    whole = jax.jit(jax.vmap(abc_jax.min_abc_jax), out_shardings=batch_sh)
    chunked = jax.jit(
        lambda x: jax.lax.map(jax.vmap(abc_jax.min_abc_jax), x), out_shardings=chunk_sh
    )
    with jax.enable_x64(True):
        abc_jax.check_jax_domain(N_B)
        x = sharding.shard_population(N_B, mesh, what="batch size")
        x_chunks = sharding.shard_population(N_B.reshape(-1, chunk), mesh, 1, what="chunk")
        r_whole = timing.time_fn(whole, x, repeats=repeats)
        r_chunk = timing.time_fn(chunked, x_chunks, repeats=repeats)
    s_jax = np.asarray(r_whole["out"].s)
    s_chunk = np.asarray(r_chunk["out"].s).reshape(-1)
    r_py = _py_time(lambda: [abc.min_abc(int(n)).s for n in N_B], max(1, repeats // 5))
    s_py = np.array(r_py["out"], dtype=np.int64)
    idx = rng.choice(len(N_B), num_brute, replace=False)
    t0 = time.perf_counter()
    s_brute = np.array([abc.min_abc_bruteforce(int(N_B[i])).s for i in idx], dtype=np.int64)
    t_brute = (time.perf_counter() - t0) / num_brute
    iters = np.asarray(r_whole["out"].iterations)
    print(
        f"\n## Part 1: {len(N_B)} random N in [0, {n_hi:.0e}] (iterations: mean "
        f"{iters.mean():.1f}, max {iters.max()}; jax chunk {chunk}; "
        f"N split over {mesh.shape[sharding.DATA_AXIS]} device(s))\n"
    )
    py_s = r_py["median_s"]
    rows = []
    for name, r in [("jit(vmap), whole batch", r_whole), ("lax.map over vmapped chunks", r_chunk)]:
        rows.append([f"min_abc_jax, {name}", r["compile_s"], r["median_s"], r["best_s"]])
        rows[-1] += [len(N_B) / r["median_s"], py_s / r["median_s"]]
    rows.append(["min_abc, Python loop", 0.0, py_s, r_py["best_s"], len(N_B) / py_s, 1.0])
    est = t_brute * len(N_B)
    rows.append([f"brute force, NumPy O(sqrt N) (estimated from {num_brute} N)", 0.0, est, est])
    rows[-1] += [1 / t_brute, py_s / est]
    header = ["method", "compile s", "median s", "best s", "N / s", "speed-up vs Python"]
    print(timing.markdown_table(header, rows))
    diff = max(
        int(np.abs(s_jax - s_py).max()),
        int(np.abs(s_chunk - s_py).max()),
        int(np.abs(s_brute - s_py[idx]).max()),
    )
    print(f"\nmax |S_jax - S_python|, |S_chunked - S_python|, |S_brute - S_python|: {diff}")


def single_part(exponents, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    rows = []
    for e in exponents:
        hi = int(rng.integers(0, 10**9)) * 10 ** max(e - 9, 0) + int(rng.integers(0, 10**9))
        n = 10**e + (hi if e > 9 else int(rng.integers(0, 10**e)))
        t = {}
        s = {}
        methods = {
            "min_abc": (lambda n=n: abc.min_abc(n), True),
            "algorithm_b": (lambda n=n: abc.algorithm_b(n), True),
            "C bound stop": (lambda n=n: abc.algorithm_c(n, "bound"), e <= 18),
            "A fixed": (lambda n=n: abc.algorithm_a(n, "fixed"), e <= 12),
            "brute force": (lambda n=n: abc.min_abc_bruteforce(n), e <= 14),
        }
        for name, (fn, ok) in methods.items():
            if ok:
                r = _py_time(fn, 3 if e <= 24 else 1)
                t[name], s[name] = r["median_s"], r["out"].s
        agree = len(set(s.values())) == 1
        rows.append(
            [f"{n:.3e}", abc.min_abc(n, return_stats=True).iterations, abc.bound_iterations(n)]
            + [t.get(k, float("nan")) * 1e3 for k in methods]
            + [t.get("brute force", float("nan")) / t["min_abc"], "yes" if agree else "**NO**"]
        )
    print("\n## Part 2: single N, Python integers (ms per N; nan = not run, too slow)\n")
    header = ["N", "iterations (integer rule)", "bound-based iterations"]
    header += [f"{k} ms" for k in methods] + ["brute / min_abc", "S agrees"]
    print(timing.markdown_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 1 min)")
    parser.add_argument("--num", type=int, help="batch size of part 1 (default 1e6, quick 2e4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (>= 5 for quotes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-devices", type=int, default=0, help="data mesh size (0 = all)")
    args = parser.parse_args()
    mesh = sharding.data_mesh(args.num_devices or None)
    timing.print_machine()
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("cpu count:", os.cpu_count())
    num = args.num or (20_000 if args.quick else 1_000_000)  # multiples of the chunk, 4000
    batch_part(num, 10**12, args.repeats, 4000, 20 if args.quick else 200, args.seed, mesh)
    exps = (6, 9, 12, 16, 20) if args.quick else (6, 9, 12, 14, 16, 18, 20, 24, 28, 30)
    single_part(exps, args.seed)


if __name__ == "__main__":
    main()
