"""Tests for jaxlab.tokenizer.native: the compiled kernels equal their NumPy references exactly.

The references below restate each kernel's contract in vectorised NumPy (and, for a handmade
vocabulary, as a brute-force substring lookup), independently of ``lattice.py``. The kernels
are built at install time (``setup.py``); when the extension is there it must load: the tests
then assert ``available()`` rather than skipping, so a broken or stale build cannot pass
unnoticed. Without the extension (installed with no compiler) the kernel tests skip, unless
``JAXLAB_REQUIRE_NATIVE=1`` makes them fail.
"""

import dataclasses
import importlib.util
import logging
import math
import os
import random
import subprocess
import time

import numpy as np
import pytest

from jaxlab.tokenizer import lattice, native, native_dp
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import from_pieces, line_offsets, to_codepoints

BUILT = importlib.util.find_spec(native.EXTENSION) is not None
REQUIRED = os.environ.get("JAXLAB_REQUIRE_NATIVE") == "1"


@pytest.fixture(autouse=True)
def native_enabled(monkeypatch):
    """Kernel tests always exercise the kernels, even if the run sets ``JAXLAB_NATIVE=0``."""
    monkeypatch.delenv("JAXLAB_NATIVE", raising=False)


@pytest.fixture
def lib():
    if not BUILT and not REQUIRED:
        pytest.skip("the extension is not built (no compiler at install): NumPy path only")
    assert native.available(), f"the native kernels did not load: {native.host_path()[1]}"


# ---- references ----------------------------------------------------------------------------


def ref_find_edges(tables, symbols, offsets, first_missing, base, kstride, out):
    """Level-synchronous NumPy search with the dense table, writing ``base + k * kstride``."""
    a1 = len(tables.child1)
    node = tables.child1[symbols]
    piece = tables.piece_of[node]
    out[base] = np.where(piece >= 0, piece, first_missing)
    pos = np.flatnonzero(node > 0)  # symbols whose one-symbol window is a piece suffix
    node = node[pos].astype(np.int64)
    for k in range(1, tables.max_len):
        inside = offsets[pos] >= k  # the window t-k..t stays within the line
        pos, node = pos[inside], node[inside]
        node = tables.trans[node * a1 + symbols[pos - k]].astype(np.int64)
        hit = node > 0
        pos, node = pos[hit], node[hit]
        if not pos.size:
            break
        piece = tables.piece_of[node]
        out[base[pos] + k * kstride] = np.where(piece >= 0, piece, tables.none_id)


def ref_pack_rows(lengths, row_len):
    row, col = [], []
    r = used = 0
    for n in lengths.tolist():
        if used and used + n > row_len - 1:
            r, used = r + 1, 0
        row.append(r)
        col.append(used)
        used += n
    return np.array(row, np.int64), np.array(col, np.int64)


def ref_gather_ends(dev, cell, lengths):
    vals = dev[cell]
    keep = vals >= 0
    line = np.repeat(np.arange(len(lengths)), lengths)
    return vals[keep].astype(np.int32), np.bincount(line[keep], minlength=len(lengths))


# ---- helpers -------------------------------------------------------------------------------


def _flat(tables, texts):
    """Dense symbols, in-line offsets and lengths of ``texts`` (raw code points)."""
    cps, lengths = to_codepoints(texts)
    symbols = lattice.dense_symbols(tables, cps)
    offsets = np.arange(len(cps)) - np.repeat(line_offsets(lengths), lengths)
    return symbols, offsets, lengths


def _reset(monkeypatch):
    """Forget the loaded library, so the next call loads (or fails to load) it again."""
    monkeypatch.setattr(native, "_lib", native._UNSET)
    monkeypatch.setattr(native, "_why", "")


def _random_vocab(rng, alphabet, size, singles=True):
    pieces = set(alphabet) if singles else set()
    while len(pieces) < size:
        pieces.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))))
    return {p: math.log(rng.uniform(0.01, 1.0)) for p in sorted(pieces)}


def _random_lines(rng, chars, count, longest=40):
    lines = []
    for _ in range(count):
        lines.append("".join(rng.choice(chars) for _ in range(rng.randint(0, longest))))
    return lines + [""]


# ---- find_edges ------------------------------------------------------------------------------


