"""Tests for jaxlab.rope.evaluation: repeated windows, multipliers, bootstrap intervals, verdicts.

References: NumPy tiling, the closed forms of the PI and NTK-aware multipliers, a float64 NumPy
percentile bootstrap with the same indices, and exact interval arithmetic.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import BOOTSTRAP_SE_FRAC, NAMED, tol

from jaxlab import rope
from jaxlab.rope import evaluation


def test_repeated_windows_tile_evenly_spaced_passages():
    heldout = np.arange(100, dtype=np.int64)
    w = evaluation.repeated_windows(heldout, 3, 10, 25)
    assert w.shape == (3, 25) and w.dtype == np.int32
    for row, start in zip(w, (0, 45, 90), strict=True):
        np.testing.assert_array_equal(row, np.tile(np.arange(start, start + 10), 3)[:25])
    with pytest.raises(ValueError, match="passage"):
        evaluation.repeated_windows(heldout, 3, 200, 25)


def test_frequency_multipliers_closed_forms():
    d, k = 128, 8.0
    with jax.enable_x64(True):
        pi = evaluation.frequency_multipliers(
            rope.RopeScaling("linear", factor=k), d, 1e4, dtype=jnp.float64
        )
        ntk = evaluation.frequency_multipliers(
            rope.RopeScaling("ntk_aware", factor=k), d, 1e4, dtype=jnp.float64
        )
    np.testing.assert_allclose(pi, np.full(d // 2, 1 / k), **tol("float64"))
    i = np.arange(d // 2)
    np.testing.assert_allclose(ntk, k ** (-2 * i / (d - 2)), **tol("float64"))


def test_bootstrap_ci_matches_numpy_with_the_same_indices(key):
    x = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    point, lo, hi = evaluation.bootstrap_ci(x, key=key, num_resamples=500, reduce=jnp.min)
    idx = np.asarray(jax.random.randint(key, (500, 9), 0, 9))
    stats = np.min(x.astype(np.float64)[idx].mean(1), axis=1)
    want_lo, want_hi = np.quantile(stats, [0.025, 0.975])
    np.testing.assert_allclose(
        [point, lo, hi], [x.mean(0).min(), want_lo, want_hi], **NAMED["mean_fp32"]
    )
    assert lo <= point <= hi


def test_bootstrap_ci_degenerate_and_bad_input(key):
    point, lo, hi = evaluation.bootstrap_ci(np.full(5, 0.25, np.float32), key=key)
    assert point == lo == hi == 0.25
    with pytest.raises(ValueError, match="samples"):
        evaluation.bootstrap_ci(np.zeros((0, 2), np.float32), key=key)
    with pytest.raises(ValueError, match="level"):
        evaluation.bootstrap_ci(np.ones(3, np.float32), key=key, level=1.5)


def test_bootstrap_interval_covers_the_mean_of_a_wide_sample(key):
    """With many windows the interval is about ±1.96 standard errors around the mean."""
    x = np.random.default_rng(1).normal(0.3, 1.0, size=400).astype(np.float32)
    _, lo, hi = evaluation.bootstrap_ci(x, key=key, num_resamples=4000)
    se = x.std(ddof=1) / np.sqrt(x.size)
    np.testing.assert_allclose(
        [lo, hi], [x.mean() - 1.96 * se, x.mean() + 1.96 * se], atol=BOOTSTRAP_SE_FRAC * se
    )


@pytest.mark.parametrize(
    "ci, want",
    [((-0.005, 0.008), True), ((0.02, 0.05), False), ((-0.3, -0.02), False),
     ((-0.005, 0.02), None), ((-0.5, 0.5), None), ((-0.01, 0.01), True)],
)  # fmt: skip
def test_equivalence_verdict(ci, want):
    assert evaluation.equivalence_verdict(ci, 0.01) is want


def test_scaling_identities_against_closed_forms():
    got = evaluation.scaling_identities(128, 8.0)
    np.testing.assert_allclose(
        got["ntk_aware_base"], 1e4 * 8.0 ** (128 / 126), **NAMED["identity64"]
    )
    assert got["mixed_one_vs_fixed"] < 1e-12
    assert got["mixed_zero_vs_pi"] < 1e-7  # exp(-ln k (m/P)^b) -> 1/k as b -> 0, error ~ b
    assert got["table_max_abs"] <= 5e-5  # the table has 4 decimals
    # NTK-mixed closed form (Su 9706): g_i = exp(-a (i+1)^b) with a (d/2)^b = ln k.
    m = np.arange(1, 65, dtype=np.float64)
    a = np.log(8.0) / 64**0.625
    np.testing.assert_allclose(
        evaluation.multipliers64("ntk_mixed", 0.625), np.exp(-a * m**0.625), **tol("float64")
    )


@pytest.mark.parametrize("name", ["rope_extrapolation", "lm_baseline"])
def test_gpu_configs_load(name):
    """The :gpu variants are only loaded here (they are sized for one H100)."""
    from jaxlab import config_args, data, launch, train

    c = launch.load_config(f"{name}:gpu")
    t = config_args.to_dataclass(train.TrainConfig, c.train)
    config_args.to_dataclass(data.DataConfig, c.data)
    assert c.model.train_len == t.seq_len == 512
    if name == "rope_extrapolation":
        assert c.eval_factor * t.seq_len == 4096
        assert min(c.eval_windows, c.repeat_windows) >= 64


def _synthetic_accuracies(offsets, noise, suffix_step=0.02):
    """Per-window accuracies: a shared per-window level plus a per-variant offset (paired)."""
    acc = {}
    for j, suffix in enumerate(("", "-log n†", "-log n")):
        for name, off in offsets.items():
            v = (noise + off + j * suffix_step).astype(np.float32)
            acc[name + suffix] = {"natural": v, "repeated": v}
    return acc


def test_order_claims_agree_and_disagree_on_constructed_orderings(key):
    """Offsets built to satisfy every ordering agree; swapping PI and Baseline disagrees."""
    noise = np.random.default_rng(2).normal(0.0, 0.01, size=24)
    offsets = {"Baseline": 0.2, "PI": 0.1, "NTK-old": 0.3, "NTK-fixed": 0.3,
               "NTK-mixed b=0.5": 0.4, "ReRoPE w=4": 0.45, "ReRoPE w=8": 0.5,
               "ReRoPE w=16": 0.05}  # fmt: skip
    kw = dict(key=key, rerope_windows=(4, 8, 16), train_len=16, mix_b=0.5, same=0.01,
              num_resamples=300, level=0.95, source="test")  # fmt: skip
    in_range = (noise + 0.5).astype(np.float32)  # equal to the best ReRoPE (w=8), per window
    claims = evaluation.order_claims(_synthetic_accuracies(offsets, noise), in_range, **kw)
    assert len(claims) == 12
    assert all(c["agree"] is True for c in claims), [c for c in claims if c["agree"] is not True]
    swapped = offsets | {"Baseline": 0.1, "PI": 0.2}
    claims = evaluation.order_claims(_synthetic_accuracies(swapped, noise), in_range, **kw)
    assert claims[0]["name"].startswith("PI < Baseline") and claims[0]["agree"] is False
    rows = evaluation.magnitude_rows(_synthetic_accuracies(offsets, noise), train_len=16,
                                     mix_b=0.5, source="test")  # fmt: skip
    want = [noise.mean() + offsets[n] for n in ("Baseline", "NTK-fixed", "NTK-mixed b=0.5",
                                                "ReRoPE w=8")]  # fmt: skip
    np.testing.assert_allclose([r["measured"] for r in rows], want, **NAMED["mean_fp32"])
    assert all(r["agree"] is None for r in rows)
