"""Parallel evaluation of nonlinear recurrences y_t = f(y_{t-1}, x_t; theta) by fixed-point sweeps.

Every mode writes the recurrence as a fixed point y = F(y), F_t(y) = f(y_{t-1}, x_t), and
improves a whole trajectory per sweep. Linearising at the current iterate y^(k),

    y^(k+1)_t = J_t y^(k+1)_{t-1} + f(y^(k)_{t-1}, x_t) - J_t y^(k)_{t-1},     y^(k+1)_0 = y_0,

is a linear time-varying recurrence, solved by :func:`jaxlab.deer.scan.linear_recurrence`
(associative scan, depth O(log T)). The modes differ in J_t:

======================  ==================================================================
``"newton"``            full Jacobian df/dy (DEER; quadratic convergence near the solution)
``"quasi"``             its diagonal (quasi-DEER; O(T D) scan, linear convergence)
``"block"``             its k x k diagonal blocks (``block_size``; exact for ParaRNN-style cells)
``"picard"``            zero: y^(k+1)_t = f(y^(k)_{t-1}, x_t) (Jacobi sweep, no scan)
``"constant"``/``"su"``  a fixed matrix (``A``, dense ``[D, D]`` or diagonal ``[D]``), Su's
                        constant-A perturbation sweep
``"damped"``            Levenberg-Marquardt step (ELK) via a parallel Kalman smoother,
                        :func:`jaxlab.deer.scan.damped_linear_recurrence`; ``"quasi_damped"``
                        uses diagonal Jacobians (a scalar smoother per dimension)
``"sequential"``        :func:`sequential`, the ``lax.scan`` reference
======================  ==================================================================

If y^(k)_{t-1} is exact, then y^(k+1)_t is exact, whatever J_t is: after k sweeps the first k
states are exact, so every undamped mode is exact after at most T sweeps. That is why iterates
can be guarded (NaN -> 0, clip to +-``clip``) without losing convergence, and why the solver
stops at T sweeps with ``converged=True`` for undamped modes.

Gradients come from implicit differentiation (a ``jax.custom_vjp``), never from the iterations:
at the fixed point y* = F(y*; theta, x, y_0), the adjoint lambda_t = ybar_t + J_{t+1}^T
lambda_{t+1} (lambda_{T+1} = 0, true Jacobians at y*) is one reverse linear scan, and
thetabar = sum_t (df/dtheta)_t^T lambda_t, xbar_t = (df/dx)_t^T lambda_t, y0bar = J_1^T lambda_1
come from one vmapped VJP of f. Cost: about one Newton sweep, independent of the number of forward
iterations. Supported transformations: ``jit``, ``vmap`` (the while loop runs until the slowest
element converges; ``iterations`` is per element), ``grad``/``vjp``. Forward mode (``jvp``,
``jacfwd``) is not supported through :func:`deer`. ``func`` must not close over values being
differentiated: pass them in ``params``.

References: Lim, Zhu, Selfridge, Kasim (2024), "Parallelizing non-linear sequential models over
the sequence length", ICLR (arXiv:2309.12252); Gonzalez, Warrington, Smith, Linderman (2024),
"Towards scalable and stable parallelization of nonlinear RNNs", NeurIPS (arXiv:2407.19115);
Su Jianlin (2023), https://kexue.fm/archives/9783.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxlab.array_types import Array, Bool, Float, Int
from jaxlab.deer.scan import block_diagonal, damped_linear_recurrence, linear_recurrence

MODES = (
    "newton",
    "quasi",
    "block",
    "picard",
    "constant",
    "damped",
    "quasi_damped",
    "sequential",
)
_ALIASES = {"su": "constant", "deer": "newton"}
_DAMPED = ("damped", "quasi_damped")

Cell = Callable[[Array, Any, Any], Array]


class DeerResult(NamedTuple):
    """Output of :func:`deer`.

    Attributes:
      value: The states y_1..y_T, ``[T, D]``.
      converged: True if the step test passed, or (undamped modes) T sweeps were done.
      iterations: Number of sweeps performed (0 for ``mode="sequential"``).
      max_step: max_t,i |y^(k)_t,i - y^(k-1)_t,i| of the last sweep (0 for sequential).
      trace: With ``full_trace=True``, every iterate y^(1)..y^(max_iter), ``[max_iter, T, D]``;
        entries past ``iterations`` repeat the final value. Otherwise None.
    """

    value: Float[Array, "T D"]
    converged: Bool[Array, ""]
    iterations: Int[Array, ""]
    max_step: Float[Array, ""]
    trace: Float[Array, "K T D"] | None = None


def default_tolerances(dtype) -> tuple[float, float]:
    """(atol, rtol) of the reference DEER code: (1e-4, 1e-3) float32, (1e-6, 1e-4) float64."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        return 1e-6, 1e-4
    if dtype == jnp.float32:
        return 1e-4, 1e-3
    raise TypeError(f"deer supports float32 and float64 states, got {dtype}")


