"""The one tolerance table for the test suite (STYLE 2.9).

Loosening an entry needs a comment with the reason.
"""

import numpy as np

TOL = {
    "float64": dict(rtol=1e-10, atol=1e-12),  # references, algebraic identities
    "float32": dict(rtol=1e-5, atol=1e-6),  # default
    "bfloat16": dict(rtol=1e-2, atol=1e-2),  # dtype-preservation tests only
}


def tol(dtype) -> dict:
    """Tolerances for ``dtype`` (a numpy/jax dtype or its name)."""
    return TOL[np.dtype(dtype).name]


def solver_tol(solver_tol: float) -> dict:
    """Iterative solvers (DEER, Newton): 10x the solver's own tolerance."""
    return dict(rtol=10 * solver_tol, atol=10 * solver_tol)
