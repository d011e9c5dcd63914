"""Per-sweep cost of DEER scales as the profile says (issue 18, CPU part): XLA's static cost
analysis (:mod:`jaxlab.deer.cost`), deterministic, no timing.

A dense scan does O(T n^3) work (a D x D product per combine), the diagonal scan O(T n), and a
dense Newton sweep is dominated by O(T n^3) (Jacobians and scan). Doubling n or T must multiply
the counted FLOPs by the power of 2 of the leading term, within ``NAMED["cost_ratio"]``.
"""

import jax
import jax.extend
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


def _dot_precisions(jaxpr):
    """Every dot_general's precision in a jaxpr, sub-jaxprs (while/cond/scan bodies) included."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append(eqn.params["precision"])
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            out += _dot_precisions(sub)
    return out


def test_scan_and_newton_products_run_at_highest_precision(monkeypatch):
    """No product of the scans or of J_t y_{t-1} is left at the default precision (TF32 on a
    GPU). The CPU broadcast combine (no dot) is switched off so that every combine is a dot."""
    from jaxlab.deer import scan

    monkeypatch.setattr(scan, "BROADCAST_DENSE", ())
    n, t = 4, 16
    a, b, y0 = jnp.zeros((t, n, n)), jnp.zeros((t, n)), jnp.zeros((n,))
    high = jax.lax.Precision.HIGHEST
    jaxpr = jax.make_jaxpr(lambda a, b: scan.linear_recurrence(a, b, y0))(a, b).jaxpr
    precisions = _dot_precisions(jaxpr)
    assert precisions and all(p == (high, high) for p in precisions), precisions

    params = cells.init_tanh_rnn(n, n, key=jax.random.key(0))
    xs = jnp.zeros((t, n))
    # The cell's own W @ h is the user's code (and lax.scan's); jaxlab's products must be HIGHEST.
    f = lambda y, x, p: jnp.tanh(jnp.dot(p.W, y, precision=high) + x)
    solve = lambda xs: deer.deer(f, y0, xs, params, verify=False).value
    precisions = _dot_precisions(jax.make_jaxpr(solve)(xs).jaxpr)
    assert precisions and all(p == (high, high) for p in precisions), precisions


def _round_tf32(x):
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    bits = (bits + jnp.uint32(0x1000)) & jnp.uint32(0xFFFFE000)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def test_tf32_products_make_newton_run_to_the_sweep_cap(monkeypatch):
    """Why HIGHEST: with the scan products' inputs rounded to TF32 (10 mantissa bits, what a GPU
    does at the default precision) Newton's step never passes DEER's float32 tolerance and it
    runs (nearly) to the T-sweep cap; at full precision it stops after a handful of sweeps."""
    from jaxlab.deer import scan

    n, t = 8, 128
    params = cells.init_gru(n, n, key=jax.random.key(3))
    xs = jax.random.normal(jax.random.key(4), (t, n), jnp.float32)
    y0 = jnp.zeros((n,), jnp.float32)
    sweeps = lambda: int(deer.deer(cells.gru, y0, xs, params, verify=False).iterations)
    full = sweeps()
    tf32 = lambda s, *ops: jnp.einsum(s, *map(_round_tf32, ops), precision="highest")
    monkeypatch.setattr(scan, "einsum", tf32)
    monkeypatch.setattr(scan, "BROADCAST_DENSE", ())
    emulated = sweeps()
    assert full <= 8, full
    assert emulated >= t // 2, emulated
