"""Data: deterministic stdlib corpus and split, user files, deterministic batches."""

import jax
import numpy as np
import pytest

from jaxlab import data


@pytest.fixture(scope="module")
def corpus():
    return data.load_corpus(data.DataConfig(max_bytes=200_000))


def test_stdlib_split_is_deterministic_and_disjoint(corpus):
    again = data.load_corpus(data.DataConfig(max_bytes=200_000))
    assert again.train_files == corpus.train_files
    assert again.heldout_files == corpus.heldout_files
    np.testing.assert_array_equal(again.train, corpus.train)
    np.testing.assert_array_equal(again.heldout, corpus.heldout)
    assert not set(corpus.train_files) & set(corpus.heldout_files)
    # A fixed fraction (about 1/heldout_every) of files is held out, chosen by name.
    frac = len(corpus.heldout_files) / (len(corpus.heldout_files) + len(corpus.train_files))
    assert 0.03 < frac < 0.2
    assert list(corpus.train_files) == sorted(corpus.train_files)


def test_user_files_replace_the_corpus(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"0123456789" * 10)
    b.write_bytes(b"abcdefghij" * 10)
    c = data.load_corpus(data.DataConfig(files=(str(a), str(b)), heldout_every=10))
    assert c.train.size == 180 and c.heldout.size == 20
    assert bytes(c.heldout[:10]) == b"0123456789"  # last tenth of a.txt
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        data.load_corpus(data.DataConfig(files=(str(tmp_path / "missing.txt"),)))


def test_batches_depend_only_on_key(corpus):
    sample = jax.jit(lambda t, k: data.sample_windows(t, 8, 33, key=k))
    k1, k2 = jax.random.key(1), jax.random.key(2)
    b1, b1_again, b2 = sample(corpus.train, k1), sample(corpus.train, k1), sample(corpus.train, k2)
    np.testing.assert_array_equal(b1, b1_again)
    assert not np.array_equal(b1, b2)
    assert b1.shape == (8, 33) and b1.dtype == np.int32
    # Every window is a contiguous slice of the corpus.
    text = bytes(corpus.train)
    for row in np.asarray(b1):
        assert bytes(row.astype(np.uint8)) in text


def test_unigram_entropy():
    assert data.unigram_entropy_bits(np.array([0, 1, 2, 3] * 5, np.uint8)) == pytest.approx(2.0)
    assert data.unigram_entropy_bits(np.zeros(10, np.uint8)) == 0.0
