"""Tests for jaxlab.quanta.data_scaling: the D sweep's shapes and sanity, and the α_D fit window."""

import jax
import numpy as np
import pytest

from jaxlab.quanta import data_scaling as ds
from jaxlab.quanta import parity_mlp
from jaxlab.quanta import sparse_parity as sp


def test_data_sweep_more_data_lowers_the_minimum_loss():
    task = sp.TaskConfig(n_tasks=4, n=6, k=2, alpha_code=1.4)
    train = parity_mlp.TrainConfig(batch_size=64, lr=3e-3)
    sweep = ds.DataSweep(sizes=(16, 4096), width=16, num_steps=600, eval_every=100,
                         test_points=1000)  # fmt: skip
    r = ds.data_sweep(task, train, sweep, key=jax.random.key(0))
    assert r["losses"].shape == (2, 6) and list(r["steps"]) == [100, 200, 300, 400, 500, 600]
    np.testing.assert_array_equal(r["min_loss"], r["losses"].min(1))
    assert r["min_loss"][1] < r["min_loss"][0]  # 16 samples cannot teach 4 parities


def test_data_sweep_rejects_bad_schedule():
    with pytest.raises(ValueError, match="num_steps"):
        ds.DataSweep(sizes=(10,), width=4, num_steps=150, eval_every=100, test_points=10)
    with pytest.raises(ValueError, match="sizes"):
        ds.DataSweep(sizes=(), width=4, num_steps=100, eval_every=100, test_points=10)


def test_fit_alpha_d_recovers_a_power_law_and_skips_step_limited_sizes():
    sizes = np.array([100, 200, 400, 800, 1600, 3200])
    mins = 0.8 * (sizes / 100.0) ** -0.3
    losses = np.full((6, 10), 1.0)
    losses[np.arange(6), [1, 2, 3, 4, 5, 9]] = mins  # the largest size is still improving
    fit = ds.fit_alpha_d(dict(sizes=sizes, losses=losses, min_loss=mins), max_loss=0.9,
                         min_loss=1e-4, num_bootstrap=200, key=jax.random.key(0))  # fmt: skip
    assert list(fit["used"]) == [True] * 5 + [False]
    assert fit["alpha"] == pytest.approx(0.3, rel=1e-3) and fit["window"] == (100.0, 1600.0)
    claim = ds.alpha_d_claim(fit, 32, 0.4, source="s")
    assert claim["agree"] is False  # 0.308 lies outside a near-zero-width interval around 0.3
