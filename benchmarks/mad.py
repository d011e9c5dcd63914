"""MAD benchmark: vmapped self-consuming chains vs a Python loop over single chains.

  python benchmarks/mad.py [--quick] [--generations G] [--repeats R]

Both sides run the same chains (same keys, float64 unless the row says otherwise) in one process:
the candidate is one jitted ``vmap`` over all chains, the baseline a Python loop calling the *same*
function, jitted for a single chain, once per chain (so the loop pays dispatch and per-op
overhead, not tracing). Each side reports the median of the repeats in wall time and in process
CPU time (all threads; steadier than wall time on a shared machine); compile calls are excluded.
"max |diff|" compares the vmapped outputs with the loop's: a like-for-like row gives 0 or
rounding-level differences.

Workloads (1-D Gaussian, truth N(0, 1), λ = 1, fully synthetic):

* ``sample-level refit``: :func:`jaxlab.mad.run_loop` with :class:`jaxlab.mad.GaussianModel`,
  n = 100 samples drawn and refitted per generation;
* ``stats-level loop``: :func:`jaxlab.mad.run_loop_stats_1d`, the same law on sufficient
  statistics (one normal + one χ² draw per generation);
* ``exact law``: :func:`jaxlab.mad.exact_chain_1d` (``draws="scan"``; ``bulk draws``: all
  generations' normals and χ² in one draw, :func:`jaxlab.mad.gamma_marsaglia_tsang`);
* ``draws only``: the random numbers each workload needs, drawn in one call per chain (the RNG
  floor of the chain's cost);
* PRNG variants: the same chains with keys of ``jax.random.key(0, impl=...)`` for
  ``rbg`` / ``unsafe_rbg``. Their vmap batching rule draws a batch from one key rather than per
  chain, so vmapped chains differ from the loop's (nonzero max |diff|): not like-for-like.

Goal (issue 14): >= 20x at 1,000 chains on CPU, on a like-for-like row.
"""

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import timing  # noqa: E402

from jaxlab import mad  # noqa: E402

N = 100


def _workloads(generations: int):
    cfg = mad.LoopConfig(generations, N, N)
    real = mad.standard_normal(1)
    metric = lambda p, lam, k: dict(mu=p.mean[0], var=p.cov[0, 0])  # noqa: E731

    def sample_level(k):
        return mad.run_loop(mad.GaussianModel(), cfg, "fully_synthetic", 1.0, real, metric, key=k)

    def stats_level(k):
        return mad.run_loop_stats_1d(cfg, "fully_synthetic", 1.0, key=k)

    def exact(k, dtype=None, draws="scan"):
        mu, var = mad.exact_chain_1d(N, 1.0, generations, key=k, dtype=dtype, draws=draws)
        return dict(mu=mu, var=var)

    def draws_samples(k):  # n normals per generation (+ the first real sample)
        return jax.random.normal(k, (generations, N), jnp.float64)

    def draws_stats(k):  # one normal and one χ²_{n−1} per generation
        k1, k2 = jax.random.split(k)
        half = (N - 1) / 2
        z = jax.random.normal(k1, (generations,), jnp.float64)
        return z, jax.random.gamma(k2, half, (generations,), jnp.float64)

    return [
        ("sample-level refit (n = 100)", sample_level, "threefry2x32"),
        ("draws only: G x n normals", draws_samples, "threefry2x32"),
        ("stats-level loop (law of n = 100)", stats_level, "threefry2x32"),
        ("exact law", exact, "threefry2x32"),
        ("exact law, float32", lambda k: exact(k, jnp.float32), "threefry2x32"),
        ("exact law, bulk draws", lambda k: exact(k, draws="bulk"), "threefry2x32"),
        ("draws only: G normals + G chi2", draws_stats, "threefry2x32"),
        ("sample-level refit (n = 100)", sample_level, "rbg"),
        ("sample-level refit (n = 100)", sample_level, "unsafe_rbg"),
        ("exact law", exact, "rbg"),
        ("exact law", exact, "unsafe_rbg"),
    ]


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _time(fn, repeats: int) -> dict:
    out = jax.block_until_ready(fn())  # compile (and first run), excluded
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu_s()
        out = jax.block_until_ready(fn())
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_s() - c0)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "out": out}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 generations, 3 repeats")
    parser.add_argument("--generations", type=int, help="generations (default 50; quick 20)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 5; quick 3)")
    parser.add_argument("--chains", type=int, default=1000)
    args = parser.parse_args()
    timing.print_machine()
    generations = args.generations or (20 if args.quick else 50)
    repeats = args.repeats or (3 if args.quick else 5)
    rows, by_name = [], {}
    with jax.enable_x64(True):
        for name, fn, impl in _workloads(generations):
            keys = jax.random.split(jax.random.key(0, impl=impl), args.chains)
            key_list = list(keys)
            batched = jax.jit(jax.vmap(fn))
            single = jax.jit(fn)
            tb = _time(lambda batched=batched, keys=keys: batched(keys), repeats)
            tl = _time(
                lambda single=single, key_list=key_list: [single(k) for k in key_list], repeats
            )
            stacked = jax.tree.map(lambda *xs: np.stack(xs), *tl["out"])
            err = max(
                float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                for a, b in zip(jax.tree.leaves(tb["out"]), jax.tree.leaves(stacked), strict=True)
            )
            by_name[(name, impl)] = (tl, tb)
            rows.append(
                [
                    name,
                    impl,
                    f"{tl['wall']:.4g} / {tl['cpu']:.4g}",
                    f"{tb['wall']:.4g} / {tb['cpu']:.4g}",
                    f"{tl['wall'] / tb['wall']:.1f}x / {tl['cpu'] / tb['cpu']:.1f}x",
                    f"{err:.2g}",
                ]
            )
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    print(f"\n{args.chains} chains, {generations} generations, {repeats} repeats (medians)")
    header = [
        "workload",
        "PRNG",
        "loop s (wall / CPU)",
        "vmap s (wall / CPU)",
        "speed-up (wall / CPU)",
        "max |diff|",
    ]
    print(timing.markdown_table(header, rows))
    tl, _ = by_name[("sample-level refit (n = 100)", "threefry2x32")]
    _, tb = by_name[("stats-level loop (law of n = 100)", "threefry2x32")]
    wall, cpu = tl["wall"] / tb["wall"], tl["cpu"] / tb["cpu"]
    print(
        "\nNot like-for-like (algorithm + vmap): vmapped stats-level loop vs the Python loop of "
        f"sample-level chains: {wall:.0f}x wall / {cpu:.0f}x CPU"
    )


if __name__ == "__main__":
    main()
