"""XLA's static cost of one DEER sweep and of one linear scan: FLOPs and bytes accessed.

What a sweep costs follows from the equations (:mod:`jaxlab.deer.solver`): a dense Newton sweep
evaluates f and its [T, D, D] Jacobians (O(T D^2) for f, O(T D^3) for ``jax.jacfwd``: D
tangents through a D x D product) and runs the dense associative scan (about 2T combines of a
D x D product each, O(T D^3)); the diagonal scan of quasi-DEER costs O(T D). These functions
ask the compiler instead of trusting the algebra: they lower and compile the computation for
one sequence and read :meth:`jax.stages.Compiled.cost_analysis` (XLA's HloCostAnalysis, which
counts 2 m n k FLOPs per matmul and every elementwise op). No timing is involved, so the
figures are deterministic for a given jax/jaxlib version and backend.

References: XLA ``HloCostAnalysis``; Lim et al. (2024), arXiv:2309.12252, Sec. 3 (O(T n^3)
work of the dense scan).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array
from jaxlab.deer import sweep as _sweep
from jaxlab.deer.methods import Method
from jaxlab.deer.scan import linear_recurrence


def compiled_cost(fn, *args) -> dict[str, float]:
    """{"flops", "bytes"}: XLA's cost analysis of ``jax.jit(fn)`` compiled for ``args``.

    Args:
      fn: A function of arrays (jitted here).
      *args: Example arguments (shapes and dtypes are what count).

    Returns:
      FLOPs and bytes accessed of the whole compiled computation (NaN where the backend does
      not report them).
    """
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list | tuple):  # older jaxlibs return one dict per computation
        cost = cost[0] if cost else {}
    cost = cost or {}
    return {
        "flops": float(cost.get("flops", float("nan"))),
        "bytes": float(cost.get("bytes accessed", float("nan"))),
    }


def sweep_cost(func, y0: Array, xs: Any, params: Any, method: Method) -> dict[str, float]:
    """Cost of one undamped sweep of ``method`` for one sequence (f, Jacobians, linear solve).

    Args:
      func: The cell ``func(y_prev, x_t, params)``.
      y0: Initial state ``[D]``.
      xs: Inputs with leading time axis T.
      params: Cell parameters.
      method: An undamped solver object (:class:`~jaxlab.deer.Newton`, ``Quasi``, ...).

    Returns:
      ``compiled_cost`` of the sweep map y^(k) -> y^(k+1).
    """
    t = jax.tree_util.tree_leaves(xs)[0].shape[0]
    y = jnp.broadcast_to(y0, (t, y0.shape[0]))

    def one(y, xs, params, y0):
        state = _sweep._State(y, jnp.zeros((), y.dtype))
        return _sweep._sweep(func, y0, xs, params, state, method, None)[0].y

    return compiled_cost(one, y, xs, params, y0)


def scan_cost(layout: str, t: int, d: int, dtype=jnp.float32) -> dict[str, float]:
    """Cost of one associative :func:`~jaxlab.deer.scan.linear_recurrence` of T steps, size D.

    Args:
      layout: ``"dense"`` ([T, D, D] transitions) or ``"diag"`` ([T, D]).
      t: T.
      d: D.
      dtype: float32 or float64.

    Returns:
      ``compiled_cost`` of the scan.
    """
    shape = (t, d, d) if layout == "dense" else (t, d)
    a = jnp.zeros(shape, dtype)
    b = jnp.zeros((t, d), dtype)
    y0 = jnp.zeros((d,), dtype)
    return compiled_cost(lambda a, b, y0: linear_recurrence(a, b, y0, layout=layout), a, b, y0)
