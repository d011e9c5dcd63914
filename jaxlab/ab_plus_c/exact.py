"""Exact minimiser of S = a + b + c subject to N = ab + c over the non-negative integers.

With p = a + b and q = b - a (p = q mod 2), c = N - ab becomes

    4N - p^2 + q^2 = 4c,    S = p + c,    4S = 4N + q^2 + 4 - (p - 2)^2,

so for each p the smallest admissible q (q^2 >= p^2 - 4N, right parity) is best, and since
S >= p the scan over p can stop once p exceeds the best S found. It starts at p = floor(2 sqrt N)
and needs at most about 2 N^{1/4} steps (Algorithm C below); every square root is an exact integer
square root. Python-int functions work for any N >= 0; ``jaxlab.ab_plus_c.vectorized`` holds the
int64 JAX path.

References: Su Jianlin, 《自然数集中 N = ab + c 时 a + b + c 的最小值》 (2023-09-20),
https://kexue.fm/archives/9775; Algorithms B and C are due to readers (named in the post).
"""

import math
from typing import Literal, NamedTuple, SupportsInt, no_type_check

import numpy as np

from jaxlab.array_types import Array, Int

MAX_N_JAX = 2**62 - 1
"""Largest N for ``min_abc_jax``: 4N is never formed and every product (r^2, h(h+1), ab) stays
below 2^63 for N < 2^62 (h <= sqrt(N) + N^{1/4} + 2)."""

ALGORITHM_A_OPEN_FAILURES = (
    8, 18, 19, 32, 33, 34, 98, 128, 129, 162, 163, 164, 200, 201, 202, 203, 512, 882, 883,
    968, 969, 970, 971, 2048, 2049, 2888, 2889, 2890,
)  # fmt: skip
"""The N in [4, 2e5] where Su's Algorithm A with a in (sqrt(N/2), sqrt(N)] is not optimal
(exhaustive check, tests/test_ab_plus_c.py); none exist above 92 458 (see ``algorithm_a``)."""


class ABC(NamedTuple):
    """A minimiser: a <= b, c = N - ab >= 0, s = a + b + c."""

    a: int
    b: int
    c: int
    s: int


class ABCStats(NamedTuple):
    """A minimiser with the search record: loop iterations and the final p = a + b, q = b - a.

    On the JAX path every field is an int64 array (all -1 for an N outside [0, MAX_N_JAX]).
    """

    a: int | Array
    b: int | Array
    c: int | Array
    s: int | Array
    iterations: int | Array
    p: int | Array
    q: int | Array


# Private integer helpers run millions of times inside loops: `no_type_check` keeps jaxtyping's
# pytest-only runtime checks (STYLE 2.4) on the public signatures and off the hot paths.


@no_type_check
def _check_n(N):
    if isinstance(N, bool) or not isinstance(N, int | np.integer):
        raise ValueError(f"N must be a non-negative integer, got {N!r}")
    if N < 0:
        raise ValueError(f"N must be a non-negative integer, got {int(N)}")
    return int(N)


@no_type_check
def _ceil_isqrt(m):
    r = math.isqrt(m)
    return r if r * r == m else r + 1


@no_type_check
def _from_pq(N, p, q, iterations):
    a, b = (p - q) // 2, (p + q) // 2
    return ABCStats(a, b, N - a * b, p + N - a * b, iterations, p, q)


# ---------------------------------------------------------------- bounds (Python ints)


def lower_bound(N: SupportsInt) -> int:
    """ceil(2 sqrt N) = isqrt(4N - 1) + 1 (0 for N = 0); S* >= it for N >= 4."""
    N = _check_n(N)
    return 0 if N == 0 else math.isqrt(4 * N - 1) + 1


def upper_bound(N: SupportsInt) -> float:
    """U(N) = 2 sqrt N + 2 + sqrt(1 + 4 sqrt N) >= S* (floats: for plots only)."""
    root = math.sqrt(_check_n(N))
    return 2.0 * root + 2.0 + math.sqrt(1.0 + 4.0 * root)


