"""Populations of random recurrences for DEER's convergence survey: draws, spectral radii, solves.

The sweep counts of DEER-style solvers depend on the drawn weights (above all on the spectral
radius of the recurrent matrix), so a single draw per (n, T, scale) cell says little: Su's
constant-A mode needs 26 sweeps on the draw of kexue.fm/archives/9783 at scale 0.5 and several
times that on another. This module draws whole populations of problems, reports each draw's
spectral radius, and solves a population as one vmapped, data-parallel batch
(:func:`jaxlab.sharding.pad_population`). Every call of :func:`jaxlab.deer.deer` made by the
survey lives here (:func:`make_solve`, :func:`trace_steps`, :func:`gradient_error`).

References: Lim, Zhu, Selfridge, Kasim (2024), arXiv:2309.12252 (DEER); Gonzalez et al. (2024),
arXiv:2407.19115 (quasi-DEER, ELK); Su Jianlin (2023), https://kexue.fm/archives/9783.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import sharding
from jaxlab.deer import cells, methods, solver

UNDAMPED = ("newton", "quasi", "picard", "su", "constant", "block")
LINEAR = ("quasi", "picard", "su", "constant", "damped", "quasi_damped")  # linearly converging


@dataclasses.dataclass(frozen=True)
class SurveyConfig:
    """Settings of :func:`survey_cell` (``config.survey`` of the deer_convergence experiment)."""

    cells: tuple[tuple[int, int, float], ...] = ((4, 2000, 0.5),)  # (n, T, scale) per cell
    num_seeds: int = 20  # random problems per cell
    modes: tuple[str, ...] = ("newton", "quasi", "picard", "su")
    su_max_scale: float = 10.0  # Su's constant-A mode only where scale <= this
    tol: float = 1e-10  # step tolerance (atol, rtol 0) of the sweep counts
    exact_seeds: int = 4  # problems per cell re-solved for the exactness check
    exact_tol_linear: float = 1e-12  # their tolerance in linearly converging modes
    sigmasq: float = 1e4  # damped modes

    def modes_at(self, scale: float) -> tuple[str, ...]:
        return tuple(m for m in self.modes if m != "su" or scale <= self.su_max_scale)


class CellSurvey(NamedTuple):
    """:func:`survey_cell`'s result for one (n, T, scale) cell.

    Attributes:
      radius: Spectral radius of each drawn W, ``[num_seeds]``.
      stats: Mode -> :class:`SolveStats` of ``[num_seeds]`` arrays at ``tol``.
      exact_error: Mode -> max error of the first ``exact_seeds`` problems solved at ``tol``
        (Newton) or ``exact_tol_linear`` (linearly converging modes).
    """

    radius: np.ndarray
    stats: dict
    exact_error: dict


class SolveStats(NamedTuple):
    """Per-problem outcome of one solve (leading population axis when batched).

    Attributes:
      iterations: Sweeps performed.
      converged: The solver's own verdict.
      error: max_t |y_t - y_t(lax.scan)|.
      hit_limit: The solve stopped at its sweep limit (T for undamped modes, where
        ``converged`` is true by the <= T property, not by the step test).
    """

    iterations: Any
    converged: Any
    error: Any
    hit_limit: Any


def su_matrix(cell: str, params) -> jax.Array:
    """Su's constant A: the tanh-RNN's own W, or (I + U_h / 2) / 2 for a GRU (gates at 1/2)."""
    if cell == "tanh":
        return params.W
    eye = jnp.eye(params.U.shape[-1], dtype=params.U.dtype)
    return 0.5 * (eye + 0.5 * params.U[..., 2, :, :])


def draw_population(
    cell: str, hidden: int, length: int, scale: float, num: int, *, dtype, key: jax.Array
):
    """``num`` random problems ``(params, xs)`` stacked on a leading axis.

    Member i uses ``fold_in(key, i)``: weights from ``cells.CELLS[cell]``'s initialiser at
    ``scale`` and inputs x_t ~ N(0, I) of shape ``[length, hidden]``.
    """

    def one(i):
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        params = cells.CELLS[cell][1](hidden, hidden, scale=scale, dtype=dtype, key=k1)
        return params, jax.random.normal(k2, (length, hidden)).astype(dtype)

    return jax.vmap(one)(jnp.arange(num))


def spectral_radius(cell: str, params) -> np.ndarray:
    """max |eig(A)| of Su's matrix A of every problem (float64 NumPy, leading axes kept)."""
    a = np.asarray(su_matrix(cell, params), np.float64)
    return np.max(np.abs(np.linalg.eigvals(a)), axis=-1)


def make_solve(
    cell: str,
    mode: str,
    *,
    tol: float | None = None,
    sigmasq: float = 1e8,
    scan_method: str = "associative",
) -> Callable:
    """One problem ``(params, xs) -> SolveStats`` for :func:`solve_population`.

    Args:
      cell: ``"tanh"`` or ``"gru"`` (a key of ``cells.CELLS``).
      mode: A DEER mode; ``"su"`` uses :func:`su_matrix`.
      tol: Step tolerance (atol, rtol 0); None for DEER's dtype defaults.
      sigmasq: Damped modes only.
      scan_method: Linear solves inside sweeps.
    """
    step = cells.CELLS[cell][0]
    tols = dict(atol=tol, rtol=0.0) if tol is not None else {}
    extra = dict(sigmasq=sigmasq) if "damped" in mode else {}

    def solve(params, xs):
        y0 = jnp.zeros((params.b.shape[-1],), xs.dtype)
        a = su_matrix(cell, params) if mode in ("su", "constant") else None
        method = methods.method_from_name(mode, A=a, scan=scan_method, **extra)
        res = solver.deer(step, y0, xs, params, method=method, **tols)
        ref = solver.sequential(step, y0, xs, params)
        limit = xs.shape[0] if mode in UNDAMPED else 4 * xs.shape[0]
        return SolveStats(
            res.iterations,
            res.converged,
            jnp.max(jnp.abs(res.value - ref)),
            res.iterations >= limit,
        )

    return solve


