"""Linear recurrences h_t = A_t h_{t-1} + b_t: associative (parallel) scan and sequential reference.

Three layouts (``layout=``, ``LAYOUTS``) of the transition ``A_t``:

* ``"dense"``: ``A`` has shape ``[T, D, D]``; combining costs a D x D matmul.
* ``"diag"``: ``A`` has shape ``[T, D]`` (the diagonal); combining is elementwise.
* ``"block"``: ``A`` has shape ``[T, D // k, k, k]`` (k x k blocks on the diagonal); combining
  is a batch of small matmuls.

The parallel path uses only the public :func:`jax.lax.associative_scan`; the sequential path is
:func:`jax.lax.scan` and serves as the reference. On CPU the sequential scan is faster (the
associative scan does about twice the work and the dense one multiplies matrices); the
associative scan pays off on accelerators with long sequences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxlab.array_types import Array, Float

LAYOUTS = ("dense", "diag", "block")
# Sizes n for which combine_dense multiplies by broadcasting instead of a batched dot (CPU).
BROADCAST_DENSE = (4, 5, 6)
METHODS = ("associative", "sequential")
# Precision of every matrix product in the scans (and of DEER's J_t y_{t-1}). XLA's default on
# GPU multiplies float32 in TF32 (10 mantissa bits, relative error ~5e-4): the Newton iterate
# then jitters above DEER's float32 tolerance (rtol 1e-3 at |y| ~ 1 leaves no margin once the
# rounding compounds over log2 T combine levels) and the stopping test fails until the T-sweep
# limit (benchmarks/deer.py --profile --emulate-tf32 shows it on CPU). HIGHEST is full float32.
PRECISION = lax.Precision.HIGHEST


def einsum(subscripts: str, *operands: Array) -> Array:
    """:func:`jax.numpy.einsum` at :data:`PRECISION` (full float32 on GPU/TPU, not TF32/bf16).

    Every matrix product of the DEER scans goes through this function.
    """
    return jnp.einsum(subscripts, *operands, precision=PRECISION)


def combine_dense(
    earlier: tuple[Float[Array, "*T D D"], Float[Array, "*T D"]],
    later: tuple[Float[Array, "*T D D"], Float[Array, "*T D"]],
) -> tuple[Float[Array, "*T D D"], Float[Array, "*T D"]]:
    """Composes affine maps h -> A h + b: first ``earlier``, then ``later``.

    (A_e, b_e) then (A_l, b_l) -> (A_l A_e, A_l b_e + b_l). Associative, not commutative.

    Args:
      earlier: ``(A_e, b_e)``, possibly with leading batch axes (as inside an associative scan).
      later: ``(A_l, b_l)`` with the same leading axes.

    Returns:
      The composed map ``(A, b)``.

    References: Blelloch (1990), "Prefix sums and their applications".
    """
    a_e, b_e = earlier
    a_l, b_l = later
    if a_l.shape[-1] in BROADCAST_DENSE and jax.default_backend() == "cpu":
        # One fused elementwise multiply-and-reduce instead of a batched dot of [T/2^k, n, n]
        # operands: XLA:CPU's batched dot is 2x slower than this at n = 4-6 (and faster at
        # n = 2, 3, 8, 12; benchmarks/deer.py --profile). Not measured on accelerators.
        a = jnp.sum(a_l[..., :, :, None] * a_e[..., None, :, :], axis=-2)
        b = jnp.sum(a_l * b_e[..., None, :], axis=-1) + b_l
        return a, b
    a = einsum("...ij,...jk->...ik", a_l, a_e)
    b = einsum("...ij,...j->...i", a_l, b_e) + b_l
    return a, b


def combine_diag(
    earlier: tuple[Float[Array, "*T D"], Float[Array, "*T D"]],
    later: tuple[Float[Array, "*T D"], Float[Array, "*T D"]],
) -> tuple[Float[Array, "*T D"], Float[Array, "*T D"]]:
    """Composes diagonal affine maps: (a_e, b_e) then (a_l, b_l) -> (a_l a_e, a_l b_e + b_l).

    Args:
      earlier: ``(a_e, b_e)``: diagonal transition and offset.
      later: ``(a_l, b_l)``.

    Returns:
      The composed map ``(a, b)``.

    References: Blelloch (1990), "Prefix sums and their applications".
    """
    a_e, b_e = earlier
    a_l, b_l = later
    return a_l * a_e, a_l * b_e + b_l


def combine_block(
    earlier: tuple[Float[Array, "*T G K K"], Float[Array, "*T G K"]],
    later: tuple[Float[Array, "*T G K K"], Float[Array, "*T G K"]],
) -> tuple[Float[Array, "*T G K K"], Float[Array, "*T G K"]]:
    """Composes block-diagonal affine maps, G independent k x k blocks; same rule as dense.

    Args:
      earlier: ``(A_e, b_e)`` with ``A_e`` of shape ``[..., G, k, k]`` and ``b_e`` ``[..., G, k]``.
      later: ``(A_l, b_l)``.

    Returns:
      The composed map ``(A, b)``.

    References: Blelloch (1990), "Prefix sums and their applications".
    """
    return combine_dense(earlier, later)


def _apply(a, y, layout):
    """A @ y for one step (no time axis)."""
    if layout == "diag":
        return a * y
    if layout == "dense":
        return einsum("ij,j->i", a, y)
    g, k = a.shape[0], a.shape[1]
    return einsum("gij,gj->gi", a, y.reshape(g, k)).reshape(g * k)


def _check(a, b, y0, layout, method):
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t, d = b.shape
    want = {"dense": (t, d, d), "diag": (t, d)}.get(layout)
    if layout == "block":
        if a.ndim != 4 or a.shape[2] != a.shape[3] or a.shape[1] * a.shape[2] != d:
            raise ValueError(f"block A must have shape [T, D//k, k, k] with D={d}, got {a.shape}")
    elif a.shape != want:
        raise ValueError(f"{layout} A must have shape {want}, got {a.shape}")
    if y0.shape != (d,):
        raise ValueError(f"y0 must have shape ({d},), got {y0.shape}")


def linear_recurrence(
    A: Float[Array, "T ..."],
    b: Float[Array, "T D"],
    y0: Float[Array, " D"],
    *,
    layout: str = "dense",
    reverse: bool = False,
    method: str = "associative",
) -> Float[Array, "T D"]:
    """Solves y_t = A_t y_{t-1} + b_t for t = 1..T (or backwards in time) given y_0.

    Forward: y_t = A_t y_{t-1} + b_t, t = 1..T, from y_0. With ``reverse=True``:
    y_t = A_t y_{t+1} + b_t, t = T..1, from y_{T+1} = ``y0`` (the adjoint recurrence of DEER,
    with ``A_t`` the transposed Jacobians).

    The initial state is folded into the first element, b_1 <- A_1 y_0 + b_1, and the elements
    (A_t, b_t) are combined by :func:`combine_dense` (or the diag/block variant) in an
    associative scan; the offset of the prefix ending at t is y_t. Depth O(log T); work
    O(T D^3) dense, O(T D) diagonal, O(T D k^2) block.

    Args:
      A: Transitions: ``[T, D, D]`` (dense), ``[T, D]`` (diag) or ``[T, D//k, k, k]`` (block).
      b: Offsets ``[T, D]``.
      y0: Boundary state (before step 1, or after step T when ``reverse``).
      layout: ``"dense"``, ``"diag"`` or ``"block"``.
      reverse: Run backwards in time.
      method: ``"associative"`` (:func:`jax.lax.associative_scan`) or ``"sequential"``
        (:func:`jax.lax.scan`, the reference).

    Returns:
      The states y_1..y_T, shape ``[T, D]``.

    Raises:
      ValueError: on an unknown layout/method or inconsistent shapes.

    Examples:
      >>> import jax.numpy as jnp
      >>> a = jnp.full((3, 1), 2.0); b = jnp.ones((3, 1))
      >>> linear_recurrence(a, b, jnp.zeros(1), layout="diag").ravel().tolist()
      [1.0, 3.0, 7.0]

    References: Blelloch (1990), "Prefix sums and their applications"; Martin & Cundy (2018),
    "Parallelizing linear recurrent neural nets over sequence length" (arXiv:1709.04057).
    """
    _check(A, b, y0, layout, method)
    t, d = b.shape
    if method == "sequential":

        def step(y, ab):
            a_t, b_t = ab
            y = _apply(a_t, y, layout) + b_t
            return y, y

        _, ys = lax.scan(step, y0, (A, b), reverse=reverse)
        return ys

    first = t - 1 if reverse else 0
    b = b.at[first].add(_apply(A[first], y0, layout))
    if layout == "block":
        g, k = A.shape[1], A.shape[2]
        _, ys = lax.associative_scan(combine_block, (A, b.reshape(t, g, k)), reverse=reverse)
        return ys.reshape(t, d)
    fn = combine_diag if layout == "diag" else combine_dense
    # With reverse=True, associative_scan still calls fn(earlier, later) in *scan* order, i.e.
    # "earlier" is the element at the larger time index, which is what the adjoint needs.
    _, ys = lax.associative_scan(fn, (A, b), reverse=reverse)
    return ys


def block_diagonal(A: Float[Array, "T D D"], block_size: int) -> Float[Array, "T G K K"]:
    """Extracts the k x k diagonal blocks of dense matrices: ``[T, D, D] -> [T, D//k, k, k]``.

    Args:
      A: Dense matrices; D must be divisible by ``block_size``.
      block_size: k.

    Returns:
      The diagonal blocks.
    """
    t, d, _ = A.shape
    if d % block_size:
        raise ValueError(f"block_size {block_size} does not divide D={d}")
    g = d // block_size
    blocks = A.reshape(t, g, block_size, g, block_size)
    idx = jnp.arange(g)
    return blocks[:, idx, :, idx, :].transpose(1, 0, 2, 3)


def transpose_layout(A: Array, layout: str) -> Array:
    """Transposes each transition matrix (identity for ``"diag"``)."""
    if layout == "diag":
        return A
    return jnp.swapaxes(A, -1, -2)


def _filter_combine(earlier, later):
    """Combines parallel Kalman filter elements (A, b, C, eta, J); earlier then later."""
    a_i, b_i, c_i, eta_i, j_i = earlier
    a_j, b_j, c_j, eta_j, j_j = later
    eye = jnp.broadcast_to(jnp.eye(a_i.shape[-1], dtype=a_i.dtype), a_i.shape)
    mv = lambda m, v: einsum("...ij,...j->...i", m, v)
    mm = lambda m, n: einsum("...ij,...jk->...ik", m, n)
    tr = lambda m: jnp.swapaxes(m, -1, -2)
    # M = (I + C_i J_j)^{-1};  (I + J_j C_i)^{-1} = M^T since C and J are symmetric.
    m_t = jnp.linalg.inv(eye + mm(j_j, c_i))  # M^T (inv compiles faster than solve)
    a_jm = mm(a_j, tr(m_t))
    a = mm(a_jm, a_i)
    b = mv(a_jm, b_i + mv(c_i, eta_j)) + b_j
    c = mm(mm(a_jm, c_i), tr(a_j)) + c_j
    a_i_m = mm(tr(a_i), m_t)
    eta = mv(a_i_m, eta_j - mv(j_j, b_i)) + eta_i
    j = mm(mm(a_i_m, j_j), a_i) + j_i
    return a, b, c, eta, j


def _damped_dense(jac, r, y_obs, y0, sigmasq, filter_only):
    t, d = r.shape
    eye = jnp.eye(d, dtype=r.dtype)
    kappa = 1.0 / (1.0 + sigmasq)  # Kalman gain K = kappa I  (Q = H = I, R = sigmasq I)
    # The known y_0 enters as the first step's offset; its transition is then zero.
    f = jac.at[0].set(jnp.zeros_like(jac[0]))
    c = r.at[0].add(einsum("ij,j->i", jac[0], y0))
    innov = y_obs - c
    a_el = (1.0 - kappa) * f
    b_el = c + kappa * innov
    c_el = jnp.broadcast_to((1.0 - kappa) * eye, (t, d, d))
    eta_el = kappa * einsum("tji,tj->ti", f, innov)
    j_el = kappa * einsum("tki,tkj->tij", f, f)
    _, m, p, _, _ = lax.associative_scan(_filter_combine, (a_el, b_el, c_el, eta_el, j_el))
    if filter_only:
        return m
    # RTS smoother: x_t = E_t x_{t+1} + g_t with E_t = P_t F^T (F P_t F^T + I)^{-1}, F = F_{t+1}.
    f_next, c_next, p_cur, m_cur = jac[1:], r[1:], p[:-1], m[:-1]
    fp = einsum("tij,tjk->tik", f_next, p_cur)
    g_mat = einsum("tij,tkj->tik", fp, f_next) + eye[None]
    e = jnp.swapaxes(einsum("tij,tjk->tik", jnp.linalg.inv(g_mat), fp), 1, 2)
    g = m_cur - einsum("tij,tj->ti", e, einsum("tij,tj->ti", f_next, m_cur) + c_next)
    e = jnp.concatenate([e, jnp.zeros_like(e[:1])], axis=0)
    g = jnp.concatenate([g, m[-1:]], axis=0)
    return linear_recurrence(e, g, jnp.zeros_like(y0), layout="dense", reverse=True)


def damped_linear_recurrence(
    A: Float[Array, "T ..."],
    b: Float[Array, "T D"],
    y_obs: Float[Array, "T D"],
    y0: Float[Array, " D"],
    sigmasq: float | Float[Array, ""],
    *,
    layout: str = "dense",
    filter_only: bool = False,
) -> Float[Array, "T D"]:
    """Minimises sum_t |y_t - A_t y_{t-1} - b_t|^2 + (1/sigmasq) sum_t |y_t - y_obs_t|^2.

    The Levenberg-Marquardt step of ELK: a linear-Gaussian state-space model with dynamics
    y_t ~ N(A_t y_{t-1} + b_t, I) and pseudo-observations y_obs_t ~ N(y_t, sigmasq I); the
    minimiser is the smoother mean. Filtering uses the associative elements (A, b, C, eta, J)
    of Sarkka & Garcia-Fernandez; smoothing is the reverse linear recurrence
    x_t = E_t x_{t+1} + g_t. As sigmasq -> inf it tends to :func:`linear_recurrence`.

    Args:
      A: Transitions ``[T, D, D]`` (dense) or ``[T, D]`` (diag: D independent scalar problems).
      b: Offsets ``[T, D]``.
      y_obs: Pseudo-observations (the current iterate) ``[T, D]``.
      y0: Known initial state.
      sigmasq: Observation variance 1/lambda > 0.
      layout: ``"dense"`` or ``"diag"``.
      filter_only: Return the filtered means instead (what the reference ELK code iterates).

    Returns:
      The smoothed (or filtered) means y_1..y_T.

    References: Sarkka & Garcia-Fernandez (2021), "Temporal parallelization of Bayesian
    smoothers", IEEE TAC; Gonzalez et al. (2024), arXiv:2407.19115 (ELK).
    """
    if layout == "diag":
        solve = lambda a, bb, yo, y00: _damped_dense(
            a[:, None, None], bb[:, None], yo[:, None], y00[None], sigmasq, filter_only
        )[:, 0]
        return jax.vmap(solve, in_axes=(1, 1, 1, 0), out_axes=1)(A, b, y_obs, y0)
    if layout != "dense":
        raise ValueError(f"damped recurrences support dense or diag, got {layout!r}")
    return _damped_dense(A, b, y_obs, y0, sigmasq, filter_only)