def within_upper_bound(p: int, N: SupportsInt) -> bool:
    """Exactly decides p <= U(N) in integers.

    With t = p - 2 > 2 sqrt N, t - 2 sqrt N <= sqrt(1 + 4 sqrt N) squares to
    t^2 + 4N - 1 <= 4 sqrt(N) (t + 1), and squaring again (both sides >= 0) to
    (t^2 + 4N - 1)^2 <= 16 N (t + 1)^2.
    """
    return _within(p, _check_n(N))


@no_type_check
def _within(p, N):
    t = p - 2
    if t <= 0 or t * t <= 4 * N:
        return True
    return (t * t + 4 * N - 1) ** 2 <= 16 * N * (t + 1) ** 2


def bound_iterations(N: SupportsInt) -> int:
    """Iterations of the bound-based loop: the number of integers p in (2 sqrt N, U(N)].

    Found by bisection on ``within_upper_bound`` (exact), so it is cheap for any N.
    """
    return _bound_iterations(_check_n(N))


@no_type_check
def _bound_iterations(N):
    p0 = math.isqrt(4 * N)
    lo, hi = p0, p0 + 2 * math.isqrt(math.isqrt(N)) + 8  # U - 2 sqrt N <= 5 + 2 N^{1/4}
    while lo < hi:  # largest p in [p0, hi] with p <= U(N); p0 <= 2 sqrt N < U(N)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _within(mid, N) else (lo, mid - 1)
    return lo - p0


class Bounds(NamedTuple):
    """Per-N bounds as int64 arrays: ceil(2 sqrt N), floor(U(N)) and the bound-based count."""

    lower: Int[np.ndarray, " B"]
    upper_floor: Int[np.ndarray, " B"]
    bound_iterations: Int[np.ndarray, " B"]


def bounds_range(lo: int, hi: int) -> Bounds:
    """``lower_bound``, floor(U(N)) and ``bound_iterations`` for every N in [lo, hi), exactly.

    floor(U(N)) = isqrt(4N) + bound_iterations(N), since the counted p start at isqrt(4N) + 1.
    """
    if not 0 <= lo <= hi <= MAX_N_JAX + 1:
        raise ValueError(f"need 0 <= lo <= hi <= 2^62, got lo={lo}, hi={hi}")
    n_B = range(lo, hi)
    lower = np.array([0 if n == 0 else math.isqrt(4 * n - 1) + 1 for n in n_B], dtype=np.int64)
    count = np.array([_bound_iterations(n) for n in n_B], dtype=np.int64)
    p0 = np.array([math.isqrt(4 * n) for n in n_B], dtype=np.int64)
    return Bounds(lower, p0 + count, count)


# ---------------------------------------------------------------- exact algorithms (Python ints)


def algorithm_c(N: SupportsInt, stop: Literal["integer", "bound"] = "integer") -> ABCStats:
    """Algorithm C: scan p = a + b upwards from floor(2 sqrt N) with the smallest q = b - a.

    For each p > 2 sqrt N: m = p^2 - 4N, q = ceil(sqrt m) (+1 if q and p differ in parity),
    c = (q^2 - m) / 4, S = p + c. The baseline p = isqrt(4N) has q = p mod 2. Searches a, b >= 1
    only, so it is not optimal for N <= 3 (use ``min_abc``). Ties keep the smaller p.

    Args:
      N: Any integer >= 0.
      stop: "integer" continues while p <= best S so far (S >= p, so no later p can win);
        "bound" tries every integer p in (2 sqrt N, U(N)] (about 2 + 2 N^{1/4} of them).

    Returns:
      The minimiser with ``iterations`` = number of p tried after the baseline.

    References: Su (2023), https://kexue.fm/archives/9775, the reader's p, q parameterisation.
    """
    if stop not in ("integer", "bound"):
        raise ValueError(f"stop must be 'integer' or 'bound', got {stop!r}")
    return _algorithm_c(_check_n(N), stop == "integer")


