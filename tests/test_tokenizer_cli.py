"""Tests for unigram training and the ``jaxlab tokenizer`` CLI."""

import numpy as np
import pytest
import sentencepiece

from jaxlab.config_args import UsageError
from jaxlab.tokenizer import spm, training
from jaxlab.tokenizer.cli import cli
from jaxlab.tokenizer.encoder import Tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from jaxlab.tokenizer.corpus import stdlib_split

    d = tmp_path_factory.mktemp("cli")
    train, test = stdlib_split(max_train_bytes=20_000)
    (d / "train.txt").write_text(train)
    (d / "test.txt").write_text("\n".join(test.split("\n")[:300]) + "\n")
    return d


@pytest.fixture(scope="module")
def trained(corpus):
    path = corpus / "jl.model"
    assert cli(["train", "--input", str(corpus / "train.txt"), "--vocab-size", "400",
                "--output", str(path)]) == 0  # fmt: skip
    return path


def test_trained_model_loads_in_sentencepiece_with_identical_ids(trained, corpus):
    model = spm.from_sentencepiece(trained)
    assert model.vocab_size == 400
    sp = sentencepiece.SentencePieceProcessor(model_file=str(trained))
    lines = (corpus / "test.txt").read_text().split("\n")[:-1]
    tok = Tokenizer(model)
    assert tok.encode(lines) == sp.encode(lines)
    assert tok.decode(tok.encode(lines)) == lines


def test_em_increases_likelihood_and_prunes_to_size():
    lines = ["the cat sat on the mat", "the cat ate the rat", "a cat and a rat"] * 20
    log = []
    model = training.train(lines, training.TrainConfig(vocab_size=259 + 3 + 20), log=log.append)
    assert model.vocab_size == 259 + 3 + 20
    assert log[1]["log_likelihood"] >= log[0]["log_likelihood"] - 1e-3
    normal = [p for p, t in zip(model.pieces, model.types, strict=True) if t == 1]
    assert "▁cat" in normal  # a frequent word survives pruning
    assert set("thecatsonmr▁") <= set(normal)  # every character is kept


def test_cli_encode_and_sample(trained, corpus, tmp_path):
    out = tmp_path / "ids.txt"
    assert cli(["encode", "--model", str(trained), "--input", str(corpus / "test.txt"),
                "--output", str(out)]) == 0  # fmt: skip
    sp = sentencepiece.SentencePieceProcessor(model_file=str(trained))
    lines = (corpus / "test.txt").read_text().split("\n")[:-1]
    got = [[int(x) for x in row.split()] for row in out.read_text().split("\n")[:-1]]
    assert got == sp.encode(lines)
    argv = ["sample", "--model", str(trained), "--input", str(corpus / "test.txt")]
    assert (
        cli(argv + ["--output", str(out), "--alpha", "0.1", "--num-samples", "2", "--pieces"]) == 0
    )
    rows = out.read_text().split("\n")[:-1]
    assert len(rows) == 2 * len(lines)
    assert "".join(rows[0].split()).replace("▁", " ").lstrip() == lines[0].lstrip()


ENC = ["encode", "--input", "{d}/test.txt", "--output", "x"]
SMP = ["sample", "--model", "{m}", "--input", "{d}/test.txt", "--output", "x", "--alpha"]
TRN = ["train", "--input", "{d}/train.txt", "--output", "x", "--vocab-size"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (ENC + ["--model", "{d}/missing.model"], "no such file"),
        (ENC + ["--model", "{d}/test.txt"], "cannot load"),
        (
            ["encode", "--model", "{m}", "--input", "{d}/bad.txt", "--output", "x"],
            "not valid UTF-8",
        ),
        (["encode", "--model", "{m}", "--input", "{d}/nope.txt", "--output", "x"], "no such file"),
        (SMP + ["-1"], "--alpha"),
        (SMP + ["nan"], "--alpha"),
        (SMP + ["abc"], "invalid float"),
        (TRN + ["0"], "positive integer"),
        (TRN + ["100"], "--vocab-size"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_usage_errors(trained, corpus, tmp_path, argv, match):
    (corpus / "bad.txt").write_bytes(b"ok\n\xff\xfe broken\n")
    argv = [a.format(d=corpus, m=trained) for a in argv]
    argv = [str(tmp_path / a) if a == "x" else a for a in argv]
    with pytest.raises(UsageError, match=match):
        cli(argv)
    assert np.all([not (tmp_path / "x").exists()])
