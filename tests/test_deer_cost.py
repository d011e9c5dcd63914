"""Per-sweep cost of DEER scales as the profile says (issue 18, CPU part): XLA's static cost
analysis (:mod:`jaxlab.deer.cost`), deterministic, no timing.

A dense scan does O(T n^3) work (a D x D product per combine), the diagonal scan O(T n), and a
dense Newton sweep is dominated by O(T n^3) (Jacobians and scan). Doubling n or T must multiply
the counted FLOPs by the power of 2 of the leading term, within ``NAMED["cost_ratio"]``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import NAMED

from jaxlab import deer
from jaxlab.deer import cells, cost


def _ratio(a, b):
    return a["flops"] / b["flops"]


@pytest.fixture(scope="module")
def scans():
    out = {}
    for layout, t, n in [
        ("dense", 256, 16),
        ("dense", 256, 32),
        ("dense", 512, 16),
        ("diag", 256, 16),
        ("diag", 256, 32),
        ("diag", 512, 16),
    ]:
        out[layout, t, n] = cost.scan_cost(layout, t, n)
    return out


def test_dense_scan_flops_grow_like_n_cubed_and_t(scans):
    np.testing.assert_allclose(
        _ratio(scans["dense", 256, 32], scans["dense", 256, 16]), 8.0, **NAMED["cost_ratio"]
    )
    np.testing.assert_allclose(
        _ratio(scans["dense", 512, 16], scans["dense", 256, 16]), 2.0, **NAMED["cost_ratio"]
    )


def test_diag_scan_flops_grow_like_n_and_t(scans):
    np.testing.assert_allclose(
        _ratio(scans["diag", 256, 32], scans["diag", 256, 16]), 2.0, **NAMED["cost_ratio"]
    )
    np.testing.assert_allclose(
        _ratio(scans["diag", 512, 16], scans["diag", 256, 16]), 2.0, **NAMED["cost_ratio"]
    )


def test_dense_over_diag_flop_ratio_grows_like_n_squared(scans):
    """dense/diag at n = 32 over the same at n = 16: the extra n^2 of the dense combine."""
    r16 = _ratio(scans["dense", 256, 16], scans["diag", 256, 16])
    r32 = _ratio(scans["dense", 256, 32], scans["diag", 256, 32])
    assert r16 > 16  # the dense scan is more than n times the work at n = 16
    np.testing.assert_allclose(r32 / r16, 4.0, **NAMED["cost_ratio"])


def test_newton_sweep_flops_grow_like_n_cubed():
    """A whole dense Newton sweep (f, jacfwd Jacobians, scan) on a GRU: ~n^3 between 32 and 64
    (at 16 -> 32 the O(T n^2) terms still hold the ratio near 6.5)."""
    sweeps = {}
    for n in (32, 64):
        params = cells.init_gru(n, n, key=jax.random.key(0))
        xs = jnp.zeros((128, n), jnp.float32)
        sweeps[n] = cost.sweep_cost(cells.gru, jnp.zeros((n,)), xs, params, deer.Newton())
    np.testing.assert_allclose(_ratio(sweeps[64], sweeps[32]), 8.0, **NAMED["cost_ratio"])
    assert sweeps[64]["bytes"] > 3 * sweeps[32]["bytes"]  # memory traffic at least ~n^2


def test_cost_reports_positive_finite_figures():
    c = cost.scan_cost("diag", 8, 2)
    assert np.isfinite(c["flops"]) and c["flops"] > 0 and c["bytes"] > 0