@no_type_check
def _algorithm_c(N, integer_stop):
    four_n = 4 * N
    best_p = math.isqrt(four_n)
    best_q = best_p & 1
    best_s = best_p + (four_n - best_p * best_p + best_q * best_q) // 4
    iterations, p = 0, best_p + 1
    while p <= best_s if integer_stop else _within(p, N):
        m = p * p - four_n
        q = _ceil_isqrt(m)
        q += (q ^ p) & 1
        s = p + (q * q - m) // 4
        if s < best_s:
            best_s, best_p, best_q = s, p, q
        iterations += 1
        p += 1
    return _from_pq(N, best_p, best_q, iterations)


def min_abc(N: SupportsInt, *, return_stats: bool = False) -> ABC | ABCStats:
    """The exact minimiser of a + b + c over a, b, c >= 0 with ab + c = N, for any integer N >= 0.

    N <= 3 gives (0, 0, N); a perfect square r^2 gives (r, r, 0); otherwise ``algorithm_c`` with
    the integer stopping rule, O(N^{1/4}) steps on Python integers, no floating point.
    Tie-break: the smallest a + b, then a <= b.

    Args:
      N: Any integer >= 0 (Python int or NumPy integer).
      return_stats: Also return the iteration count and the final p = a + b, q = b - a.

    Returns:
      ``ABC(a, b, c, s)``, or ``ABCStats`` with ``return_stats``.

    Raises:
      ValueError: if N is negative or not an integer.

    Examples:
      >>> min_abc(130)
      ABC(a=10, b=13, c=0, s=23)

    References: Su (2023), https://kexue.fm/archives/9775.
    """
    out = _min_abc(_check_n(N))
    return out if return_stats else ABC(*out[:4])


@no_type_check
def _min_abc(N):
    r = math.isqrt(N)
    if N <= 3:
        return ABCStats(0, 0, N, N, 0, 0, 0)
    if r * r == N:
        return ABCStats(r, r, 0, 2 * r, 0, 2 * r, 0)
    return _algorithm_c(N, True)


def algorithm_b(N: SupportsInt) -> ABCStats:
    """Algorithm B: a = x - y, b = x + y with x, y both integers or both half-integers.

    Same parity: N + y^2 = x^2 + c, S = 2x + c; for x^2 >= N the best y is ceil(sqrt(x^2 - N)).
    Opposite parity (x, y half-integers): y = ceil(sqrt(x^2 - N) - 1/2) + 1/2. Works with
    X = 2x, Y = 2y so everything stays integral; starts from the y = 0 (resp. 1/2) candidates and
    scans integers m > sqrt(N) - 1/2 while 2m <= best S (S = 2x + c >= 2x). Searches a, b >= 1.

    Args:
      N: Any integer >= 0.

    Returns:
      The minimiser with ``p = X``, ``q = Y`` and ``iterations`` = number of m tried.

    References: Su (2023), https://kexue.fm/archives/9775, Algorithm B ("new parameterisation").
    """
    return _algorithm_b(_check_n(N))


@no_type_check
def _algorithm_b(N):
    best = None

    @no_type_check
    def consider(X, Y):
        nonlocal best
        a, b = (X - Y) // 2, (X + Y) // 2
        s = a + b + N - a * b
        if best is None or s < best[0]:
            best = (s, X, Y)

    r, h = math.isqrt(N), (math.isqrt(4 * N) - 1) // 2  # h: largest x with (x + 1/2)^2 <= N
    consider(2 * r, 0)
    if h >= 0:
        consider(2 * h + 1, 1)
    m, iterations = h + 1, 0
    while 2 * m <= best[0]:
        if m * m >= N:  # guard: m > sqrt(N) - 1/2 does not imply m^2 >= N
            consider(2 * m, 2 * _ceil_isqrt(m * m - N))
        Y = _ceil_isqrt((2 * m + 1) ** 2 - 4 * N)
        consider(2 * m + 1, Y + 1 - (Y & 1))
        m, iterations = m + 1, iterations + 1
    return _from_pq(N, best[1], best[2], iterations)


