"""Parallel evaluation of nonlinear recurrences y_t = f(y_{t-1}, x_t; theta) by fixed-point sweeps.

Every method writes the recurrence as a fixed point y = F(y), F_t(y) = f(y_{t-1}, x_t), and
improves a whole trajectory per sweep. Linearising at the current iterate y^(k),

    y^(k+1)_t = J_t y^(k+1)_{t-1} + f(y^(k)_{t-1}, x_t) - J_t y^(k)_{t-1},     y^(k+1)_0 = y_0,

is a linear time-varying recurrence, solved by :func:`jaxlab.deer.scan.linear_recurrence`
(associative scan, depth O(log T)). The methods (frozen solver objects, passed as ``method=``;
STYLE 2.4, selectors) differ in J_t:

===================  ====================================================================
:class:`Newton`      full Jacobian df/dy (DEER; quadratic convergence near the solution)
:class:`Quasi`       its diagonal (quasi-DEER; O(T D) scan, linear convergence)
:class:`Block`       its k x k diagonal blocks (exact Newton for ParaRNN-style cells)
:class:`Picard`      zero: y^(k+1)_t = f(y^(k)_{t-1}, x_t) (Jacobi sweep, no scan)
:class:`Constant`    a fixed matrix A (dense or diagonal): Su's constant-A perturbation sweep
:class:`Damped`      Levenberg-Marquardt step (ELK) via a parallel Kalman smoother,
                     :func:`jaxlab.deer.scan.damped_linear_recurrence`, with the trust
                     region sigma^2 adapted per sweep; ``quasi=True`` uses diagonal Jacobians
:class:`Sequential`  :func:`sequential`, the ``lax.scan`` reference
===================  ====================================================================

:func:`method_from_name` maps the names of ``METHODS`` (the config layer's ``mode`` strings)
to these objects.

If y^(k)_{t-1} is exact, then y^(k+1)_t is exact, whatever J_t is: after k sweeps the first k
states are exact, so every undamped method is exact after at most T sweeps (in exact
arithmetic). That is why iterates can be guarded (NaN -> 0, clip to +-``clip``).

**When is a result converged?** Not when a step is small: a damped step is small because the
damping is strong, and in float32 a chaotic trajectory is not determined by the recurrence at
all. :func:`deer` stops undamped sweeps when the step passes |y^(k) - y^(k-1)| <= atol +
rtol |y^(k)| (the reference DEER test) or after T sweeps, and damped sweeps when the
*residual* passes; then it checks the answer (``converged`` needs all three):

1. residual: |y_t - f(y_{t-1}, x_t)| <= 10 (atol + rtol |f|) elementwise (the step test of a
   slow linear method passes at 1x with a residual slightly above it; damped sweeps stop only
   when the residual passes at 1x);
   (checks 1-3 floor atol and rtol at 32 eps of the dtype: no check asks for less than the
   dtype resolves)
2. forward error: one Newton correction delta = L^-1 (f(y_prev) - y) at the result
   (L the bidiagonal operator of the true Jacobians) estimates y - y*; |delta| <= 10 (atol +
   rtol |y|) (10x: linearly converging methods stop with errors up to step / (1 - rate));
3. determinacy: kappa = |L^-1 u|_inf for random signs u (a lower bound on |L^-1|_inf, how
   much the recurrence amplifies rounding); kappa eps (1 + |y|_inf) <= atol + rtol |y|_inf.
   Where it fails (chaotic cells in float32), no method, ``lax.scan`` included, determines the
   trajectory to the tolerance, and ``converged`` is False whatever the sweeps did.

Checks 2-3 cost one dense Jacobian and one dense scan with two right-hand sides (``verify=True``,
the default; ``verify=False`` skips them for large D, where [T, D, D] does not fit).

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
Su Jianlin (2023), https://kexue.fm/archives/9783; Higham (2002), "Accuracy and Stability of
Numerical Algorithms", Sec. 15.3 (Hager's condition estimator); Nocedal & Wright (2006),
"Numerical Optimization", Sec. 10.3 (Levenberg-Marquardt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxlab.array_types import Array, Bool, Float, Int
from jaxlab.deer.methods import Damped, Method, Newton, Sequential, check_method
from jaxlab.deer.scan import linear_recurrence
from jaxlab.deer.sweep import (
    _eval,
    _init_state,
    _jacobians,
    _passes,
    _shift,
    _sweep,
    _verify,
)

Cell = Callable[[Array, Any, Any], Array]


class DeerResult(NamedTuple):
    """Output of :func:`deer`.

    Attributes:
      value: The states y_1..y_T, ``[T, D]``.
      converged: The stopping test passed (or T undamped sweeps were done) *and* the result
        passed the residual, forward-error and determinacy checks (module docstring).
      iterations: Number of sweeps performed, rejected damped sweeps included (0 for
        :class:`Sequential`).
      max_step: max_t,i |y^(k)_t,i - y^(k-1)_t,i| of the last sweep (0 for sequential).
      residual: max_t,i |y_t,i - f(y_{t-1}, x_t)_i| of the result.
      error_estimate: max |delta| of one Newton correction at the result (an estimate of the
        forward error; NaN with ``verify=False``).
      condition: kappa, the estimated amplification of rounding by the recurrence (NaN with
        ``verify=False``).
      trace: With ``full_trace=True``, every iterate y^(1)..y^(max_iter), ``[max_iter, T, D]``;
        entries past ``iterations`` repeat the final value. Otherwise None.
    """

    value: Float[Array, "T D"]
    converged: Bool[Array, ""]
    iterations: Int[Array, ""]
    max_step: Float[Array, ""]
    residual: Float[Array, ""]
    error_estimate: Float[Array, ""]
    condition: Float[Array, ""]
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
    max_iter: int
    atol: float
    rtol: float
    clip: float | None
    verify: bool
    full_trace: bool


def _solve(func, y0, xs, params, yinit, method, opts):
    """The sweeps and the checks: (DeerResult, Jacobians at the result or None)."""
    t = yinit.shape[0]
    damped = isinstance(method, Damped)
    exact_after_t = not damped

    def cond(carry):
        k, _, done, _, _ = carry
        return (k < opts.max_iter) & ~done

    def body(carry):
        k, state, _, _, trace = carry
        tol = (opts.atol, opts.rtol)
        new, damped_res = _sweep(func, y0, xs, params, state, method, opts.clip, tol)
        diff = jnp.abs(new.y - state.y)
        if damped:  # a small damped step is not convergence: test the residual
            rho, fy = damped_res
            ok = _passes(rho, fy, opts.atol, opts.rtol)
        else:
            ok = _passes(diff, new.y, opts.atol, opts.rtol)
        if trace is not None:
            trace = trace.at[k].set(new.y)
        k = k + 1
        done = ok | (exact_after_t & (k >= t))
        return k, new, done, jnp.max(diff), trace

    trace = jnp.zeros((opts.max_iter,) + yinit.shape, yinit.dtype) if opts.full_trace else None
    state = _init_state(method, yinit)
    init = (jnp.int32(0), state, jnp.bool_(False), jnp.array(jnp.inf, yinit.dtype), trace)
    k, state, done, step, trace = lax.while_loop(cond, body, init)
    y = state.y
    if trace is not None:
        filled = jnp.arange(opts.max_iter, dtype=k.dtype)[:, None, None] < k
        trace = jnp.where(filled, trace, y[None])
    fy = _eval(func, _shift(y0, y), xs, params)
    residual = jnp.max(jnp.abs(fy - y))
    # The checks cannot ask for less than the dtype resolves: tolerances floored at 32 eps.
    floor = 32 * float(jnp.finfo(y.dtype).eps)
    atol, rtol = max(opts.atol, floor), max(opts.rtol, floor)
    converged = done & _passes(fy - y, fy, 10 * atol, 10 * rtol)  # 10x: as the error check
    nan = jnp.array(jnp.nan, y.dtype)
    err, kappa, jac = nan, nan, None
    if opts.verify:
        scan = getattr(method, "scan", "associative")
        err, kappa, ok, jac = _verify(func, y0, xs, params, y, atol, rtol, scan, jax.random.key(0))
        converged &= ok
    return DeerResult(y, converged, k, step, residual, err, kappa, trace), jac


def adjoint(
    func: Cell,
    y: Float[Array, "T D"],
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    ybar: Float[Array, "T D"],
    *,
    jac: Float[Array, "T D D"] | None = None,
    scan: str = "associative",
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
      scan: ``"associative"`` or ``"sequential"``.

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
    lam = linear_recurrence(jac_t, ybar, jnp.zeros_like(y0), reverse=True, method=scan)
    _, pullback = jax.vjp(lambda yp, x, p: _eval(func, yp, x, p), y_prev, xs, params)
    prev_bar, xs_bar, params_bar = pullback(lam)
    return prev_bar[0], xs_bar, params_bar


def _length(xs):
    return jax.tree_util.tree_leaves(xs)[0].shape[0]


def deer(
    func: Cell,
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    *,
    method: Any = Newton(),  # a Method; Any so that a wrong type reaches the ValueError
    yinit: Float[Array, "T D"] | None = None,
    max_iter: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    clip: float | None = 1e8,
    verify: bool = True,
    memory_efficient: bool = False,
    full_trace: bool = False,
) -> DeerResult:
    """Evaluates y_t = func(y_{t-1}, x_t, params), t = 1..T, by parallel fixed-point sweeps.

    Undamped methods stop when |y^(k) - y^(k-1)| <= atol + rtol |y^(k)| elementwise, after T
    sweeps (the iterate is then exact in exact arithmetic), or after ``max_iter``; damped ones
    when the residual passes the same test. ``converged`` also needs the result to pass the
    residual, forward-error and determinacy checks of the module docstring.

    Args:
      func: One step, ``func(y_prev [D], x_t, params) -> y_t [D]``, unbatched (vmap the call).
      y0: Initial state y_0 (float32 or float64).
      xs: Inputs, a pytree of float arrays with leading time axis T.
      params: Parameters (pytree), shared over time.
      method: A solver object: :class:`Newton` (default), :class:`Quasi`, :class:`Block`,
        :class:`Picard`, :class:`Constant`, :class:`Damped` or :class:`Sequential`
        (:func:`method_from_name` maps config names to them).
      yinit: Initial guess y^(0) ``[T, D]``; default y_0 broadcast over time.
      max_iter: Sweep limit; default T (undamped) or 4T (damped).
      atol: Absolute tolerance; default 1e-4 (float32) / 1e-6 (float64), as in DEER.
      rtol: Relative tolerance; default 1e-3 (float32) / 1e-4 (float64).
      clip: Iterates are clipped to +-clip and NaN set to 0; None disables the guard.
      verify: Run the forward-error and determinacy checks (one dense Jacobian and scan).
      memory_efficient: Recompute the Jacobians in the backward pass instead of storing
        ``[T, D, D]`` residuals.
      full_trace: Also return every iterate in ``trace`` (memory max_iter * T * D).

    Returns:
      A :class:`DeerResult`.

    Raises:
      ValueError: ``method`` is not a solver object, or a bad option.
      TypeError: states not float32/float64.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxlab.deer import Quasi
      >>> f = lambda y, x, p: jnp.tanh(p * y + x)
      >>> xs = jnp.linspace(-1.0, 1.0, 8)[:, None]
      >>> r = deer(f, jnp.zeros(1), xs, jnp.float32(0.5), method=Quasi())
      >>> bool(r.converged)
      True
      >>> bool(jnp.allclose(r.value, sequential(f, jnp.zeros(1), xs, jnp.float32(0.5)), atol=1e-4))
      True

    References: Lim et al. (2024), arXiv:2309.12252; Gonzalez et al. (2024), arXiv:2407.19115.
    """
    check_method(method)
    y0 = jnp.asarray(y0)
    default_atol, default_rtol = default_tolerances(y0.dtype)
    atol = float(default_atol if atol is None else atol)
    rtol = float(default_rtol if rtol is None else rtol)
    if isinstance(method, Sequential):
        value = sequential(func, y0, xs, params)
        fy = _eval(func, _shift(y0, value), xs, params)
        zero, nan = jnp.zeros((), y0.dtype), jnp.array(jnp.nan, y0.dtype)
        residual = jnp.max(jnp.abs(fy - value))
        return DeerResult(value, jnp.bool_(True), jnp.int32(0), zero, residual, nan, nan)
    t = _length(xs)
    damped = isinstance(method, Damped)
    opts = _Options(
        max_iter=int(max_iter if max_iter is not None else (4 * t if damped else t)),
        atol=atol,
        rtol=rtol,
        clip=clip,
        verify=verify,
        full_trace=full_trace,
    )
    if yinit is None:
        yinit = jnp.broadcast_to(y0, (t, y0.shape[0]))
    scan = getattr(method, "scan", "associative")

    @jax.custom_vjp
    def solve(y0, xs, params, yinit):
        return _solve(func, y0, xs, params, yinit, method, opts)[0]

    def solve_fwd(y0, xs, params, yinit):
        res, jac = _solve(func, y0, xs, params, yinit, method, opts)
        if memory_efficient:
            jac = None
        elif jac is None:
            jac = _jacobians(func, _shift(y0, res.value), xs, params)
        return res, (res.value, y0, xs, params, jac, yinit)

    def solve_bwd(saved, g):
        y, y0, xs, params, jac, yinit = saved
        y0_bar, xs_bar, params_bar = adjoint(func, y, y0, xs, params, g.value, jac=jac, scan=scan)
        return y0_bar, xs_bar, params_bar, jnp.zeros_like(yinit)

    solve.defvjp(solve_fwd, solve_bwd)
    return solve(y0, xs, params, yinit)


def deer_trace(
    func: Cell,
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    *,
    num_iters: int,
    method: Any = Newton(),  # a Method; Any so that a wrong type reaches the ValueError
    yinit: Float[Array, "T D"] | None = None,
    clip: float | None = 1e8,
) -> Float[Array, "K T D"]:
    """Every iterate y^(1)..y^(K) of a fixed number of sweeps (no stopping test).

    For diagnostics and plots (the first k states of y^(k) are exact). Differentiable by
    unrolling, which is what :func:`sweeps` uses; :func:`deer` is the solver. Damped sweeps
    adapt sigma^2 as in :func:`deer` (a rejected sweep repeats the iterate).

    Args:
      func, y0, xs, params, method, yinit, clip: as in :func:`deer` (not :class:`Sequential`).
      num_iters: K, the number of sweeps.

    Returns:
      The iterates, ``[K, T, D]``.
    """
    check_method(method)
    if isinstance(method, Sequential):
        raise ValueError("deer_trace needs an iterative method, got Sequential()")
    if yinit is None:
        yinit = jnp.broadcast_to(y0, (_length(xs), y0.shape[0]))

    def step(state, _):
        state = _sweep(func, y0, xs, params, state, method, clip)[0]
        return state, state.y

    return lax.scan(step, _init_state(method, yinit), None, length=num_iters)[1]


def sweeps(
    func: Cell,
    y0: Float[Array, " D"],
    xs: Any,
    params: Any,
    *,
    num_iters: int,
    method: Method,
    yinit: Float[Array, "T D"] | None = None,
) -> Float[Array, "T D"]:
    """Su's K-sweep model: the K-th iterate itself, differentiated by ordinary unrolling.

    With ``method=Constant(A)`` each sweep is a linear RNN with constant transition A,
    x^(n)_t - A x^(n)_{t-1} = f(x^(n-1)_{t-1}, u_t) - A x^(n-1)_{t-1}; K sweeps form a
    parameter-shared stack of K linear RNNs ("why insist on convergence?").

    Args:
      func, y0, xs, params, method, yinit: as in :func:`deer`; no guard is applied.
      num_iters: K.

    Returns:
      y^(K), ``[T, D]``.

    References: Su Jianlin (2023), https://kexue.fm/archives/9783.
    """
    check_method(method)
    if isinstance(method, Sequential):
        raise ValueError("sweeps needs an iterative method, got Sequential()")
    if yinit is None:
        yinit = jnp.broadcast_to(y0, (_length(xs), y0.shape[0]))
    body = lambda _, s: _sweep(func, y0, xs, params, s, method, None)[0]
    return lax.fori_loop(0, num_iters, body, _init_state(method, yinit)).y
