"""lax.scan vs lax.associative_scan for linear recurrences h_t = A_t h_{t-1} + b_t, batch 8.

  python benchmarks/scan.py --quick   # < 1 min on 2 CPU cores
  python benchmarks/scan.py           # the spec's grid (T up to 1e5, D up to 1024, n up to 32)

Both sides are ``jaxlab.deer.scan.linear_recurrence`` (method "sequential" vs "associative"),
vmapped over a batch of 8, float32, same inputs and device, jitted; median/best of 5 after a
separately timed compile; the last column is the max abs difference. Transitions are scaled to
spectral radius < 1 so that long products stay finite.
"""

from __future__ import annotations

import argparse
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import timing

from jaxlab.deer import scan


def _inputs(layout, t, d, batch, key):
    k1, k2, k3 = jax.random.split(key, 3)
    if layout == "diag":
        a = jax.random.uniform(k1, (batch, t, d), jnp.float32, -0.99, 0.99)
    else:
        a = jax.random.normal(k1, (batch, t, d, d), jnp.float32) * (0.5 / d**0.5)
    b = jax.random.normal(k2, (batch, t, d), jnp.float32)
    return a, b, jax.random.normal(k3, (batch, d), jnp.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    timing.print_machine()
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if args.quick:
        cases = [("diag", 1000, 64), ("diag", 10_000, 64), ("dense", 1000, 4), ("dense", 10_000, 4)]
    else:
        cases = [
            ("diag", 1000, 64),
            ("diag", 10_000, 64),
            ("diag", 100_000, 64),
            ("diag", 10_000, 1024),
            ("dense", 1000, 4),
            ("dense", 10_000, 4),
            ("dense", 100_000, 4),
            ("dense", 10_000, 16),
            ("dense", 10_000, 32),
        ]
    rows = []
    for layout, t, d in cases:
        a, b, y0 = _inputs(layout, t, d, args.batch, jax.random.key(t + d))
        fns = {
            m: jax.jit(
                jax.vmap(
                    lambda a, b, y0, m=m, s=layout: scan.linear_recurrence(
                        a, b, y0, layout=s, method=m
                    )
                )
            )
            for m in scan.METHODS
        }
        res = {m: timing.time_fn(fn, a, b, y0) for m, fn in fns.items()}
        seq, par = res["sequential"], res["associative"]
        diff = float(np.max(np.abs(np.asarray(seq["out"]) - np.asarray(par["out"]))))
        rows.append(
            [
                layout,
                t,
                d,
                f"{1e3 * seq['best_s']:.3g}",
                f"{1e3 * par['best_s']:.3g}",
                f"{par['best_s'] / seq['best_s']:.3g}x",
                f"{seq['compile_s']:.2f} / {par['compile_s']:.2f}",
                f"{diff:.1e}",
            ]
        )
        print(" | ".join(map(str, rows[-1])), flush=True)
    header = [
        "layout",
        "T",
        "D",
        "scan best ms",
        "assoc best ms",
        "assoc/scan",
        "compile s scan / assoc",
        "max abs diff",
    ]
    print(f"\nbatch {args.batch}, float32, {jax.default_backend()}:\n")
    print(timing.markdown_table(header, rows))


if __name__ == "__main__":
    main()