def sequential(func: Cell, y0: Float[Array, " D"], xs: Any, params: Any) -> Float[Array, "T D"]:
    """The reference: y_t = func(y_{t-1}, x_t, params) by :func:`jax.lax.scan`.

    Args:
      func: One step, ``func(y_prev [D], x_t, params) -> y_t [D]``.
      y0: Initial state.
      xs: Inputs, a pytree whose leaves have leading time axis T.
      params: Parameters (any pytree), shared by all steps.

    Returns:
      The states y_1..y_T.
    """

    def step(y, x):
        y = func(y, x, params)
        return y, y

    return lax.scan(step, y0, xs)[1]


@dataclasses.dataclass(frozen=True)
class _Options:
    mode: str
    block_size: int | None
    sigmasq: Any
    max_iter: int
    atol: float
    rtol: float
    clip: float | None
    scan_method: str
    filter_only: bool = False
    full_trace: bool = False


def _canonical_mode(mode: str) -> str:
    mode = _ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES + tuple(_ALIASES)}, got {mode!r}")
    return mode


def _shift(y0, y):
    """y_0..y_{T-1} from y_0 and y_1..y_T."""
    return jnp.concatenate([y0[None], y[:-1]], axis=0)


def _eval(func, y_prev, xs, params):
    return jax.vmap(func, in_axes=(0, 0, None))(y_prev, xs, params)


def _jacobians(func, y_prev, xs, params):
    """J_t = df/dy at (y_{t-1}, x_t): ``[T, D, D]``."""
    return jax.vmap(jax.jacfwd(func), in_axes=(0, 0, None))(y_prev, xs, params)


def _linearisation(func, y_prev, xs, params, opts, A):
    """(J, structure) for the sweep of ``opts.mode`` (not picard)."""
    mode = opts.mode
    t, d = y_prev.shape
    if mode == "constant":
        if A.ndim == 1:
            return jnp.broadcast_to(A, (t, d)), "diag"
        return jnp.broadcast_to(A, (t, d, d)), "dense"
    jac = _jacobians(func, y_prev, xs, params)
    if mode in ("quasi", "quasi_damped"):
        return jnp.diagonal(jac, axis1=1, axis2=2), "diag"
    if mode == "block":
        if opts.block_size == 1:
            return jnp.diagonal(jac, axis1=1, axis2=2), "diag"
        return block_diagonal(jac, opts.block_size), "block"
    return jac, "dense"


def _matvec(jac, y, structure):
    if structure == "diag":
        return jac * y
    if structure == "dense":
        return jnp.einsum("tij,tj->ti", jac, y)
    t, g, k, _ = jac.shape
    return jnp.einsum("tgij,tgj->tgi", jac, y.reshape(t, g, k)).reshape(t, g * k)


def _guard(y, clip):
    if clip is None:
        return y
    y = jnp.nan_to_num(y, nan=0.0, posinf=clip, neginf=-clip)
    return jnp.clip(y, -clip, clip)