HANDMADE = {"a": -2.0, "b": -2.5, "c": -3.0, "ab": -2.0, "abc": -2.2, "bca": -4.0, "cab": -3.5,
            "abcab": -5.0, "ca": -3.1}  # fmt: skip


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_find_edges_handmade_vocab_matches_substring_lookup(lib, dtype):
    rng = random.Random(0)
    model = from_pieces(HANDMADE)  # <unk> = 0; "d" and "-" are in no piece
    tables = lattice.build_tables(model)
    index = model.piece_to_id()
    lines = _random_lines(rng, "abcabcd-", 12, longest=25)
    symbols, offsets, _ = _flat(tables, lines)
    n, width = len(symbols), tables.width
    out = np.full(n * width, tables.none_id, dtype)
    native.find_edges(
        tables, symbols, offsets, first_missing=model.unk_id, base=np.arange(n) * width,
        kstride=1, out=out,
    )  # fmt: skip
    want = np.full((n, width), tables.none_id, dtype)
    text = "".join(lines)
    for t in range(n):
        want[t, 0] = index.get(text[t], model.unk_id)
        for k in range(1, min(offsets[t], tables.max_len - 1) + 1):
            window = text[t - k : t + 1]
            if window in HANDMADE:
                want[t, k] = index[window]
    np.testing.assert_array_equal(out.reshape(n, width), want)
    ref = np.full(n * width, tables.none_id, dtype)
    ref_find_edges(tables, symbols, offsets, model.unk_id, np.arange(n) * width, 1, ref)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
@pytest.mark.parametrize("unk", [True, False])
def test_find_edges_random_vocab_both_layouts(lib, dtype, unk):
    rng = random.Random(1 + unk)
    for trial in range(4):
        vocab = _random_vocab(rng, "abcdé", size=rng.randint(10, 80), singles=trial % 2 == 0)
        model = from_pieces(vocab, unk=unk)
        tables = lattice.build_tables(model)
        first_missing = model.unk_id if model.unk_id >= 0 else tables.none_id
        lines = _random_lines(rng, "abcdéxy", rng.randint(1, 30))  # x, y: symbol 0
        symbols, offsets, lengths = _flat(tables, lines)
        n, m = len(symbols), tables.width
        assert (symbols == 0).any()
        # Row-major [N, M]: base = i * M, kstride = 1.
        got = np.full(n * m, tables.pad_id, dtype)
        want = got.copy()
        base = np.arange(n, dtype=np.int64) * m
        native.find_edges(
            tables, symbols, offsets, first_missing=first_missing, base=base, kstride=1, out=got
        )
        ref_find_edges(tables, symbols, offsets, first_missing, base, 1, want)
        np.testing.assert_array_equal(got, want)
        # Transposed [C, M, R]: lines packed into rows of C cells; base = col * M * R + row.
        c = 1 << int(max(lengths.max(), 1)).bit_length()
        row, col0 = native.pack_rows(lengths, c)
        r = int(row.max()) + 1
        line = np.repeat(np.arange(len(lengths)), lengths)
        col = col0[line] + offsets
        base = col * m * r + row[line]
        got = np.full(c * m * r, tables.pad_id, dtype)
        want = got.copy()
        native.find_edges(
            tables, symbols, offsets, first_missing=first_missing, base=base, kstride=r, out=got
        )
        ref_find_edges(tables, symbols, offsets, first_missing, base, r, want)
        np.testing.assert_array_equal(got, want)


