"""Tests for jaxlab.tokenizer: enumeration, exact sampling, SentencePiece parity, hashing."""

import math
import os
import random

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import NAMED
from scipy import stats

from jaxlab.tokenizer import encoder, lattice, native, reference, spm
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import from_pieces

TOY = reference.toy_vocab()
N_DRAWS = 20_000  # per (method, alpha); 4-sigma cell tolerance below, false-failure rate < 1e-3


def _freqs(tok, text, n, alpha, method, key):
    out = tok.tokenize([text] * n, alpha=alpha, key=key, method=method)
    support = list(reference.exact_distribution(text, dict(tok_vocab(tok)), max(alpha, 0.0)))
    return support, np.array(reference.frequencies(out, support), np.float64)


def tok_vocab(tok):
    m = tok.model
    return {p: float(s) for p, s, t in zip(m.pieces, m.scores, m.types, strict=True) if t == 1}


@pytest.fixture(scope="module")
def toy_tok():
    return Tokenizer(from_pieces(TOY), host_dp=False)  # the JAX DP (host C: test_tokenizer_native)


def test_toy_log_partition_matches_spec(toy_tok):
    np.testing.assert_allclose(
        toy_tok.log_partition(["abcd"], 1.0), [-3.055608], **NAMED["spec_6dp"]
    )
    np.testing.assert_allclose(
        toy_tok.log_partition(["abcd"], 0.1), [1.528442], **NAMED["spec_6dp"]
    )
    assert reference.log_partition("abcd", TOY, 1.0) == pytest.approx(-3.055608, abs=1e-6)


def _random_vocab(rng, alphabet="abc", size=12):
    pieces = set(alphabet)  # single symbols keep every string segmentable
    while len(pieces) < size:
        pieces.add("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 4))))
    return {p: math.log(rng.uniform(0.01, 1.0)) for p in sorted(pieces)}


def test_dp_equals_brute_force_on_random_vocabularies():
    rng = random.Random(0)
    for _ in range(6):
        vocab = _random_vocab(rng)
        vocab32 = {p: float(np.float32(v)) for p, v in vocab.items()}
        tok = Tokenizer(from_pieces(vocab32))
        texts = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 10))) for _ in range(8)]
        for alpha in (1.0, 0.3):
            want = [reference.log_partition(t, vocab32, alpha) for t in texts]
            np.testing.assert_allclose(tok.log_partition(texts, alpha), want, **NAMED["dp_fp32"])
            ent = []
            for t in texts:
                p = np.array(list(reference.exact_distribution(t, vocab32, alpha).values()))
                ent.append(float(-(p * np.log(p)).sum()))
            np.testing.assert_allclose(tok.entropy(texts, alpha), ent, **NAMED["entropy_dp_fp32"])
        got = tok.tokenize(texts)
        for t, w in zip(texts, got, strict=True):
            _, best = reference.viterbi(t, vocab32)
            assert "".join(w) == t
            assert sum(vocab32[p] for p in w) == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize("method", ["ffbs", "online"])
def test_exact_samplers_pass_chi_square(toy_tok, method, key):
    for i, alpha in enumerate((0.0, 0.1, 1.0, 5.0)):
        exact = reference.exact_distribution("abcd", TOY, alpha)
        out = toy_tok.tokenize(
            ["abcd"] * N_DRAWS, alpha=alpha, key=jax.random.fold_in(key, i), method=method
        )
        support = list(exact)
        counts = np.array(reference.frequencies(out, support), np.float64)
        p = np.array([exact[w] for w in support])
        pval = stats.chisquare(counts, p * N_DRAWS).pvalue
        assert pval > 1e-3, (method, alpha, pval)
        sigma = np.sqrt(p * (1 - p) / N_DRAWS)
        assert np.all(np.abs(counts / N_DRAWS - p) <= 4 * sigma + 1e-12), (method, alpha)
        if alpha == 0.0:
            np.testing.assert_allclose(p, 1 / 8)


