"""Tests for jaxlab.tokenizer.evaluation: v1's law on K equal candidates, the alpha -> infinity
limits, and the three speed ratios."""

import math

import jax
import pytest

from jaxlab.tokenizer import evaluation as ev
from jaxlab.tokenizer import laws, reference
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import from_pieces


@pytest.mark.parametrize("k", [3, 4, 6])
def test_equal_candidates_are_equal_and_meet_only_at_the_end(k):
    vocab, support, law = laws.equal_candidates(k)
    segs = reference.enumerate_segmentations(support[0][0], vocab)
    assert sorted(segs) == sorted(support)  # exactly k segmentations
    scores = {sum(vocab[p] for p in w) for w in segs}
    assert len(scores) == 1  # all equally scored (binary fractions: exact sums)
    assert math.fsum(law) == 1.0 and law[-1] == 0.5 and law[0] == law[1] == 0.5 ** (k - 1)
    # The pure-Python v1 (candidates longest first) follows the law exactly in expectation:
    # with k = 3 its arrival order matches THREE_EQUAL's.
    if k == 3:
        assert support == ev.THREE_EQUAL_SUPPORT and law == ev.THREE_EQUAL_V1


def test_equal_candidates_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        laws.equal_candidates(1)


def test_v1_equal_candidates_follows_the_halving_law_not_the_uniform_one():
    fit = laws.v1_equal_candidates(4, 8000, key=jax.random.key(1))
    assert fit["max_abs_error"] <= fit["bound"]
    assert fit["pvalue_uniform"] < 1e-10


def test_temperature_limit_gap_shrinks_inside_its_bound():
    toy = reference.toy_vocab()
    tok = Tokenizer(from_pieces(toy))
    rows = laws.temperature_limit(tok, toy, laws.LIMIT_TEXTS, (1.0, 10.0, 1000.0), slack=1e-5)
    assert all(r["ok"] for r in rows)
    assert rows[0]["max_gap"] > 0.1 > 1e-3 > rows[-1]["max_gap"]
    # A wrong V (shifted by 0.1) must fail the bound at large alpha: the check can fail.
    shifted = {p: v - 0.1 for p, v in toy.items()}
    rows = laws.temperature_limit(tok, shifted, laws.LIMIT_TEXTS, (1000.0,), slack=1e-5)
    assert not rows[0]["ok"]


def test_viterbi_limits():
    toy = reference.toy_vocab()
    out = laws.viterbi_limits(Tokenizer(from_pieces(toy)), toy, laws.LIMIT_TEXTS)
    assert out == dict(
        same=len(laws.LIMIT_TEXTS), total=len(laws.LIMIT_TEXTS), negative_refused=True
    )


def test_speed_ratios_pick_the_right_baselines():
    speed = {
        "SentencePiece Viterbi (1 thread)": (4.0, 5.0, 4.0),
        "SentencePiece Viterbi (2 thread)": (8.0, 9.0, 4.0),
        "jaxlab Viterbi": (2.0, 3.0, 1.0),
        "SentencePiece FFBS alpha=0.1 (1 thread)": (1.0, 1.0, 1.0),
        "SentencePiece FFBS alpha=0.1 (2 thread)": (2.0, 2.0, 1.0),
        "jaxlab FFBS alpha=0.1": (1.0, 1.0, 0.5),
    }
    assert ev.speed_ratios(speed, "Viterbi") == dict(
        one_thread=0.5, equal_threads=0.25, cpu_time=0.25
    )
    claims, figures = ev.speed_claims(speed, goal_source="g", time_source="t")
    assert figures["sampling_over_viterbi_time"] == 2.0
    assert figures["sp_sampling_over_viterbi_time"] == 4.0
    assert "within the spec's 2x target" in claims[-1]["measured"]
    assert all(c["agree"] is None for c in claims)