def _sweep(func, y0, xs, params, y, opts, A):
    """One fixed-point sweep y^(k) -> y^(k+1)."""
    y_prev = _shift(y0, y)
    fy = _eval(func, y_prev, xs, params)
    if opts.mode == "picard":
        return _guard(fy, opts.clip)
    jac, structure = _linearisation(func, y_prev, xs, params, opts, A)
    r = fy - _matvec(jac, y_prev, structure)
    if opts.mode in _DAMPED:
        y_new = damped_linear_recurrence(
            jac, r, y, y0, opts.sigmasq, structure=structure, filter_only=opts.filter_only
        )
    else:
        y_new = linear_recurrence(jac, r, y0, structure=structure, method=opts.scan_method)
    return _guard(y_new, opts.clip)


def _solve(func, y0, xs, params, A, yinit, opts) -> DeerResult:
    t = yinit.shape[0]
    exact_after_t = opts.mode not in _DAMPED

    def cond(carry):
        k, _, done, _, _ = carry
        return (k < opts.max_iter) & ~done

    def body(carry):
        k, y, _, _, trace = carry
        y_new = _sweep(func, y0, xs, params, y, opts, A)
        diff = jnp.abs(y_new - y)
        ok = jnp.all(diff <= opts.atol + opts.rtol * jnp.abs(y_new))
        if trace is not None:
            trace = trace.at[k].set(y_new)
        k = k + 1
        done = ok | (exact_after_t & (k >= t))
        return k, y_new, done, jnp.max(diff), trace

    trace = jnp.zeros((opts.max_iter,) + yinit.shape, yinit.dtype) if opts.full_trace else None
    init = (jnp.int32(0), yinit, jnp.bool_(False), jnp.array(jnp.inf, yinit.dtype), trace)
    k, y, done, step, trace = lax.while_loop(cond, body, init)
    if trace is not None:
        filled = jnp.arange(opts.max_iter, dtype=k.dtype)[:, None, None] < k
        trace = jnp.where(filled, trace, y[None])
    return DeerResult(y, done, k, step, trace)


def adjoint(
    func: Cell,
    y: Float[Array, "T D"],
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    ybar: Float[Array, "T D"],
    *,
    jac: Float[Array, "T D D"] | None = None,
    scan_method: str = "associative",
) -> tuple[Float[Array, " D"], Any, Any]:
    """Implicit-function VJP at a fixed point y = F(y): (y0bar, xsbar, paramsbar).

    Solves lambda_t = ybar_t + J_{t+1}^T lambda_{t+1}, lambda_{T+1} = 0, by one reverse
    linear scan with the transposed Jacobians, then pulls lambda back through one vmapped VJP of
    ``func`` at (y_{t-1}, x_t). Contains no loop over iterations.

    Args:
      func: The step function.
      y: The converged states y_1..y_T.
      y0: Initial state.
      xs: Inputs (pytree, leading axis T).
      params: Parameters.
      ybar: Cotangent of y.
      jac: Jacobians df/dy at (y_{t-1}, x_t), if already computed.
      scan_method: ``"associative"`` or ``"sequential"``.

    Returns:
      Cotangents for y0, xs and params.

    References: Lim et al. (2024), arXiv:2309.12252, Sec. 3.3 (gradients by the same scan).
    """
    y_prev = _shift(y0, y)
    if jac is None:
        jac = _jacobians(func, y_prev, xs, params)
    # lambda_t = J_{t+1}^T lambda_{t+1} + ybar_t: the last step has no successor.
    jac_t = jnp.swapaxes(jac[1:], 1, 2)
    jac_t = jnp.concatenate([jac_t, jnp.zeros_like(jac[:1])], axis=0)
    lam = linear_recurrence(
        jac_t, ybar, jnp.zeros_like(y0), structure="dense", reverse=True, method=scan_method
    )
    _, pullback = jax.vjp(lambda yp, x, p: _eval(func, yp, x, p), y_prev, xs, params)
    prev_bar, xs_bar, params_bar = pullback(lam)
    return prev_bar[0], xs_bar, params_bar