def test_eager_draws_equal_ffbs_draws(toy_tok, key):
    # Same uniforms, same conditional law at every node: the same samples, except where float
    # rounding of the two normalisations moves a uniform across a CDF step (very rare).
    texts = ["abcd"] * (N_DRAWS - 1) + ["abcdabcdabcd"]
    a = toy_tok.encode(texts, alpha=0.5, key=key, method="ffbs")
    b = toy_tok.encode(texts, alpha=0.5, key=key, method="eager")
    assert np.mean([x == y for x, y in zip(a, b, strict=True)]) >= 0.999
    c = toy_tok.encode(texts, alpha=0.5, key=jax.random.fold_in(key, 1))
    assert a != c


def test_v1_is_biased(toy_tok, key):
    exact = reference.exact_distribution("abcd", TOY, 1.0)
    support = list(exact)
    out = toy_tok.tokenize(["abcd"] * N_DRAWS, alpha=1.0, key=key, method="v1")
    counts = np.array(reference.frequencies(out, support), np.float64)
    p = np.array([exact[w] for w in support])
    assert stats.chisquare(counts, p * N_DRAWS).pvalue < 1e-10
    # The spec's v1 column (computed): abcd .3472, ab|cd .2141, a|bcd .0999, abc|d .2702.
    v1 = {("abcd",): 0.3472, ("ab", "cd"): 0.2141, ("a", "bcd"): 0.0999, ("abc", "d"): 0.2702}
    for w, q in v1.items():
        assert counts[support.index(w)] / N_DRAWS == pytest.approx(q, abs=0.012)


def test_v1_three_equal_candidates_quarter_quarter_half(key):
    # a|bc, ab|c and abc all score -3; candidates at the end of "abc" arrive abc, bc, c. The
    # trailing "z" (one segmentation) keeps the batch shape of the other sampling tests.
    vocab = {"a": -1.0, "bc": -2.0, "ab": -1.5, "c": -1.5, "abc": -3.0, "z": -1.0}
    tok = Tokenizer(from_pieces(vocab))
    n = N_DRAWS
    for method, want in (("v1", [0.25, 0.25, 0.5]), ("online", [1 / 3] * 3)):
        out = [w[:-1] for w in tok.tokenize(["abcz"] * n, alpha=1.0, key=key, method=method)]
        counts = reference.frequencies(out, [("abc",), ("a", "bc"), ("ab", "c")])
        np.testing.assert_allclose(np.array(counts) / n, want, **NAMED["mc_20k"])
    rng = random.Random(0)
    n = 5_000
    ref = [reference.sample_v1("abc", vocab, 1.0, rng) for _ in range(n)]
    counts = reference.frequencies(ref, [("abc",), ("a", "bc"), ("ab", "c")])
    np.testing.assert_allclose(np.array(counts) / n, [0.25, 0.25, 0.5], **NAMED["mc_5k"])


def test_python_references_exactness():
    rng = random.Random(1)
    n = 3_000  # the biased samplers reach p ~ 1e-85 at this size
    exact = reference.exact_distribution("abcd", TOY, 1.0)
    support = list(exact)
    p = np.array([exact[w] for w in support])
    for sampler, is_exact in (
        (reference.sample_online, True),
        (reference.sample_v1, False),
        (reference.sample_4e92759, False),
    ):
        out = [sampler("abcd", TOY, 1.0, rng) for _ in range(n)]
        pval = stats.chisquare(reference.frequencies(out, support), p * n).pvalue
        assert (pval > 1e-3) if is_exact else (pval < 1e-10), (sampler.__name__, pval)


def test_alpha_limits(toy_tok, key):
    texts = ["abcd", "abcdab", "dcba", "bcda"]
    best = toy_tok.encode(texts)
    big = toy_tok.encode(texts * 50, alpha=1e4, key=key)
    assert big == best * 50
    z = toy_tok.log_partition(texts, 200.0) / 200.0
    v = [reference.viterbi(t, TOY)[1] for t in texts]
    np.testing.assert_allclose(z, v, **NAMED["alpha_limit"])


@pytest.mark.parametrize("alpha", [-1.0, -0.0001, math.nan, math.inf])
def test_bad_alpha_raises_naming_alpha(toy_tok, key, alpha):
    with pytest.raises(ValueError, match="alpha"):
        toy_tok.encode(["abcd"], alpha=alpha, key=key)
    with pytest.raises(ValueError, match="alpha"):
        toy_tok.log_partition(["abcd"], alpha)