_EXACT = {"min_abc": _min_abc, "algorithm_b": _algorithm_b, "algorithm_c_bound": None}


def exact_range(
    lo: int, hi: int, method: Literal["min_abc", "algorithm_b", "algorithm_c_bound"] = "min_abc"
) -> ABCStats:
    """Runs one exact Python-int algorithm for every N in [lo, hi) (an exhaustive sweep).

    Args:
      lo: First N (>= 0).
      hi: One past the last N (<= 2^62, so results fit int64).
      method: ``min_abc``, ``algorithm_b`` or ``algorithm_c`` with ``stop="bound"``.

    Returns:
      ``ABCStats`` whose fields are int64 NumPy arrays of length hi - lo.
    """
    if not 0 <= lo <= hi <= MAX_N_JAX + 1 or method not in _EXACT:
        raise ValueError(f"need 0 <= lo <= hi <= 2^62 and a known method, got {lo}, {hi}, {method}")
    fn = _EXACT[method] or (lambda n: _algorithm_c(n, False))
    rows = [fn(n) for n in range(lo, hi)]
    cols = np.array(rows, dtype=np.int64).reshape(len(rows), 7).T
    return ABCStats(*cols)


# ---------------------------------------------------------------- baselines and oracles


def naive_guess(N: SupportsInt) -> ABC:
    """The better of (r, r, N - r^2) and (r, r + 1, N - r(r + 1)) (if feasible), r = isqrt(N)."""
    N = _check_n(N)
    r = math.isqrt(N)
    out = ABC(r, r, N - r * r, N - r * r + 2 * r)
    if r * (r + 1) <= N and N - r * r + r + 1 < out.s:
        out = ABC(r, r + 1, N - r * (r + 1), N - r * r + r + 1)
    return out


