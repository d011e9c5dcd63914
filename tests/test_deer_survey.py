"""Tests for jaxlab.deer.survey: quadratic-tail ratios, finite differences, Su's GRU row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.deer import population as pop
from jaxlab.deer import survey


def _trace(errors):
    # Iterates whose error against a zero reference is exactly errors[k].
    return np.asarray(errors, np.float64)[:, None, None] * np.ones((1, 3, 2))


def test_error_ratios_bounded_for_quadratic_unbounded_for_linear():
    quad = [0.5, 0.05, 2.5e-3, 6.25e-6, 3.9e-11, 1e-16]  # e_(k+1) = e_k^2 (and a rounding floor)
    lin = [0.5 * 0.5**k for k in range(40)]
    q = survey.error_ratios(_trace(quad), np.zeros((3, 2)), floor=1e-12, start=0.1)
    ln = survey.error_ratios(_trace(lin), np.zeros((3, 2)), floor=1e-12, start=0.1)
    assert q["pairs"] == 3 and q["max_ratio"] == pytest.approx(1.0, rel=1e-3)
    assert ln["max_ratio"] > 1e10  # 0.5 / e_k at e_k ~ 1e-11


def test_finite_difference_check_and_newton_tail_on_a_small_draw():
    key = jax.random.key(0)
    with jax.enable_x64(True):
        params, xs = jax.tree.map(
            lambda a: a[0],
            pop.draw_population("tanh", 3, 64, 0.8, 1, dtype=jnp.float64, key=key),
        )
        w = jax.random.normal(jax.random.fold_in(key, 1), xs.shape, jnp.float64)
        fd = survey.finite_difference_check("tanh", params, xs, w, key=key, num_directions=2)
        assert set(fd) == {"xs", "y0"} and max(fd.values()) <= 1e-6
        tails = survey.newton_tail(3, 64, 0.8, 2, 40, key=key, modes=("newton", "picard"))
    assert tails["newton"]["pairs"] >= 1 and tails["newton"]["max_ratio"] <= 10.0
    assert tails["picard"]["max_ratio"] > 1e3


def test_gru_su_summary():
    rows = [["newton", 4, 1e-7, 5, 2e-7], ["su", 8, 1e-5, 11, 3e-5]]
    out = survey.gru_su_summary(rows, (0.5, 1.0))
    assert out == dict(su_sweeps=[8, 11], newton_sweeps=[4, 5], su_max_error=3e-5)
    with pytest.raises(ValueError, match="rows must include"):
        survey.gru_su_summary(rows[:1], (0.5, 1.0))