def test_api_misuse_raises(toy_tok, key):
    with pytest.raises(ValueError, match="single string"):
        toy_tok.encode("abcd")  # a str is not a list of lines
    with pytest.raises(ValueError, match="key"):
        toy_tok.encode(["abcd"], alpha=0.5)
    with pytest.raises(ValueError, match="method"):
        toy_tok.encode(["abcd"], alpha=0.5, key=key, method="nbest")
    assert toy_tok.encode(["abcd"], alpha=None) == toy_tok.encode(["abcd"])
    assert toy_tok.encode(("abcd", "ab")) == toy_tok.encode(["abcd", "ab"])


def test_layout_invariance_and_single_compile(toy_tok, key):
    texts = ["".join(random.Random(i).choice("abcd") for _ in range(i % 13)) for i in range(300)]
    a = toy_tok.encode(texts, alpha=0.7, key=key, row_len=32)
    b = toy_tok.encode(texts, alpha=0.7, key=key, row_len=64)
    assert a == b  # a line's sample does not depend on how lines are packed
    # A fresh jit of the device function that may be traced once: the later calls (same
    # bucket, other alphas, keys and line counts) must neither retrace nor recompile.
    counted = jax.jit(chex.assert_max_traces(encoder._forward, n=1), static_argnames=("method",))
    toy_tok.device_fn = counted
    try:
        for i in range(4):
            toy_tok.encode(texts[i:], alpha=0.7 + i, key=jax.random.fold_in(key, i), row_len=64)
    finally:
        toy_tok.device_fn = encoder.DEVICE_FN
        chex.clear_trace_counter()


def test_forced_hash_collisions_keep_lattice_exact():
    rng = random.Random(3)
    vocab = _random_vocab(rng, alphabet="abcdef", size=60)
    model = from_pieces(vocab)
    tables = lattice.build_tables(model, table_bits=7, dense_limit=0)  # load ~0.5: collisions
    assert tables.trans is None and tables.max_probe > 1
    text = "".join(rng.choice("abcdef") for _ in range(300))
    sym = lattice.dense_symbols(tables, np.frombuffer(text.encode("utf-32-le"), np.uint32))
    ids = lattice.find_edges(tables, sym, np.arange(len(text)), unk_id=model.unk_id)
    index = model.piece_to_id()
    want = np.full_like(ids, tables.none_id)
    for e in range(1, len(text) + 1):
        for j, _ in reference.candidates(text, vocab, e, tables.max_len):
            want[e - 1, e - 1 - j] = index[text[j:e]]
    np.testing.assert_array_equal(ids, want)


# ---- SentencePiece parity (models trained here, at test time) -------------------------------


def _corpus_lines():
    from jaxlab.tokenizer.corpus import stdlib_split

    train, test = stdlib_split(max_train_bytes=200_000)
    return train, test.split("\n")[:1500]


@pytest.fixture(scope="module")
def sp_models(tmp_path_factory):
    import sentencepiece

    d = tmp_path_factory.mktemp("sp")
    train, test = _corpus_lines()
    (d / "train.txt").write_text(train)
    out = {}
    for name, kw in {
        "bytes": dict(byte_fallback=True, remove_extra_whitespaces=False),
        "unk": dict(byte_fallback=False, remove_extra_whitespaces=True, character_coverage=0.98),
    }.items():
        path = spm.train_sentencepiece(d / "train.txt", d / name, 400, num_threads=1, **kw)
        out[name] = (sentencepiece.SentencePieceProcessor(model_file=str(path)), path)
    return out, test


@pytest.mark.parametrize(
    ("use_native", "host_dp"), [(True, True), (True, False), (False, False)],
    ids=["host-c", "native-jax", "numpy-jax"],
)  # fmt: skip
@pytest.mark.parametrize("name", ["bytes", "unk"])
def test_sentencepiece_id_parity(sp_models, name, use_native, host_dp):
    """Every path (the host C DP; the JAX DP after the compiled or the NumPy lattice) gives
    SentencePiece's ids."""
    if use_native and not native.available():
        if os.environ.get("JAXLAB_REQUIRE_NATIVE") == "1":  # CI: the build must have happened
            pytest.fail("JAXLAB_REQUIRE_NATIVE=1 but the native extension is not built")
        pytest.skip("the native extension is not built: only the NumPy host path exists here")
    models, test = sp_models
    sp, path = models[name]
    extra = ["", "   ", "  two  spaces  ", "snow ☃ man ☃☃ end", "日本語 ünïcödé \t tab", "x"]
    lines = test + extra
    tok = Tokenizer(spm.from_sentencepiece(path), use_native=use_native, host_dp=host_dp)
    assert tok.dp_path.startswith("host-c" if host_dp else "jax")
    got = tok.encode(lines)
    want = sp.encode(lines)
    bad = [i for i in range(len(lines)) if got[i] != want[i]]
    assert not bad, [(lines[i], got[i], want[i]) for i in bad[:3]]
    assert tok.decode(got) == sp.decode(want)
    if name == "bytes":
        assert tok.decode(got) == lines  # identity normaliser, no whitespace removal


