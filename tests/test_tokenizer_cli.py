"""Tests for unigram training and the ``jaxlab tokenizer`` CLI."""

import errno
import os

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


# ---- real-text trainer cases and file handling (issue: trainer crashes, partial outputs) ------


def _multilingual(lines: int, seed: int = 0) -> list[str]:
    """Zipf-distributed text over ~540 characters (CJK, kana, Cyrillic, Latin, NUL)."""
    rng = np.random.default_rng(seed)
    chars = [chr(0x4E00 + i) for i in range(400)] + [chr(0x3041 + i) for i in range(80)]
    chars += [chr(0x0430 + i) for i in range(32)] + list("abcdefghijklmnopqrstuvwxyz") + ["\x00"]
    p = 1.0 / np.arange(1, len(chars) + 1) ** 1.1
    out = []
    for _ in range(lines):
        n = int(rng.integers(1, 40))
        s = "".join(chars[i] for i in rng.choice(len(chars), n, p=p / p.sum()))
        out.append(f"{s[: n // 3]} {s[n // 3 :]}")
    return out


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    lines = _multilingual(400)
    (d / "train.txt").write_text("\n".join(lines) + "\n")
    (d / "test.txt").write_text("\n".join(_multilingual(200, seed=1) + ["\x00", "a\x00b"]) + "\n")
    return d


def test_train_with_fewer_pieces_than_characters_matches_sentencepiece(multilingual):
    """450 - 259 special/byte pieces = 191 pieces for ~500 distinct characters: with character
    coverage 0.9 the rare characters become byte pieces; SentencePiece gives the same ids (also
    on lines with NUL, which is never a piece), and the same vocabulary is refused at coverage
    0.9995 with a one-line error naming the options, as SentencePiece's trainer refuses it."""
    d = multilingual
    train = (d / "train.txt").read_text()
    assert len(set(train) - {"\n"}) > 450
    argv = ["train", "--input", str(d / "train.txt"), "--vocab-size", "450"]
    with pytest.raises(UsageError, match="character_coverage"):
        cli(argv + ["--output", str(d / "no.model")])
    assert not (d / "no.model").exists()
    path = d / "m.model"
    assert cli(argv + ["--output", str(path), "--character-coverage", "0.9"]) == 0
    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    lines = (d / "test.txt").read_text().split("\n")[:-1]
    model = spm.from_sentencepiece(path)
    assert "\x00" not in model.pieces
    tok = Tokenizer(model)
    assert tok.encode(lines) == sp.encode(lines)
    assert tok.decode(tok.encode(lines)) == lines


def test_train_cli_errors_are_one_line(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "in.txt").write_text("some text\n")
    with pytest.raises(UsageError, match="no training text"):
        cli(["train", "--input", str(tmp_path / "empty.txt"), "--vocab-size", "300",
             "--output", str(tmp_path / "m.model")])  # fmt: skip
    with pytest.raises(UsageError, match="directory does not exist"):
        cli(["train", "--input", str(tmp_path / "in.txt"), "--vocab-size", "300",
             "--output", str(tmp_path / "missing" / "m.model")])  # fmt: skip
    with pytest.raises(UsageError, match="also an input"):
        cli(["train", "--input", str(tmp_path / "in.txt"), "--vocab-size", "300",
             "--output", str(tmp_path / "in.txt")])  # fmt: skip
    with pytest.raises(UsageError, match="character-coverage"):
        cli(["train", "--input", str(tmp_path / "in.txt"), "--vocab-size", "300",
             "--output", str(tmp_path / "m.model"), "--character-coverage", "0"])  # fmt: skip
    assert (tmp_path / "in.txt").read_text() == "some text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "in.txt"]


@pytest.mark.parametrize("seed", ["-1", str(2**64), "1.5"])
def test_sample_seed_out_of_range_is_a_usage_error(trained, corpus, tmp_path, seed):
    with pytest.raises(UsageError, match="--seed"):
        cli(["sample", "--model", str(trained), "--input", str(corpus / "test.txt"),
             "--output", str(tmp_path / "x"), "--alpha", "0.1", "--seed", seed])  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_encode_refuses_output_equal_to_input(trained, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("print(1)\n")
    with pytest.raises(UsageError, match="also an input"):
        cli(["encode", "--model", str(trained), "--input", str(text), "--output", str(text)])
    assert text.read_text() == "print(1)\n"


def test_stdin_and_stdout(trained, corpus, monkeypatch, capsysbinary):
    import io
    import sys

    lines = (corpus / "test.txt").read_text().split("\n")[:20]
    data = ("\n".join(lines) + "\n").encode()
    sp = sentencepiece.SentencePieceProcessor(model_file=str(trained))
    want = "".join(" ".join(map(str, r)) + "\n" for r in sp.encode(lines)).encode()
    for source in ("-", "/dev/stdin"):
        stdin = io.TextIOWrapper(io.BytesIO(data))
        monkeypatch.setattr(sys, "stdin", stdin)
        if source == "/dev/stdin":  # a real pipe behind /dev/stdin
            r, w = os.pipe()
            os.write(w, data)
            os.close(w)
            saved = os.dup(0)
            os.dup2(r, 0)
            os.close(r)
        try:
            assert cli(["encode", "--model", str(trained), "--input", source, "--output", "-"]) == 0
        finally:
            if source == "/dev/stdin":
                os.dup2(saved, 0)
                os.close(saved)
        assert capsysbinary.readouterr().out == want


def test_failed_write_leaves_no_partial_file(trained, corpus, tmp_path, monkeypatch):
    """A full disk (or an interrupt) while writing: the old output stays intact, no temp file."""
    out = tmp_path / "ids.txt"
    out.write_text("previous\n")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UsageError, match="No space left"):
        cli(["encode", "--model", str(trained), "--input", str(corpus / "test.txt"),
             "--output", str(out)])  # fmt: skip
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ids.txt"]


def test_nul_pieces_are_refused_like_sentencepiece(tmp_path):
    import dataclasses

    model = training.train(["ab c", "abc"] * 5, training.TrainConfig(vocab_size=262 + 5))
    bad = dataclasses.replace(model, pieces=(*model.pieces[:-1], "\x00"))
    with pytest.raises(ValueError, match="NUL"):
        spm.write_model_proto(bad, tmp_path / "bad.model")
    assert not (tmp_path / "bad.model").exists()
