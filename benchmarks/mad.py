"""MAD benchmark: vmapped self-consuming chains vs a Python loop over single chains.

  python benchmarks/mad.py [--quick]

Both sides run the same chains (same keys, float64) in one process: the candidate is one jitted
``vmap`` over all chains, the baseline a Python loop calling a jitted single-chain function once
per chain. Workloads: the sample-level 1-D Gaussian loop (:func:`jaxlab.mad.run_loop`, n = 100
samples per generation, refit each generation) and the exact-law 1-D chain
(:func:`jaxlab.mad.exact_chain_1d`). Compile time is reported apart; the table gives the median
and best of the repeats and the speed-up of the medians. Goal: >= 20x at 1,000 chains on CPU.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import timing  # noqa: E402

from jaxlab import mad  # noqa: E402


def _workloads(n: int, generations: int):
    cfg = mad.LoopConfig(generations, n, n)
    real = mad.standard_normal(1)
    metric = lambda p, lam, k: dict(mu=p.mean[0], var=p.cov[0, 0])
    sample_level = lambda k: mad.run_loop(
        mad.GaussianModel(), cfg, "fully_synthetic", 1.0, real, metric, key=k
    )
    exact = lambda k: dict(
        zip(("mu", "var"), mad.exact_chain_1d(n, 1.0, generations, key=k), strict=True)
    )
    return {"sample-level refit (n = 100)": sample_level, "exact law": exact}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    timing.print_machine()
    chains = 1000
    generations = 20 if args.quick else 50
    repeats = 3 if args.quick else 5
    rows = []
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), chains)
        key_list = list(keys)
        for name, fn in _workloads(100, generations).items():
            batched = jax.jit(jax.vmap(fn))
            single = jax.jit(fn)

            def loop(fn=single):
                return [fn(k) for k in key_list]

            tb = timing.time_fn(batched, keys, repeats=repeats)
            tl = timing.time_fn(loop, repeats=repeats)
            stacked = jax.tree.map(lambda *xs: np.stack(xs), *tl["out"])
            err = max(
                float(np.max(np.abs(np.asarray(a) - b)))
                for a, b in zip(jax.tree.leaves(tb["out"]), jax.tree.leaves(stacked), strict=True)
            )
            rows.append(
                [
                    name,
                    chains,
                    generations,
                    tl["median_s"],
                    tl["best_s"],
                    tb["median_s"],
                    tb["best_s"],
                    tl["median_s"] / tb["median_s"],
                    tb["compile_s"],
                    err,
                ]
            )
    header = [
        "workload",
        "chains",
        "generations",
        "loop median s",
        "loop best s",
        "vmap median s",
        "vmap best s",
        "speed-up (medians)",
        "vmap compile s",
        "max |diff|",
    ]
    print(timing.markdown_table(header, rows))


if __name__ == "__main__":
    main()