def test_find_edges_rejects_bad_arguments(lib):
    model = from_pieces(HANDMADE)
    tables = lattice.build_tables(model)
    symbols, offsets, _ = _flat(tables, ["abcab"])
    n, m = len(symbols), tables.width
    base = np.arange(n) * m
    args = dict(first_missing=model.unk_id)
    with pytest.raises(ValueError, match="int16 or int32"):
        out = np.zeros(n * m)
        native.find_edges(tables, symbols, offsets, **args, base=base, kstride=1, out=out)
    with pytest.raises(ValueError, match="contiguous"):
        out = np.zeros(2 * n * m, np.int32)[::2]
        native.find_edges(tables, symbols, offsets, **args, base=base, kstride=1, out=out)
    with pytest.raises(ValueError, match="outside out"):  # too small for the layout
        out = np.zeros((n - 1) * m, np.int32)
        native.find_edges(tables, symbols, offsets, **args, base=base, kstride=1, out=out)
    with pytest.raises(ValueError, match="symbol id"):
        out = np.zeros(n * m, np.int32)
        bad = symbols.copy()
        bad[2] = len(tables.child1)
        native.find_edges(tables, bad, offsets, **args, base=base, kstride=1, out=out)
    with pytest.raises(ValueError, match="length"):
        out = np.zeros(n * m, np.int32)
        native.find_edges(tables, symbols, offsets[:-1], **args, base=base, kstride=1, out=out)
    with pytest.raises(ValueError, match="trans has length"):
        out = np.zeros(n * m, np.int32)
        bad_tables = dataclasses.replace(tables, trans=tables.trans[:-1])
        native.find_edges(bad_tables, symbols, offsets, **args, base=base, kstride=1, out=out)


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_find_edges_hash_table_path_equals_numpy(lib, dtype):
    """Without the dense table (large alphabets) the walk probes the exact hash table, also
    with a tiny table full of collisions, and finds the NumPy search's lattice."""
    rng = random.Random(5)
    vocab = _random_vocab(rng, "abcdé", size=70)
    model = from_pieces(vocab)
    for bits in (None, 9):
        tables = lattice.build_tables(model, table_bits=bits, dense_limit=0)
        assert tables.trans is None and (bits is None or tables.max_probe > 1)
        symbols, offsets, _ = _flat(tables, _random_lines(rng, "abcdéx", 30))
        n, m = len(symbols), tables.width
        got = np.full(n * m, tables.none_id, dtype)
        base = np.arange(n, dtype=np.int64) * m
        native.find_edges(
            tables, symbols, offsets, first_missing=model.unk_id, base=base, kstride=1, out=got
        )
        want = lattice.find_edges(
            tables, symbols, offsets, unk_id=model.unk_id, dtype=dtype, use_native=False
        )
        np.testing.assert_array_equal(got.reshape(n, m), want)


# ---- pack_rows and gather_ends ---------------------------------------------------------------


def test_pack_rows_matches_numpy(lib):
    rng = np.random.default_rng(0)
    for row_len in (1, 2, 8, 64):
        for size in (0, 1, 50):
            lengths = rng.integers(0, 2 * row_len, size) * (rng.random(size) < 0.8)
            got = native.pack_rows(lengths, row_len)
            for want in (ref_pack_rows(lengths, row_len), lattice.pack_rows(lengths, row_len)):
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
            assert got[0].dtype == got[1].dtype == np.int64


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_gather_ends_matches_numpy(lib, dtype):
    rng = np.random.default_rng(1)
    for _ in range(5):
        lengths = rng.integers(0, 30, rng.integers(0, 40)).astype(np.int64)
        n = int(lengths.sum())
        dev = np.where(rng.random(n + 17) < 0.6, -1, rng.integers(0, 30000, n + 17)).astype(dtype)
        cell = np.sort(rng.choice(n + 17, n, replace=False)).astype(np.int64)
        ids, counts = native.gather_ends(dev, cell, lengths)
        want_ids, want_counts = ref_gather_ends(dev, cell, lengths)
        assert ids.dtype == np.int32 and counts.dtype == np.int64
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(counts, want_counts)
    with pytest.raises(ValueError, match="sum"):
        native.gather_ends(dev, cell, lengths + 1)
    with pytest.raises(ValueError, match="outside dev"):
        native.gather_ends(dev, np.full(n, len(dev)), lengths)


# ---- build and load ------------------------------------------------------------------------


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("JAXLAB_NATIVE", "0")
    _reset(monkeypatch)
    assert not native.available()
    assert native.host_path() == ("numpy", "disabled by JAXLAB_NATIVE=0")
    with pytest.raises(RuntimeError, match="JAXLAB_NATIVE"):
        native.pack_rows(np.array([1, 2]), 4)


def test_missing_extension_logs_once_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(native, "EXTENSION", "jaxlab.tokenizer._no_such_extension")
    _reset(monkeypatch)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert not native.available()
        assert not native.available()
    assert len([r for r in caplog.records if "unavailable" in r.message]) == 1
    path, why = native.host_path()
    assert path == "numpy" and "not built" in why
    assert Tokenizer(from_pieces({"a": -1.0})).host_path == "numpy"


def test_stale_build_is_refused(lib, monkeypatch, tmp_path):
    """An extension compiled from another version of ``_native.c`` is not loaded."""
    edited = tmp_path / "_native.c"
    edited.write_bytes(native._SOURCE.read_bytes() + b"/* edited */\n")
    monkeypatch.setattr(native, "_SOURCE", edited)
    _reset(monkeypatch)
    assert not native.available()
    assert "stale" in native.host_path()[1]