def _algorithm_a_start(N: int, interval: str) -> int:
    t = math.isqrt(N // 2)  # floor(sqrt(N / 2))
    if interval == "open":  # smallest a with 2a^2 > N
        return t + 1
    if interval == "closed":  # smallest a >= 1 with 2a^2 >= N
        return max(t if 2 * t * t >= N else t + 1, 1)
    if interval == "fixed":
        return max(t, 1)
    raise ValueError(f"interval must be 'open', 'closed' or 'fixed', got {interval!r}")


def algorithm_a(
    N: SupportsInt, interval: Literal["open", "closed", "fixed"] = "fixed"
) -> ABC | None:
    """Su's O(sqrt N) Algorithm A: try a in a window below sqrt N with b = floor(N / a).

    For fixed a >= 1 the best b is floor(N / a), giving S(a) = (a - 1){N/a} + a + N/a; Su scans
    a in (sqrt(N/2), sqrt N] ("open", as published), which misses optima (k, 2k, r) at
    N = 2k^2 + r for 28 values of N (``ALGORITHM_A_OPEN_FAILURES``); "closed" is [sqrt(N/2),
    sqrt N]; "fixed" starts at floor(sqrt(N/2)) and is exact for N >= 4 (provably so for
    N >= 92 459, where a < sqrt(N/2) gives S >= 3 sqrt(N/2) > U(N)). Searches a, b >= 1.

    Args:
      N: Any integer >= 0.
      interval: Which window of a to scan.

    Returns:
      The best triple in the window, or None if the window holds no integer (e.g. N = 8, open).

    References: Su (2023), https://kexue.fm/archives/9775, the first algorithm.
    """
    N = _check_n(N)
    best = None
    for a in range(_algorithm_a_start(N, interval), math.isqrt(N) + 1):
        b, c = divmod(N, a)
        if best is None or a + b + c < best.s:
            best = ABC(a, b, c, a + b + c)
    return best


def min_abc_bruteforce(N: SupportsInt, *, chunk: int = 1 << 20) -> ABC:
    """Brute force: min of (0, 0, N) and (a, N // a, N % a) over 1 <= a <= sqrt N.

    For a >= 2, S = N + a - (a - 1) b decreases in b, so b = floor(N / a) is best (a = 1 gives
    N + 1 for every b); a <= b loses nothing. O(sqrt N): NumPy int64 chunks for N < 2^62, Python
    ints above. Ties keep the smallest a.
    """
    N = _check_n(N)
    best, hi = ABC(0, 0, N, N), math.isqrt(N)
    if N > MAX_N_JAX:
        for a in range(1, hi + 1):
            b, c = divmod(N, a)
            if a + b + c < best.s:
                best = ABC(a, b, c, a + b + c)
        return best
    for start in range(1, hi + 1, chunk):
        a_C = np.arange(start, min(start + chunk, hi + 1), dtype=np.int64)
        b_C, c_C = np.divmod(np.int64(N), a_C)
        s_C = a_C + b_C + c_C
        i = int(np.argmin(s_C))
        if s_C[i] < best.s:
            best = ABC(int(a_C[i]), int(b_C[i]), int(c_C[i]), int(s_C[i]))
    return best


def _min_over_a(lo: int, hi: int, window, chunk: int) -> np.ndarray:
    """min over a of a + N//a + N%a for N in [lo, hi), a in [a^2 <= N] and window(a) = [n0, n1)."""
    out = np.full(hi - lo, np.iinfo(np.int64).max, dtype=np.int64)
    for c0 in range(lo, hi, chunk):
        c1 = min(c0 + chunk, hi)
        n_C = np.arange(c0, c1, dtype=np.int64)
        for a in range(1, math.isqrt(c1 - 1) + 1):
            n0, n1 = window(a)
            i0, i1 = max(n0, c0) - c0, min(n1, c1) - c0
            if i0 < i1:
                b, c = np.divmod(n_C[i0:i1], np.int64(a))
                seg = out[c0 - lo + i0 : c0 - lo + i1]
                np.minimum(seg, b + c + np.int64(a), out=seg)
    return out


def s_star_range(lo: int, hi: int, *, chunk: int = 1 << 18) -> Int[np.ndarray, " B"]:
    """Vectorised brute force: S* for every N in [lo, hi), including the a = b = 0 candidate."""
    if not 0 <= lo <= hi or hi > 2**40:
        raise ValueError(f"need 0 <= lo <= hi <= 2^40, got lo={lo}, hi={hi}")
    out = _min_over_a(lo, hi, lambda a: (a * a, hi), chunk)
    return np.minimum(out, np.arange(lo, hi, dtype=np.int64))


def algorithm_a_range(
    lo: int,
    hi: int,
    interval: Literal["open", "closed", "fixed"] = "fixed",
    *,
    chunk: int = 1 << 18,
) -> Int[np.ndarray, " B"]:
    """Vectorised ``algorithm_a``: its S for every N in [lo, hi); -1 where the window is empty.

    a lies in the window exactly for N in [a^2, 2a^2) (open), [a^2, 2a^2] (closed) or
    [a^2, 2(a + 1)^2) (fixed: a >= isqrt(N // 2) iff N // 2 < (a + 1)^2).
    """
    if not 0 <= lo <= hi or hi > 2**40:
        raise ValueError(f"need 0 <= lo <= hi <= 2^40, got lo={lo}, hi={hi}")
    _algorithm_a_start(4, interval)  # validates the name
    ends = {"open": lambda a: 2 * a * a, "closed": lambda a: 2 * a * a + 1}
    end = ends.get(interval, lambda a: 2 * (a + 1) ** 2)
    out = _min_over_a(lo, hi, lambda a: (a * a, end(a)), chunk)
    return np.where(out == np.iinfo(np.int64).max, np.int64(-1), out)
