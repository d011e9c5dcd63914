"""Parallel evaluation of nonlinear recurrences (DEER): Newton sweeps solved by associative scans.

Modules, by concept:

* ``scan``: linear recurrences ``h_t = A_t h_{t-1} + b_t`` by associative scan (dense, diagonal,
  block-diagonal) and the damped (Kalman-smoother) form used by ELK.
* ``solver``: :func:`deer` (Newton, quasi/diagonal, block, Picard, Su's constant-A, damped),
  implicit-differentiation gradients, :func:`deer_trace`, :func:`sweeps`, :func:`sequential`.
* ``cells``: pure RNN step functions (tanh RNN, GRU, diagonal GRU, LSTM) and their initialisers.
* ``layer``: :class:`ParallelRNN`, an NNX layer that evaluates a cell with DEER.
* ``seq_parallel``: the time axis split over devices with ``jax.shard_map``.

Example::

    from jaxlab import deer
    from jaxlab.deer import cells
    params = cells.init_gru(key, hidden=8, inputs=4)
    result = deer.deer(cells.gru, y0, xs, params)      # result.value: [T, 8]

References: Lim et al. (2024), arXiv:2309.12252 (DEER); Gonzalez et al. (2024), arXiv:2407.19115
(ELK); Su, kexue.fm/archives/9783.
"""

from jaxlab.deer import cells, layer, scan, seq_parallel, solver
from jaxlab.deer.layer import (
    ParallelRNN,
    ParallelRNNConfig,
)
from jaxlab.deer.solver import (
    MODES,
    Cell,
    DeerResult,
    adjoint,
    deer,
    deer_trace,
    default_tolerances,
    sequential,
    sweeps,
)

__all__ = [
    "scan",
    "solver",
    "cells",
    "layer",
    "seq_parallel",
    "MODES",
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