def test_chunked_pipeline_changes_no_result(sp_models, key, monkeypatch):
    """encode() pipelines over chunks of ~CHUNK_CHARS characters; tiny chunks (down to one line
    each) must give the same Viterbi ids and the same samples for the same key."""
    models, test = sp_models
    sp, path = models["bytes"]
    lines = test[:40] + ["", "snow ☃ man", "x"]
    tok = Tokenizer(spm.from_sentencepiece(path), host_dp=False)  # the chunked JAX pipeline
    whole = [tok.encode(lines), tok.encode(lines, alpha=0.1, key=key)]
    monkeypatch.setattr(encoder, "CHUNK_CHARS", 7)
    assert len(tok.chunks(lines)) > 10
    chunked = [tok.encode(lines), tok.encode(lines, alpha=0.1, key=key)]
    assert chunked == whole
    assert chunked[0] == sp.encode(lines)


def test_sentencepiece_entropy_and_sampling_law(sp_models, key):
    # sentencepiece 0.2.3's Python wrapper has no calculate_entropy, so the entropy check is
    # against brute-force enumeration over the SentencePiece vocabulary (normalised text).
    models, test = sp_models
    sp, path = models["bytes"]
    tok = Tokenizer(spm.from_sentencepiece(path))
    vocab = tok_vocab(tok)
    lines = [t.strip()[:9] for t in test if len(t.strip()) >= 3]
    lines = [t for t in lines if all(c in vocab for c in t.replace(" ", "\u2581"))][:12]
    for alpha in (0.1, 1.0):
        want = []
        for t in lines:
            p = np.array(
                list(
                    reference.exact_distribution(
                        "\u2581" + t.replace(" ", "\u2581"), vocab, alpha
                    ).values()
                )
            )
            want.append(float(-(p * np.log(p)).sum()))
        np.testing.assert_allclose(tok.entropy(lines, alpha), want, **NAMED["entropy_dp_fp32"])
    # Two-sample chi-square: jaxlab FFBS vs SentencePiece FFBS on one short line.
    line = "return self"
    n = 5000
    ours = [tuple(x) for x in tok.encode([line] * n, alpha=0.5, key=key)]
    theirs = [
        tuple(sp.encode(line, enable_sampling=True, nbest_size=-1, alpha=0.5)) for _ in range(n)
    ]
    support = sorted(set(ours) | set(theirs))
    table = np.array([reference.frequencies(ours, support), reference.frequencies(theirs, support)])
    table = table[:, table.sum(0) >= 5]
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_from_sentencepiece_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"\x0b\x0c\xff")
    with pytest.raises(ValueError):
        spm.from_sentencepiece(bad)


def test_nbest_equals_enumeration_and_sentencepiece(sp_models):
    rng = random.Random(5)
    vocab = {p: float(np.float32(v)) for p, v in _random_vocab(rng).items()}
    tok = Tokenizer(from_pieces(vocab))
    for text in ("abcabca", "cab", "a"):
        got = tok.nbest(text, 6)
        segs = reference.enumerate_segmentations(text, vocab)
        want = sorted((sum(vocab[p] for p in w) for w in segs), reverse=True)[:6]
        np.testing.assert_allclose([s for _, s in got], want, **NAMED["dp_fp32"])
        for ids, score in got:
            pieces = [tok.model.pieces[i] for i in ids]
            assert "".join(pieces) == text
            assert sum(vocab[p] for p in pieces) == pytest.approx(score, abs=1e-4)
    models, test = sp_models
    sp, path = models["bytes"]
    stok = Tokenizer(spm.from_sentencepiece(path))
    for line in [t for t in test if t.strip()][:5] + ["snow ☃ man"]:
        got = stok.nbest(line[:40], 5)  # the 5th only reveals a tie at rank 4
        want = sp.nbest_encode(line[:40], nbest_size=4)
        scores = [np.inf] + [s for _, s in got] + [-np.inf]
        for i, (ids, _) in enumerate(got[:4]):  # tied ranks may come in either order
            if min(abs(scores[i + 1] - scores[i]), abs(scores[i + 2] - scores[i + 1])) > 1e-3:
                assert ids == want[i]