def test_loading_spawns_no_compiler_and_writes_nothing(lib, monkeypatch, tmp_path):
    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a library call started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setenv("HOME", str(tmp_path))
    _reset(monkeypatch)
    assert native.available()
    tok = Tokenizer(from_pieces({"a": -1.0, "b": -1.5, "ab": -2.0}))
    assert tok.host_path == "native"
    assert tok.encode(["abba"]) == Tokenizer(tok.model, use_native=False).encode(["abba"])
    assert not list(tmp_path.iterdir())


# ---- the fused device layout -----------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [{}, {"add_dummy_prefix": True, "escape_whitespaces": True}, {"add_dummy_prefix": True}],
    ids=["identity", "sentencepiece", "prefix-only"],
)
@pytest.mark.parametrize("unk", [True, False])
@pytest.mark.parametrize("dense", [True, False], ids=["dense", "hash"])
def test_layout_equals_numpy_prepare(lib, unk, flags, dense):
    """``Tokenizer.prepare`` gives the same batch, field by field, on both host paths (the
    native one reads raw text and applies the dummy prefix and escaped spaces on the fly)."""
    import jax

    rng = random.Random(11 + unk)
    vocab = _random_vocab(rng, "abcde \u2581", 40, singles=not unk)
    lines = _random_lines(rng, "abcdefg  \u2581", 60, longest=70) + ["", "a", "gg", " "]
    model = dataclasses.replace(from_pieces(vocab, unk=unk), **flags)
    fast, slow = Tokenizer(model, use_native=True), Tokenizer(model, use_native=False)
    if not dense:  # the transition hash table, as for large alphabets
        fast.tables = dataclasses.replace(fast.tables, trans=None)
    for positions, row_len, first in ((True, None, 0), (False, 128, 5), (True, 256, 9)):
        a = fast.prepare(lines, positions=positions, row_len=row_len, first_line=first)
        b = slow.prepare(lines, positions=positions, row_len=row_len, first_line=first)
        names = [f.name for f in dataclasses.fields(a) if f.name not in ("text", "model")]
        for name in [*names, "cps"]:  # text / model: raw on the fast path, normalised on NumPy
            x, y = getattr(a, name), getattr(b, name)
            if y is None:
                assert x is None, name
                continue
            assert (x.dtype, x.shape) == (y.dtype, y.shape), name
            np.testing.assert_array_equal(x, y, err_msg=name)
    key = jax.random.key(0)
    assert fast.encode(lines) == slow.encode(lines)
    assert fast.encode(lines, alpha=0.3, key=key) == slow.encode(lines, alpha=0.3, key=key)


def test_layout_rejects_a_line_past_its_row(lib):
    tok = Tokenizer(from_pieces({"a": -1.0, "b": -1.0}), use_native=True)
    cps, lengths = to_codepoints(["abab", "ba"])
    with pytest.raises(ValueError, match="outside out"):
        native.layout(
            cps,
            lengths,
            np.array([0, 0]),
            np.array([0, 4]),
            rows=1,
            cols=6,  # the second line would end in the last column (reserved for padding)
            tables=tok.tables,
            first_missing=tok.tables.none_id,
            dtype=np.int16,
        )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_layout_after_fork_does_not_hang(lib):
    """The two-thread layout uses a worker thread; a forked child must get its own. (Only the
    host layout runs in the child: JAX itself does not survive a fork.)"""
    tok = Tokenizer(from_pieces({"a": -1.0, "b": -1.5, "ab": -2.0}), use_native=True)
    lines = ["ab" * 40] * 2000  # enough symbols for the parallel split
    want = tok.prepare(lines).ids  # the parent's worker thread now exists
    pid = os.fork()
    if pid == 0:  # child: exit 0 only if the same layout comes back
        code = 1
        try:
            code = 0 if np.array_equal(tok.prepare(lines).ids, want) else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("encode in a forked child hung")


