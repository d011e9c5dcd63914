"""Sequence parallelism: linear recurrences and DEER with the time axis split across devices.

Each device holds a contiguous chunk of T/P steps. A linear recurrence is solved in three
phases inside :func:`jax.shard_map`:

1. local associative scan from a zero state: y_t = A^cum_t c_p + b^cum_t, where c_p is the
   (unknown) state entering chunk p;
2. carry exchange: all-gather the chunk summaries (A^cum_last, b^cum_last), P small affine maps,
   and fold them from y_0 to get every c_p (a P-step sequential scan, identical on all devices);
3. fix-up: apply c_p to the local prefixes.

A DEER sweep additionally needs y_{t-1} across the chunk boundary, sent to the right neighbour
by ``ppermute``; the stopping test is a ``pmax`` of the local steps. None of the reference DEER
implementations split the sequence; the result equals the single-device one.

Meshes here are 1-D with an ``Auto`` axis type (STYLE 2.8: Auto first; shardings are placed at
the shard_map boundary, so callers need not pre-shard inputs).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxlab.array_types import Array, Float
from jaxlab.deer import solver
from jaxlab.deer.methods import Newton, Picard, Quasi
from jaxlab.deer.scan import combine_dense, combine_diag, einsum


def _apply(a, y, layout):
    return a * y if layout == "diag" else einsum("...ij,...j->...i", a, y)


def _local_linear(a, b, y0, axis, layout):
    """Phases 1-3 on one chunk (inside shard_map); y0 is the global initial state."""
    combine = combine_diag if layout == "diag" else combine_dense
    a_cum, b_cum = lax.associative_scan(combine, (a, b))
    all_a = lax.all_gather(a_cum[-1], axis)
    all_b = lax.all_gather(b_cum[-1], axis)

    def fold(y, ab):
        y_next = _apply(ab[0], y, layout) + ab[1]
        return y_next, y  # emit the state *entering* each chunk

    # The gathered summaries are typed as varying over the axis, so the carry must be too.
    _, carries = lax.scan(fold, lax.pcast(y0, (axis,), to="varying"), (all_a, all_b))
    carry = carries[lax.axis_index(axis)]
    return _apply(a_cum, carry[None], layout) + b_cum


def _check_divisible(t, mesh, axis):
    p = mesh.shape[axis]
    if t % p:
        raise ValueError(
            f"sequence length {t} is not divisible by the {p} devices of axis {axis!r}"
        )


def linear_recurrence_sharded(
    A: Float[Array, "T ..."],
    b: Float[Array, "T D"],
    y0: Float[Array, " D"],
    *,
    mesh: jax.sharding.Mesh,
    axis: str = "seq",
    layout: str = "dense",
) -> Float[Array, "T D"]:
    """Solves y_t = A_t y_{t-1} + b_t with time sharded over ``mesh[axis]``.

    Equals :func:`jaxlab.deer.scan.linear_recurrence` (forward). Local work O(T/P) scan per device
    plus a P-element carry fold.

    Args:
      A: ``[T, D, D]`` (dense) or ``[T, D]`` (diag); T divisible by the axis size.
      b: ``[T, D]``.
      y0: Initial state.
      mesh: A mesh with axis ``axis`` (see :func:`jaxlab.sharding.sequence_mesh`).
      axis: Mesh axis that splits time.
      layout: ``"dense"`` or ``"diag"``.

    Returns:
      y_1..y_T, sharded along time.

    References: Blelloch (1990); Lim et al. (2024), arXiv:2309.12252 (the scan being split).
    """
    if layout not in ("dense", "diag"):
        raise ValueError(f"sharded recurrences support dense or diag, got {layout!r}")
    _check_divisible(b.shape[0], mesh, axis)
    fn = functools.partial(_local_linear, axis=axis, layout=layout)
    return jax.shard_map(fn, mesh=mesh, in_specs=(P(axis), P(axis), P()), out_specs=P(axis))(
        A, b, y0
    )


def _local_deer(y0, xs, params, yinit, *, func, method, axis, max_iter, atol, rtol, clip, t):
    num = lax.axis_size(axis)
    idx = lax.axis_index(axis)
    right = [(i, i + 1) for i in range(num - 1)]

    def sweep(y):
        from_left = lax.ppermute(y[-1], axis, right)
        first = jnp.where(idx == 0, y0, from_left)
        y_prev = jnp.concatenate([first[None], y[:-1]])
        fy = jax.vmap(func, in_axes=(0, 0, None))(y_prev, xs, params)
        if isinstance(method, Picard):
            return fy
        jac = jax.vmap(jax.jacfwd(func), in_axes=(0, 0, None))(y_prev, xs, params)
        layout = "dense"
        if isinstance(method, Quasi):
            jac, layout = jnp.diagonal(jac, axis1=1, axis2=2), "diag"
        r = fy - _apply(jac, y_prev, layout)
        return _local_linear(jac, r, y0, axis, layout)

    def guard(y):
        if clip is None:
            return y
        return jnp.clip(jnp.nan_to_num(y, nan=0.0, posinf=clip, neginf=-clip), -clip, clip)

    def cond(carry):
        k, _, done, _ = carry
        return (k < max_iter) & ~done

    def body(carry):
        k, y, _, _ = carry
        y_new = guard(sweep(y))
        diff = jnp.abs(y_new - y)
        excess = lax.pmax(jnp.max(diff - (atol + rtol * jnp.abs(y_new))), axis)
        k = k + 1
        return k, y_new, (excess <= 0) | (k >= t), lax.pmax(jnp.max(diff), axis)

    init = (jnp.int32(0), yinit, jnp.bool_(False), jnp.array(jnp.inf, yinit.dtype))
    k, y, done, step = lax.while_loop(cond, body, init)
    from_left = lax.ppermute(y[-1], axis, right)
    y_prev = jnp.concatenate([jnp.where(idx == 0, y0, from_left)[None], y[:-1]])
    fy = jax.vmap(func, in_axes=(0, 0, None))(y_prev, xs, params)
    rho = fy - y
    bad = lax.pmax(jnp.max(jnp.abs(rho) - 10 * (atol + rtol * jnp.abs(fy))), axis)
    residual = lax.pmax(jnp.max(jnp.abs(rho)), axis)
    nan = jnp.array(jnp.nan, y.dtype)
    return y, done & (bad <= 0), k, step, residual, nan, nan


def deer_sharded(
    func: solver.Cell,
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    *,
    mesh: jax.sharding.Mesh,
    axis: str = "seq",
    method: Newton | Quasi | Picard = Newton(),
    yinit: Float[Array, "T D"] | None = None,
    max_iter: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    clip: float | None = 1e8,
) -> solver.DeerResult:
    """:func:`jaxlab.deer.deer` with the time axis split across ``mesh[axis]``.

    Same sweeps, stopping test and <= T stop as the single-device solver, for the methods
    :class:`~jaxlab.deer.Newton`, :class:`~jaxlab.deer.Quasi` and :class:`~jaxlab.deer.Picard`
    (their ``scan`` option is ignored: the local solves are associative). Forward only: it has
    no custom gradient (differentiate the single-device :func:`jaxlab.deer.deer`).
    ``converged`` needs the step test (or T sweeps) and the residual test
    max_t |y_t - f(y_{t-1}, x_t)| <= 10 (atol + rtol |f|); the forward-error and determinacy checks
    of :func:`jaxlab.deer.deer` are not run here (``error_estimate``/``condition`` are NaN).

    Args:
      func, y0, xs, params, yinit, max_iter, atol, rtol, clip: as in :func:`jaxlab.deer.deer`.
      mesh: Mesh with axis ``axis``; T must be divisible by its size.
      axis: Mesh axis that splits time.
      method: ``Newton()``, ``Quasi()`` or ``Picard()``.

    Returns:
      A :class:`jaxlab.deer.DeerResult` whose ``value`` is sharded along time.
    """
    if not isinstance(method, (Newton, Quasi, Picard)):
        raise ValueError(f"deer_sharded supports Newton, Quasi, Picard; got {method!r}")
    t = jax.tree_util.tree_leaves(xs)[0].shape[0]
    _check_divisible(t, mesh, axis)
    default_atol, default_rtol = solver.default_tolerances(y0.dtype)
    if yinit is None:
        yinit = jnp.broadcast_to(y0, (t, y0.shape[0]))
    fn = functools.partial(
        _local_deer,
        func=func,
        method=method,
        axis=axis,
        max_iter=int(t if max_iter is None else max_iter),
        atol=float(default_atol if atol is None else atol),
        rtol=float(default_rtol if rtol is None else rtol),
        clip=clip,
        t=t,
    )
    out = jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=(P(), P(axis), P(), P(axis)),
        out_specs=(P(axis), P(), P(), P(), P(), P(), P()),
    )(y0, xs, params, yinit)
    return solver.DeerResult(*out)
