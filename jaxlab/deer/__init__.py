"""Parallel evaluation of nonlinear recurrences (DEER): Newton sweeps solved by associative scans.

Modules, by concept:

* ``scan``: linear recurrences ``h_t = A_t h_{t-1} + b_t`` by associative scan (dense, diagonal,
  block-diagonal) and the damped (Kalman-smoother) form used by ELK.
* ``methods``: the solver objects passed as ``method=`` (:class:`Newton`, :class:`Quasi`,
  :class:`Block`, :class:`Picard`, :class:`Constant` (Su's constant A), :class:`Damped` (ELK),
  :class:`Sequential`) and :func:`method_from_name`, the config layer's map from ``METHODS``.
* ``solver``: :func:`deer` (sweeps, then residual / forward-error / determinacy checks),
  implicit-differentiation gradients, :func:`deer_trace`, :func:`sweeps`, :func:`sequential`.
* ``sweep``: one sweep of each method (internal to ``solver``) and the result checks.
* ``cost``: XLA's static cost (FLOPs, bytes) of one sweep and of one scan.
* ``cells``: pure RNN step functions (tanh RNN, GRU, diagonal GRU, LSTM) and their initialisers.
* ``layer``: :class:`ParallelRNN`, an NNX layer that evaluates a cell with DEER.
* ``seq_parallel``: the time axis split over devices with ``jax.shard_map``.

Example::

    from jaxlab import deer
    from jaxlab.deer import cells
    params = cells.init_gru(key, hidden=8, inputs=4)
    result = deer.deer(cells.gru, y0, xs, params)      # Newton; result.value: [T, 8]
    damped = deer.deer(cells.gru, y0, xs, params, method=deer.Damped(sigmasq=1e2))

References: Lim et al. (2024), arXiv:2309.12252 (DEER); Gonzalez et al. (2024), arXiv:2407.19115
(ELK); Su, kexue.fm/archives/9783.
"""

from jaxlab.deer import cells, cost, layer, methods, scan, seq_parallel, solver, sweep
from jaxlab.deer.layer import (
    ParallelRNN,
    ParallelRNNConfig,
)
from jaxlab.deer.methods import (
    METHODS,
    Block,
    Constant,
    Damped,
    Method,
    Newton,
    Picard,
    Quasi,
    Sequential,
    method_from_name,
)
from jaxlab.deer.solver import (
    Cell,
    DeerResult,
    adjoint,
    deer,
    deer_trace,
    default_tolerances,
    sequential,
    sweeps,
)
from jaxlab.deer.sweep import SIGMASQ_CAP

__all__ = [
    "scan",
    "methods",
    "solver",
    "sweep",
    "cost",
    "cells",
    "layer",
    "seq_parallel",
    "METHODS",
    "Method",
    "Newton",
    "Quasi",
    "Block",
    "Picard",
    "Constant",
    "Damped",
    "Sequential",
    "method_from_name",
    "SIGMASQ_CAP",
    "Cell",
    "DeerResult",
    "default_tolerances",
    "sequential",
    "adjoint",
    "deer",
    "deer_trace",
    "sweeps",
    "ParallelRNNConfig",
    "ParallelRNN",
]