def test_large_alphabet_stays_on_the_native_path(lib):
    """3,000 distinct characters: the dense transition table would exceed 2^24 entries, so only
    the hash table exists; the tokenizer still reports and uses the compiled path, with the
    NumPy path's ids."""
    rng = random.Random(7)
    chars = [chr(0x4E00 + i) for i in range(3000)]
    vocab = {c: -8.0 - rng.random() for c in chars}
    while len(vocab) < 7000:
        vocab["".join(rng.choice(chars[:400]) for _ in range(rng.randint(2, 4)))] = -9.0
    model = from_pieces(vocab)
    fast, slow = Tokenizer(model), Tokenizer(model, use_native=False)
    assert fast.tables.trans is None and fast.host_path == "native"
    # The two-level table (dense rows for the busiest nodes, sparse sorted rows for the rest),
    # reported as such; both the host C DP and the JAX DP's layout read it.
    assert fast.tables.transitions == "two-level"
    assert fast.dp_path == "host-c (two-level transitions)"
    info = fast.tables.node_info
    assert 0 < len(fast.tables.rows) <= 1 << 22 and (info[:, 1] < 0).sum() > 0  # dense rows
    assert (info[:, 1] > 0).sum() > 0 and len(fast.tables.sp_pairs) > 0  # and sparse ones
    bad = dataclasses.replace(fast.tables, node_info=info + np.array([0, 0, 1], np.int32))
    with pytest.raises(ValueError, match="pieces differ"):
        native.find_edges(
            bad,
            np.zeros(1, np.int32),
            np.zeros(1, np.int32),
            first_missing=0,
            base=np.zeros(1, np.int64),
            kstride=1,
            out=np.zeros(1, np.int32),
        )
    hashed = Tokenizer(model)
    hashed.tables = lattice.build_tables(model, two_level=False)
    assert hashed.tables.transitions == "hash" and hashed.dp_path.endswith("(hash transitions)")
    lines = []
    for _ in range(200):
        pool = chars[: rng.choice([400, 3000])]
        lines.append("".join(rng.choice(pool) for _ in range(rng.randint(0, 90))))
    want = slow.encode(lines)
    assert fast.encode(lines) == want
    assert hashed.encode(lines) == want
    jax_dp = Tokenizer(model, host_dp=False)
    assert jax_dp.dp_path == "jax (two-level transitions)" and jax_dp.encode(lines) == want
    # The compiled lattice search through the two-level table equals the NumPy one.
    symbols, offsets, _ = _flat(fast.tables, lines)
    got = lattice.find_edges(fast.tables, symbols, offsets, unk_id=-1, use_native=True)
    ref = lattice.find_edges(slow.tables, symbols, offsets, unk_id=-1, use_native=False)
    np.testing.assert_array_equal(got, ref)


# ---- the host C DP -----------------------------------------------------------------------


def test_host_dp_uniforms_equal_the_jax_samplers(lib):
    """The C Threefry-2x32 gives decoding.uniforms' draws for every (key, line, offset)."""
    import jax
    import jax.numpy as jnp

    from jaxlab.tokenizer import decoding

    for seed in (0, 1, 12345):
        key = jax.random.key(seed)
        words = tuple(int(w) for w in np.asarray(jax.random.bits(key, (2,), jnp.uint32)))
        lines = np.array([0, 1, 7, 99, 2**20, 2**31 - 1], np.int32)
        offs = np.array([0, 5, 1, 65535, 3, 2**31 - 2], np.int32)
        want = np.asarray(decoding.uniforms(key, jnp.asarray(lines), jnp.asarray(offs), 1))[:, 0]
        pairs = zip(lines.tolist(), offs.tolist(), strict=True)
        got = [native_dp.uniform(words, a, b) for a, b in pairs]
        np.testing.assert_array_equal(np.float32(got), want)


def _spm_like(model, byte_fallback):
    """``model`` with SentencePiece's flags (dummy prefix, escaped spaces) and byte pieces."""
    pieces = [*model.pieces, *(f"<0x{b:02X}>" for b in range(256))]
    types = np.concatenate([model.types, np.full(256, 6, model.types.dtype)])
    scores = np.concatenate([model.scores, np.zeros(256, model.scores.dtype)])
    return dataclasses.replace(
        model, pieces=tuple(pieces), types=types, scores=scores, byte_fallback=byte_fallback,
        add_dummy_prefix=True, escape_whitespaces=True,
    )  # fmt: skip