def deer(
    func: Cell,
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    *,
    mode: str = "newton",
    A: Float[Array, "*D D"] | None = None,
    block_size: int | None = None,
    sigmasq: float | Float[Array, ""] = 1e8,
    filter_only: bool = False,
    yinit: Float[Array, "T D"] | None = None,
    max_iter: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    clip: float | None = 1e8,
    memory_efficient: bool = False,
    scan_method: str = "associative",
    full_trace: bool = False,
) -> DeerResult:
    """Evaluates y_t = func(y_{t-1}, x_t, params), t = 1..T, by parallel fixed-point sweeps.

    Stops when |y^(k) - y^(k-1)| <= atol + rtol |y^(k)| elementwise, or after ``max_iter``
    sweeps. For undamped modes the iterate after T sweeps is exact (see the module docstring),
    so the loop also stops there, with ``converged=True``.

    Args:
      func: One step, ``func(y_prev [D], x_t, params) -> y_t [D]``, unbatched (vmap the call).
      y0: Initial state y_0 (float32 or float64).
      xs: Inputs, a pytree of float arrays with leading time axis T.
      params: Parameters (pytree), shared over time.
      mode: One of ``MODES`` (``"su"`` = ``"constant"``); see the module docstring.
      A: The fixed matrix of ``mode="constant"``: ``[D, D]`` or its diagonal ``[D]``.
      block_size: Block size k of ``mode="block"`` (divides D; 1 means diagonal).
      sigmasq: Damped modes: pseudo-observation variance 1/lambda (large = Newton).
      filter_only: Damped modes: iterate the Kalman filter means (the reference ELK code)
        instead of the exact LM step (smoother means).
      yinit: Initial guess y^(0) ``[T, D]``; default y_0 broadcast over time.
      max_iter: Sweep limit; default T (undamped) or 4T (damped).
      atol: Absolute tolerance; default 1e-4 (float32) / 1e-6 (float64), as in DEER.
      rtol: Relative tolerance; default 1e-3 (float32) / 1e-4 (float64).
      clip: Iterates are clipped to +-clip and NaN set to 0; None disables the guard.
      memory_efficient: Recompute the Jacobians in the backward pass instead of storing
        ``[T, D, D]`` residuals.
      scan_method: ``"associative"`` (parallel) or ``"sequential"`` linear solves; results
        agree, the sequential one is faster on CPU.
      full_trace: Also return every iterate in ``trace`` (memory max_iter * T * D; for
        diagnostics; see also :func:`deer_trace`).

    Returns:
      ``DeerResult(value, converged, iterations, max_step)``.

    Raises:
      ValueError: bad mode or missing ``A``/``block_size``.
      TypeError: states not float32/float64.

    Examples:
      >>> import jax.numpy as jnp
      >>> f = lambda y, x, p: jnp.tanh(p * y + x)
      >>> xs = jnp.linspace(-1.0, 1.0, 8)[:, None]
      >>> r = deer(f, jnp.zeros(1), xs, jnp.float32(0.5))
      >>> bool(jnp.allclose(r.value, sequential(f, jnp.zeros(1), xs, jnp.float32(0.5)), atol=1e-5))
      True

    References: Lim et al. (2024), arXiv:2309.12252; Gonzalez et al. (2024), arXiv:2407.19115.
    """
    mode = _canonical_mode(mode)
    y0 = jnp.asarray(y0)
    default_atol, default_rtol = default_tolerances(y0.dtype)
    if mode == "sequential":
        value = sequential(func, y0, xs, params)
        zero = jnp.zeros((), y0.dtype)
        return DeerResult(value, jnp.bool_(True), jnp.int32(0), zero)
    t = jax.tree_util.tree_leaves(xs)[0].shape[0]
    if mode == "constant":
        if A is None:
            raise ValueError('mode="constant" needs the matrix A')
        A = jnp.asarray(A, y0.dtype)
    else:
        A = jnp.zeros((), y0.dtype)
    if mode == "block" and not block_size:
        raise ValueError('mode="block" needs block_size')
    opts = _Options(
        mode=mode,
        block_size=block_size,
        sigmasq=sigmasq,
        max_iter=int(max_iter if max_iter is not None else (4 * t if mode in _DAMPED else t)),
        atol=float(default_atol if atol is None else atol),
        rtol=float(default_rtol if rtol is None else rtol),
        clip=clip,
        scan_method=scan_method,
        filter_only=filter_only,
        full_trace=full_trace,
    )
    if yinit is None:
        yinit = jnp.broadcast_to(y0, (t, y0.shape[0]))

    @jax.custom_vjp
    def solve(y0, xs, params, A, yinit):
        return _solve(func, y0, xs, params, A, yinit, opts)

    def solve_fwd(y0, xs, params, A, yinit):
        res = _solve(func, y0, xs, params, A, yinit, opts)
        jac = None
        if not memory_efficient:
            jac = _jacobians(func, _shift(y0, res.value), xs, params)
        return res, (res.value, y0, xs, params, jac, A, yinit)

    def solve_bwd(saved, g):
        y, y0, xs, params, jac, A, yinit = saved
        y0_bar, xs_bar, params_bar = adjoint(
            func, y, y0, xs, params, g.value, jac=jac, scan_method=scan_method
        )
        return y0_bar, xs_bar, params_bar, jnp.zeros_like(A), jnp.zeros_like(yinit)

    solve.defvjp(solve_fwd, solve_bwd)
    return solve(y0, xs, params, A, yinit)


