"""N = ab + c: the exact minimiser of a + b + c over natural numbers, in O(N^{1/4}).

Modules, by concept:

* ``exact``: :func:`min_abc` and Algorithms A/B/C in exact Python integers, bounds, brute force.
* ``vectorized``: :func:`min_abc_jax`, the int64 JAX version (vmappable, N < 2^62).
* ``cli``: the ``jaxlab abc N ...`` command.

Example::

    >>> from jaxlab.ab_plus_c import min_abc
    >>> min_abc(130)
    ABC(a=10, b=13, c=0, s=23)

References: Su, kexue.fm/archives/9520 (and /9512).
"""

from jaxlab.ab_plus_c import cli, exact, vectorized
from jaxlab.ab_plus_c.exact import (
    ABC,
    ALGORITHM_A_OPEN_FAILURES,
    MAX_N_JAX,
    ABCStats,
    Bounds,
    algorithm_a,
    algorithm_a_range,
    algorithm_b,
    algorithm_c,
    bound_iterations,
    bounds_range,
    exact_range,
    lower_bound,
    min_abc,
    min_abc_bruteforce,
    naive_guess,
    s_star_range,
    upper_bound,
    within_upper_bound,
)
from jaxlab.ab_plus_c.vectorized import (
    ceil_isqrt,
    check_jax_domain,
    isqrt,
    min_abc_jax,
)

__all__ = [
    "exact",
    "vectorized",
    "cli",
    "MAX_N_JAX",
    "ALGORITHM_A_OPEN_FAILURES",
    "ABC",
    "ABCStats",
    "lower_bound",
    "upper_bound",
    "within_upper_bound",
    "bound_iterations",
    "Bounds",
    "bounds_range",
    "algorithm_c",
    "min_abc",
    "algorithm_b",
    "exact_range",
    "naive_guess",
    "algorithm_a",
    "min_abc_bruteforce",
    "s_star_range",
    "algorithm_a_range",
    "isqrt",
    "ceil_isqrt",
    "check_jax_domain",
    "min_abc_jax",
]