@pytest.mark.parametrize("unk", ["merge", "bytes", "none"])
@pytest.mark.parametrize("threads", [1, 3])
def test_host_dp_viterbi_and_ffbs_equal_the_jax_dp(lib, unk, threads):
    """Viterbi ids equal the JAX DP's (hence SentencePiece's) line for line, unknown handling
    included, at any thread count; a 60k-symbol line crosses the re-basing threshold (|V| >
    1e5) several times. FFBS draws use the same uniforms and equal the JAX DP's here (they may
    differ only where libm's and XLA's exp round a CDF boundary differently)."""
    import jax

    rng = random.Random(5)
    vocab = _random_vocab(rng, "abcde \u2581", 60, singles=unk == "none")
    model = from_pieces(vocab, unk=unk != "none")
    if unk != "none":
        model = _spm_like(model, byte_fallback=unk == "bytes")
    lines = _random_lines(rng, "abcdeé漢 \u2581" if unk != "none" else "abcde \u2581", 300, 90)
    lines += ["abcde" * 12_000, "", " ", "漢漢a漢" if unk != "none" else "a b"]  # long: |V| > 1e5
    host = Tokenizer(model, threads=threads)
    jax_dp = Tokenizer(model, host_dp=False)
    assert host.dp_path.startswith("host-c") and jax_dp.dp_path.startswith("jax")
    want = jax_dp.encode(lines)
    assert host.encode(lines) == want
    assert host.encode(lines, add_bos=True, add_eos=True) == jax_dp.encode(
        lines, add_bos=True, add_eos=True
    )
    key = jax.random.key(3)
    got, ref = host.encode(lines, alpha=0.2, key=key), jax_dp.encode(lines, alpha=0.2, key=key)
    if unk != "merge":  # lossless: every sample decodes to the same text as the Viterbi ids
        assert host.decode(got) == host.decode(want)
    same = sum(a == b for a, b in zip(got, ref, strict=True))
    assert same >= len(lines) - 2, same


def test_host_dp_samples_follow_the_exact_law(lib, key):
    """Chi-square of 20,000 host-C FFBS draws of one string against the enumerated law."""
    from scipy import stats

    from jaxlab.tokenizer import reference

    toy = reference.toy_vocab()
    tok = Tokenizer(from_pieces(toy), host_dp=True)
    n = 20_000
    for i, alpha in enumerate((0.0, 0.1, 1.0, 5.0)):
        import jax

        exact = reference.exact_distribution("abcd", toy, alpha)
        out = tok.tokenize(["abcd"] * n, alpha=alpha, key=jax.random.fold_in(key, i))
        support = list(exact)
        counts = np.array(reference.frequencies(out, support), np.float64)
        p = np.array([exact[w] for w in support])
        assert stats.chisquare(counts, p * n).pvalue > 1e-3, alpha
        assert np.all(np.abs(counts / n - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12), alpha


def test_host_dp_selection_and_bad_arguments(lib):
    from jaxlab import sharding
    from jaxlab.tokenizer.cli import version_line

    assert version_line().endswith("DP: host-c (default; JAX with host_dp=False or a mesh)")
    model = from_pieces({"a": -1.0, "b": -2.0, "ab": -2.5})
    assert Tokenizer(model).dp_path == "host-c (dense transitions)"
    assert Tokenizer(model, host_dp=False).dp_path == "jax (dense transitions)"
    assert Tokenizer(model, use_native=False).dp_path == "jax"
    with pytest.raises(ValueError, match="host_dp=True needs the compiled kernels"):
        Tokenizer(model, use_native=False, host_dp=True)
    mesh = sharding.data_mesh(1)
    assert Tokenizer(model, mesh=mesh).dp_path.startswith("jax")
    with pytest.raises(ValueError, match="cannot be combined with a mesh"):
        Tokenizer(model, mesh=mesh, host_dp=True)
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="threads"):
            Tokenizer(model, threads=bad)
    tables = Tokenizer(model).tables
    with pytest.raises(ValueError, match="unk_mode"):
        native_dp.host_dp(
            np.zeros(0, np.uint32), np.zeros(0, np.int64), tables=tables, first_missing=0,
            unk_mode=3,
        )  # fmt: skip


def test_host_dp_falls_back_to_jax_for_a_line_without_segmentation(lib):
    """A model without ``<unk>`` and a character in no piece: that line has no segmentation, the
    host DP's span fails and ``encode`` returns the JAX DP's result instead. The other spans
    are still running in worker threads when one fails: ``host_dp`` must wait for them before
    its buffers go (repeated, as a use-after-free showed up as a rare corrupted batch)."""
    model = from_pieces({"a": -1.0, "b": -2.0, "ab": -2.5}, unk=False)
    host, jax_dp = Tokenizer(model, threads=4), Tokenizer(model, host_dp=False)
    lines = ["ab" * 50] * 400 + ["abz"] + ["ba" * 30] * 400
    want = jax_dp.encode(lines)
    for _ in range(10):
        assert host.encode(lines) == want
    cps, lengths = to_codepoints(lines)
    with pytest.raises(ValueError, match="no segmentation"):
        native_dp.host_dp(cps, lengths, tables=host.tables, first_missing=host.tables.none_id,
                       threads=4)  # fmt: skip
