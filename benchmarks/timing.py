"""Shared timing for benchmarks/*.py (STYLE 3): compile time apart, warm-up, median and best.

Run a benchmark as ``python benchmarks/<topic>.py [--quick]``; this file sits next to it and is
imported as ``timing``.
"""

from __future__ import annotations

import statistics
import time

import jax

from jaxlab.metrics import machine_info


def print_machine() -> dict:
    """Prints the machine block that heads every benchmark table and returns it."""
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return info


def time_fn(fn, *args, repeats: int = 5, warmup: int = 1, block: bool = True) -> dict:
    """Times ``fn(*args)`` with ``block_until_ready``.

    The first call is timed separately as ``compile_s`` (trace + compile + one run); then
    ``warmup`` untimed calls, then ``repeats`` timed calls. Pass ``block=False`` when ``fn``
    returns host data (e.g. lists of token ids): ``block_until_ready`` would walk every Python
    leaf and add its own cost to both sides of a comparison.

    Returns:
      dict(compile_s, median_s, best_s, out): ``out`` is the last output, for correctness checks.
    """
    sync = jax.block_until_ready if block else (lambda x: x)
    t0 = time.perf_counter()
    out = sync(fn(*args))
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        out = sync(fn(*args))
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = sync(fn(*args))
        times.append(time.perf_counter() - t0)
    return dict(compile_s=compile_s, median_s=statistics.median(times), best_s=min(times), out=out)


def markdown_table(header, rows) -> str:
    """A plain Markdown table for printing and pasting into BENCHMARKS.md."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