def test_empty_inputs_and_control_ids(toy_tok, key):
    assert toy_tok.encode([]) == []
    assert toy_tok.encode(["", "ab", ""], alpha=0.3, key=key)[::2] == [[], []]
    np.testing.assert_array_equal(toy_tok.log_partition(["", "a"], 1.0)[:1], [0.0])
    with pytest.raises(ValueError, match="needs a key"):
        toy_tok.encode(["ab"], alpha=0.5)


def test_single_row_dp_equals_its_column_in_a_batch(toy_tok, key):
    """The DPs take ``[L, M, R]`` lattices or a single row ``[L, M]``; a row alone gives what
    it gives as one column of a batch."""
    from jaxlab.tokenizer import decoding

    batch = toy_tok.prepare(["abcd", "dcba", "abc"], row_len=8)
    assert batch.ids.shape[2] >= 2
    table = toy_tok._edge_scores
    ids, starts, lines, offsets = map(
        jnp.asarray, (batch.ids, batch.starts, batch.lines, batch.offsets)
    )
    whole = decoding.viterbi(ids, starts, table)
    for r in range(ids.shape[2]):
        one = decoding.viterbi(ids[:, :, r], starts[:, r], table)
        for a, b in zip(one, whole, strict=True):
            np.testing.assert_array_equal(a, b[:, r])
        z1 = decoding.log_partition(ids[:, :, r], starts[:, r], 0.5, table)
        z = decoding.log_partition(ids, starts, 0.5, table)
        np.testing.assert_allclose(z1, z[:, r], **NAMED["batching_fp32"])
        args = (lines[:, r], offsets[:, r], 0.7, "online", table)
        k1, _ = decoding.sample(ids[:, :, r], starts[:, r], *args, key=key)
        k, _ = decoding.sample(ids, starts, lines, offsets, 0.7, "online", table, key=key)
        np.testing.assert_array_equal(k1, k[:, r])


@pytest.mark.parametrize("byte_fallback", [True, False], ids=["bytes", "unk"])
def test_remove_extra_whitespaces_literal_space_symbol_matches_sentencepiece(
    tmp_path, byte_fallback, key
):
    """With ``remove_extra_whitespaces`` SentencePiece strips trailing ▁ after escaping (so
    also a literal U+2581 at the end of a line) and, decoding, strips the leading ▁ of every
    piece until something visible is decoded. Ids and decodes (of its own Viterbi and sampled
    ids) must agree on lines full of spaces and literal ▁."""
    import sentencepiece

    rng = random.Random(4)
    chars = "ab c\u2581 \u2581d"
    train = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 30))) for _ in range(1500)]
    (tmp_path / "t.txt").write_text("\n".join(train))
    path = spm.train_sentencepiece(
        tmp_path / "t.txt", tmp_path / "m", 300 if byte_fallback else 40, num_threads=1,
        byte_fallback=byte_fallback, remove_extra_whitespaces=True,
    )  # fmt: skip
    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    tok = Tokenizer(spm.from_sentencepiece(path))
    lines = ["".join(rng.choice(chars + "xé") for _ in range(rng.randint(0, 20)))
             for _ in range(400)]  # fmt: skip
    lines += ["\u2581", "\u2581\u2581", " \u2581 ", "a\u2581", "\u2581a", "  \u2581x\u2581  ", ""]
    want = sp.encode(lines)
    assert tok.encode(lines) == want
    sampled = sp.encode(lines, enable_sampling=True, nbest_size=-1, alpha=0.5)
    for ids in (want, sampled):
        assert tok.decode(ids) == sp.decode(ids)