def deer_trace(
    func: Cell,
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    *,
    num_iters: int,
    mode: str = "newton",
    A: Float[Array, "*D D"] | None = None,
    block_size: int | None = None,
    sigmasq: float | Float[Array, ""] = 1e8,
    filter_only: bool = False,
    yinit: Float[Array, "T D"] | None = None,
    clip: float | None = 1e8,
    scan_method: str = "associative",
) -> Float[Array, "K T D"]:
    """Every iterate y^(1)..y^(K) of a fixed number of sweeps (no stopping test).

    For diagnostics and plots (the first k states of y^(k) are exact). Differentiable by
    unrolling, which is what :func:`sweeps` uses; :func:`deer` is the solver.

    Args:
      func, y0, xs, params, mode, A, block_size, sigmasq, filter_only, yinit, clip,
        scan_method: as in :func:`deer` (``mode`` may not be ``"sequential"``).
      num_iters: K, the number of sweeps.

    Returns:
      The iterates, ``[K, T, D]``.
    """
    mode = _canonical_mode(mode)
    if mode == "sequential":
        raise ValueError("deer_trace needs an iterative mode")
    t = jax.tree_util.tree_leaves(xs)[0].shape[0]
    A = jnp.asarray(A, y0.dtype) if A is not None else jnp.zeros((), y0.dtype)
    opts = _Options(mode, block_size, sigmasq, num_iters, 0.0, 0.0, clip, scan_method, filter_only)
    if yinit is None:
        yinit = jnp.broadcast_to(y0, (t, y0.shape[0]))

    def step(y, _):
        y = _sweep(func, y0, xs, params, y, opts, A)
        return y, y

    return lax.scan(step, yinit, None, length=num_iters)[1]


def sweeps(
    func: Cell,
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    *,
    num_iters: int,
    mode: str = "constant",
    A: Float[Array, "*D D"] | None = None,
    yinit: Float[Array, "T D"] | None = None,
    scan_method: str = "associative",
) -> Float[Array, "T D"]:
    """Su's K-sweep model: the K-th iterate itself, differentiated by ordinary unrolling.

    With ``mode="constant"`` each sweep is a linear RNN with constant transition A,
    x^(n)_t - A x^(n)_{t-1} = f(x^(n-1)_{t-1}, u_t) - A x^(n-1)_{t-1}; K sweeps form a
    parameter-shared stack of K linear RNNs ("why insist on convergence?").

    Args:
      func, y0, xs, params, mode, A, yinit, scan_method: as in :func:`deer`.
      num_iters: K.

    Returns:
      y^(K), ``[T, D]``.

    References: Su Jianlin (2023), https://kexue.fm/archives/9783.
    """
    mode = _canonical_mode(mode)
    t = jax.tree_util.tree_leaves(xs)[0].shape[0]
    A = jnp.asarray(A, y0.dtype) if A is not None else jnp.zeros((), y0.dtype)
    opts = _Options(mode, None, 1e8, num_iters, 0.0, 0.0, None, scan_method)
    if yinit is None:
        yinit = jnp.broadcast_to(y0, (t, y0.shape[0]))
    body = lambda _, y: _sweep(func, y0, xs, params, y, opts, A)
    return lax.fori_loop(0, num_iters, body, yinit)
