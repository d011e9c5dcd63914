"""The int64 JAX path of the N = ab + c minimiser: exact integer square roots and a vmappable
``lax.while_loop`` version of ``jaxlab.ab_plus_c.min_abc``.

Everything here needs ``jax_enable_x64`` (call inside ``with jax.enable_x64(True):``); square
roots start from a float64 guess and are corrected with exact integer comparisons, so no result
depends on floating-point rounding.

References: Su Jianlin (2023), https://kexue.fm/archives/9775.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxlab.ab_plus_c.exact import MAX_N_JAX, ABCStats
from jaxlab.array_types import Array, ArrayLike, Int


def isqrt(x: Int[ArrayLike, "*S"]) -> Int[Array, "*S"]:
    """floor(sqrt x) for int64 0 <= x <= 2^62, exact: a float64 guess plus integer corrections.

    fl(x) has relative error <= 2^-53, so the guess is within 2^31 * 2^-52 of sqrt x and its
    floor is off by at most one; two correction steps each way (r^2 > x: down, (r + 1)^2 <= x:
    up) leave a margin. Checked against ``math.isqrt`` at k^2 - 1, k^2 up to k = 2^31.
    """
    x = jnp.asarray(x, dtype=jnp.int64)
    r = jnp.floor(jnp.sqrt(x.astype(jnp.float64))).astype(jnp.int64)
    for _ in range(2):
        r = jnp.where(r * r > x, r - 1, r)
    for _ in range(2):
        r = jnp.where((r + 1) * (r + 1) <= x, r + 1, r)
    return r


def ceil_isqrt(x: Int[ArrayLike, "*S"]) -> Int[Array, "*S"]:
    """ceil(sqrt x) for int64 0 <= x <= 2^62, exact (see ``isqrt``)."""
    x = jnp.asarray(x, dtype=jnp.int64)
    r = isqrt(x)
    return r + (r * r < x).astype(jnp.int64)


def _require_x64() -> None:
    if not jax.config.read("jax_enable_x64"):
        raise RuntimeError(
            "min_abc_jax needs jax_enable_x64 (int64): call it inside "
            "`with jax.enable_x64(True):` (otherwise JAX would silently wrap N to int32)"
        )


def check_jax_domain(N: Int[ArrayLike, "*S"]) -> None:
    """Raises unless x64 is on and every (concrete) N is an integer in [0, MAX_N_JAX]."""
    _require_x64()
    arr = np.asarray(N)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"N must be an integer array, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > MAX_N_JAX):
        raise ValueError(
            f"N must lie in [0, 2^62 - 1] for min_abc_jax, got [{arr.min()}, {arr.max()}]"
        )


def min_abc_jax(N: Int[ArrayLike, ""]) -> ABCStats:
    """``min_abc`` for one int64 N in [0, 2^62): jit-able and vmappable (the caller vmaps).

    Same integer stopping rule and tie-break as ``min_abc``, in a ``lax.while_loop``. 4N is never
    formed: p0 = floor(2 sqrt N) = 2r + [r^2 + r < N] with r = isqrt(N), and with p = 2h + e,
    m = p^2 - 4N = 4(h(h + e) - N) + e. Under vmap the loop runs as long as the slowest lane.

    Args:
      N: Scalar integer. A concrete N outside [0, MAX_N_JAX] raises; a traced one gives -1s.

    Returns:
      ``ABCStats`` of int64 scalars (a, b, c, s, iterations, p, q).

    Raises:
      RuntimeError: if ``jax_enable_x64`` is off.
      ValueError: for a concrete N out of range.

    References: Su (2023), https://kexue.fm/archives/9775.
    """
    _require_x64()
    if not isinstance(N, jax.core.Tracer):
        check_jax_domain(N)
    N = jnp.asarray(N, dtype=jnp.int64)
    valid = (N >= 0) & (N <= MAX_N_JAX)
    n = jnp.where(valid, N, jnp.int64(0))
    zero = jnp.zeros((), jnp.int64)

    def s_of(p, q):
        a, b = (p - q) // 2, (p + q) // 2
        return a + b + n - a * b

    r = isqrt(n)
    p0 = 2 * r + (r * r + r < n).astype(jnp.int64)
    q0 = p0 % 2
    active = valid & (n > 3)

    def cond(state):
        p, best_s, _, _, _ = state
        return active & (p <= best_s)

    def body(state):
        p, best_s, best_p, best_q, it = state
        h, e = p // 2, p % 2
        m = 4 * (h * (h + e) - n) + e
        q = ceil_isqrt(m)
        q = q + ((q ^ p) & 1)
        s = s_of(p, q)
        better = s < best_s
        return (
            p + 1,
            jnp.where(better, s, best_s),
            jnp.where(better, p, best_p),
            jnp.where(better, q, best_q),
            it + 1,
        )

    init = (p0 + 1, s_of(p0, q0), p0, q0, zero)
    _, s, p, q, it = lax.while_loop(cond, body, init)
    small = n <= 3
    p, q = jnp.where(small, zero, p), jnp.where(small, zero, q)
    a, b = (p - q) // 2, (p + q) // 2
    c = n - a * b
    s = jnp.where(small, n, s)
    minus = jnp.int64(-1)
    return ABCStats(*(jnp.where(valid, v, minus) for v in (a, b, c, s, it, p, q)))