def solve_population(solve: Callable, params, xs, mesh: jax.sharding.Mesh) -> SolveStats:
    """``jit(vmap(solve))(params, xs)`` with the population axis split over ``data``.

    Sharded axis: axis 0 of every leaf of ``params`` and ``xs`` (one problem per row) and of every
    output. :func:`jaxlab.sharding.pad_population` pads the population to the device count and
    the padding is dropped. A vmapped ``while_loop`` freezes finished rows, so each row keeps its
    own sweep count and equals an unbatched solve. Returns NumPy arrays.
    """
    (params, xs), unpad = sharding.pad_population((params, xs), mesh, what="problems")
    fn = jax.jit(jax.vmap(solve), out_shardings=sharding.batch_sharding(mesh))
    return SolveStats(*(np.asarray(v) for v in jax.device_get(unpad(fn(params, xs)))))


def reference(cell: str, params, xs) -> np.ndarray:
    """The states y_1..y_T by ``lax.scan`` from y_0 = 0 (NumPy)."""
    y0 = jnp.zeros((params.b.shape[-1],), xs.dtype)
    return np.asarray(
        jax.jit(solver.sequential, static_argnums=0)(cells.CELLS[cell][0], y0, xs, params)
    )


def trace_steps(
    cell: str, mode: str, params, xs, num_iters: int, *, scan_method: str = "associative"
) -> tuple[np.ndarray, np.ndarray]:
    """Every iterate of ``num_iters`` sweeps from y = 0, and max |y^(k) - y^(k-1)| per sweep.

    Returns:
      ``(trace [num_iters, T, D], steps [num_iters])`` as NumPy arrays.
    """
    step = cells.CELLS[cell][0]
    y0 = jnp.zeros((params.b.shape[-1],), xs.dtype)
    a = su_matrix(cell, params) if mode in ("su", "constant") else None
    trace = jax.jit(
        lambda p, x: solver.deer_trace(
            step,
            y0,
            x,
            p,
            num_iters=num_iters,
            method=methods.method_from_name(mode, A=a, scan=scan_method),
        )
    )(params, xs)
    trace = np.asarray(trace)
    prev = np.concatenate([np.broadcast_to(np.asarray(y0), (1, *trace.shape[1:])), trace[:-1]])
    return trace, np.max(np.abs(trace - prev), axis=(1, 2))


def gradient_error(
    cell: str, params, xs, weights, *, tol: float = 1e-12, scan_method: str = "associative"
) -> float:
    """Relative max error of DEER's implicit gradient against BPTT through ``lax.scan``.

    The loss is sum(weights * sin(y)); the error is max over parameter leaves of
    max|g_deer - g_bptt| / max|g_bptt|. Newton mode, ``atol=tol``, ``rtol=0``.
    """
    step = cells.CELLS[cell][0]
    y0 = jnp.zeros((params.b.shape[-1],), xs.dtype)

    def loss(p, evaluate):
        return jnp.sum(weights * jnp.sin(evaluate(p)))

    def deer_value(q):
        return solver.deer(
            step, y0, xs, q, method=methods.Newton(scan=scan_method), atol=tol, rtol=0.0
        ).value

    g_deer = jax.jit(jax.grad(lambda p: loss(p, deer_value)))(params)
    g_bptt = jax.jit(jax.grad(lambda p: loss(p, lambda q: solver.sequential(step, y0, xs, q))))(
        params
    )
    return max(
        float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
        for a, b in zip(jax.tree.leaves(g_deer), jax.tree.leaves(g_bptt), strict=True)
    )


def survey_cell(
    cfg: SurveyConfig,
    hidden: int,
    length: int,
    scale: float,
    mesh: jax.sharding.Mesh,
    *,
    scan_method: str = "associative",
    key: jax.Array,
) -> CellSurvey:
    """Draws ``cfg.num_seeds`` float64 tanh-RNNs of one cell and solves them in every mode.

    Call under ``jax.enable_x64(True)``. The same draws are used by every mode, so sweep counts
    compare draw by draw.
    """
    params, xs = draw_population(
        "tanh", hidden, length, scale, cfg.num_seeds, dtype=jnp.float64, key=key
    )
    head = jax.tree.map(lambda a: a[: cfg.exact_seeds], (params, xs))
    stats, exact = {}, {}
    for mode in cfg.modes_at(scale):
        opts = dict(sigmasq=cfg.sigmasq, scan_method=scan_method)
        stats[mode] = solve_population(
            make_solve("tanh", mode, tol=cfg.tol, **opts), params, xs, mesh
        )
        if mode in LINEAR:
            tight = make_solve("tanh", mode, tol=cfg.exact_tol_linear, **opts)
            exact[mode] = float(solve_population(tight, *head, mesh).error.max())
        else:
            exact[mode] = float(stats[mode].error.max())  # Newton: every draw at tol
    return CellSurvey(spectral_radius("tanh", params), stats, exact)