def test_manpage_split_holds_out_every_tenth_file(tmp_path):
    import gzip

    from jaxlab.tokenizer.corpus import manpage_split

    (tmp_path / "man1").mkdir()
    (tmp_path / "man1" / "ls.1").write_text("english, skipped\n")
    for lang in ("de", "ja"):
        (tmp_path / lang / "man1").mkdir(parents=True)
        for i in range(10):
            data = f"{lang} {i} ü 日本\n".encode()
            (tmp_path / lang / "man1" / f"p{i}.1.gz").write_bytes(gzip.compress(data))
    train, test = manpage_split(tmp_path)
    assert test == "de 9 ü 日本\nja 9 ü 日本\n"
    assert train.count("\n") == 18 and "english" not in train
    with pytest.raises(ValueError, match="root"):
        manpage_split(tmp_path / "man1")


@pytest.mark.parametrize("rule", ["nmt_nfkc", "nfkc_cf"])
@pytest.mark.parametrize("remove_extra", [True, False], ids=["collapse", "keep"])
def test_rule_based_normalisers_match_sentencepiece(tmp_path, rule, remove_extra):
    """Models trained with SentencePiece's default ``nmt_nfkc`` (and ``nfkc_cf``) carry their
    normaliser as a precompiled charsmap; ids and decodes equal SentencePiece's on text full of
    compatibility characters (fullwidth, half-width kana, ligatures, circled digits, odd
    spaces, combining marks, control characters)."""
    import sentencepiece

    rng = random.Random(8)
    chars = list("abcdeéABC ｶﾀｶﾅＡＢＣ１２３ﬁﬂ①②Ⅻ㍻¼\t　日本語가나다\u0301\u00a0\u200b\x07")
    train = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 40))) for _ in range(1500)]
    (tmp_path / "t.txt").write_text("\n".join(train))
    path = spm.train_sentencepiece(
        tmp_path / "t.txt", tmp_path / "m", 320, num_threads=1, normalization_rule_name=rule,
        remove_extra_whitespaces=remove_extra,
    )  # fmt: skip
    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    model = spm.from_sentencepiece(path)
    assert model.charsmap
    tok = Tokenizer(model)
    lines = ["".join(rng.choice(chars + ["x", "  "]) for _ in range(rng.randint(0, 30)))
             for _ in range(300)]  # fmt: skip
    lines += ["", " ", "\t", "\u3000", "ﬁ ", " ①", "e\u0301"]
    want = sp.encode(lines)
    assert tok.encode(lines) == want
    assert tok.decode(want) == sp.decode(want)
    spm.write_model_proto(model, tmp_path / "copy.model")  # the charsmap is written back
    again = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "copy.model"))
    assert again.encode(lines) == want


@pytest.mark.parametrize("remove_extra", [True, False], ids=["collapse", "keep"])
@pytest.mark.parametrize("prefix", [True, False], ids=["prefix", "no-prefix"])
def test_escape_whitespaces_off_matches_sentencepiece(tmp_path, remove_extra, prefix):
    """A model with ``escape_whitespaces = false`` (SentencePiece's unigram trainer will not
    write one, so the flags of a trained model are edited): spaces stay U+0020 (byte pieces
    here), and SentencePiece still decodes ▁ as a space and strips the leading ▁ as usual."""
    import dataclasses

    import sentencepiece

    rng = random.Random(9)
    chars = list("abc de \u2581é日") + ["  "]
    train = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 40))) for _ in range(1500)]
    (tmp_path / "t.txt").write_text("\n".join(train))
    path = spm.train_sentencepiece(tmp_path / "t.txt", tmp_path / "m", 300, num_threads=1,
                                   remove_extra_whitespaces=remove_extra)  # fmt: skip
    flags = dict(escape_whitespaces=False, add_dummy_prefix=prefix)
    spm.write_model_proto(dataclasses.replace(spm.from_sentencepiece(path), **flags),
                          tmp_path / "e.model")  # fmt: skip
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "e.model"))
    tok = Tokenizer(spm.from_sentencepiece(tmp_path / "e.model"))
    lines = ["".join(rng.choice(chars + ["x"]) for _ in range(rng.randint(0, 30)))
             for _ in range(300)]  # fmt: skip
    lines += ["", " ", " a", "\u2581a", "a\u2581", "\u2581"]
    want = sp.encode(lines)
    assert tok.encode(lines) == want
    assert tok.decode(want) == sp.decode(want)
