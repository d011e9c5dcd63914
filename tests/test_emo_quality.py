"""Sample-quality measures (jaxlab.emo.quality) against the mauve-text package and brute force."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import NAMED
from sklearn.metrics import auc

from jaxlab.emo import quality

mauve_pkg = importlib.import_module("mauve.compute_mauve")


def test_mauve_from_histograms_equals_the_mauve_package():
    rng = np.random.default_rng(0)
    for _ in range(5):
        p, q = rng.dirichlet(np.ones(9)), rng.dirichlet(np.ones(9))
        p[3] = 0.0  # an empty bucket on one side
        p /= p.sum()
        weights = np.linspace(1e-6, 1 - 1e-6, 25)
        x, y = mauve_pkg.get_divergence_curve_for_multinomials(p, q, weights, 5).T
        i1, i2 = np.argsort(x), np.argsort(y)
        want = 0.5 * (auc(x[i1], y[i1]) + auc(y[i2], x[i2]))
        assert abs(quality.mauve_from_histograms(p, q) - want) < 1e-12
    h = rng.dirichlet(np.ones(9))
    assert abs(quality.mauve_from_histograms(h, h) - 1.0) < 1e-5


def test_mauve_end_to_end_equals_the_mauve_package_on_separated_clusters(key):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 16)) * 10

    def draw(counts):
        return np.concatenate(
            [centres[i] + 0.3 * rng.normal(size=(n, 16)) for i, n in enumerate(counts)]
        )

    p, q = draw([100, 50, 150, 120, 80]), draw([60, 140, 100, 100, 100])
    want = mauve_pkg.compute_mauve(p_features=p, q_features=q, num_buckets=5, verbose=False)
    got = quality.mauve(p, q, num_buckets=5, key=key)
    assert abs(got["mauve"] - want.mauve) < 1e-9
    np.testing.assert_allclose(np.sort(got["p_hist"]), np.sort(want.p_hist), **NAMED["histogram64"])
    same = quality.mauve(p, draw([100, 50, 150, 120, 80]), num_buckets=5, key=key)["mauve"]
    assert same > 0.99 > got["mauve"]


def test_distinct_n_and_repetition_rate_by_hand():
    s = np.array([[1, 2, 1, 2, 1], [3, 4, 5, 6, 7]])
    # bigrams: (1,2),(2,1),(1,2),(2,1) | (3,4),(4,5),(5,6),(6,7): 6 unique of 8
    assert quality.distinct_n(s, 2) == 6 / 8
    assert quality.repetition_rate(s, 2) == pytest.approx(0.5 * (1 - 2 / 4) + 0.5 * 0.0)
    assert quality.distinct_n(s, 5) == 1.0
    with pytest.raises(ValueError, match="n=6"):
        quality.distinct_n(s, 6)


def test_sampling_is_ancestral_and_causal(key):
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    logp = jnp.log(jnp.asarray(probs, jnp.float32))

    def unigram(tokens_BL):  # ignores context: each new token ~ probs
        return jnp.broadcast_to(logp, (*tokens_BL.shape, 4))

    out = jax.jit(lambda k: quality.sample(unigram, jnp.zeros((2000, 2), jnp.int32), 3, key=k))(key)
    freq = np.bincount(np.asarray(out).ravel(), minlength=4) / out.size
    se = np.sqrt(probs * (1 - probs) / out.size)
    assert np.all(np.abs(freq - probs) < 5 * se)  # 5 sigma: false-failure rate < 1e-5

    def copy_last(tokens_BL):  # next token = the previous one, deterministically
        return jnp.where(jax.nn.one_hot(tokens_BL, 4) > 0, 0.0, -1e9).astype(jnp.float32)

    got = quality.sample(copy_last, jnp.array([[0, 3], [1, 2]], jnp.int32), 4, key=key)
    np.testing.assert_array_equal(got, [[3, 3, 3, 3], [2, 2, 2, 2]])


def test_paired_difference_ci_by_hand():
    mean, lo, hi = quality.paired_difference_ci([3.0, 5.0, 7.0], [2.0, 3.0, 4.0])
    half = 4.302652729911275 / np.sqrt(3.0)  # t_{0.975, 2} * std(ddof=1)=1 / sqrt(3)
    assert mean == 2.0 and abs(lo - (2.0 - half)) < 1e-9 and abs(hi - (2.0 + half)) < 1e-9
    assert quality.paired_difference_ci([1.0], [0.0])[1] == -np.inf
