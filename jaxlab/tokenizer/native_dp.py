"""The whole unigram DP on the host: Viterbi and exact FFBS per line in C (``jaxlab_host_dp``).

:func:`host_dp` runs the trie walk, the DP, backtracking, unknown handling and the Python id
lists of every line in the compiled extension (``_native.c``; the argument structs and their
checks live in :mod:`jaxlab.tokenizer.native`), in parallel spans of lines. Its ids equal the
JAX DP's (:func:`jaxlab.tokenizer.decoding.viterbi`, hence SentencePiece's, float32 re-basing
included), and its sampler draws the same counter-based uniforms (:func:`uniform`, equal to
``decoding.uniforms``), so FFBS samples are identical to the JAX DP's for the same key.
``Tokenizer`` uses it by default when the extension is built and no device mesh is given.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import importlib
import os

import numpy as np

from jaxlab.tokenizer import native
from jaxlab.tokenizer.native import DpArgs, Span, _check, _ptr, _require, _trie, _vector

_dp_executor = None  # the span workers' pool (:func:`_dp_pool`), shared by all calls


@functools.lru_cache(maxsize=8)
def _int_objects(n: int) -> tuple[int, ...]:
    """The ints 0 .. n - 1, shared by every id list (one object per piece id)."""
    return tuple(range(n))


def _module():
    """The extension imported as a Python module (for its ``id_lists``)."""
    return importlib.import_module(native.EXTENSION)


def uniform(key_words: tuple[int, int], line: int, offset: int) -> float:
    """The sampler's uniform of (key, line, offset), as ``decoding.uniforms`` with ``num = 1``.

    ``key_words`` are the two uint32 words ``jax.random.bits(key, (2,), jnp.uint32)``.
    """
    k0, k1 = (int(k) for k in key_words)
    return float(_require().jaxlab_uniform(k0, k1, int(line), int(offset)))


def host_dp(
    cps: np.ndarray,
    lengths: np.ndarray,
    *,
    tables,
    first_missing: int,
    alpha: float | None = None,
    key_words: tuple[int, int] = (0, 0),
    first_line: int = 0,
    prefix: int = -1,
    prefix_cp: int = 0,
    space_cp: int = -1,
    char_lut: np.ndarray | None = None,
    unk_id: int = -1,
    unk_mode: int = 0,
    byte_ids: np.ndarray | None = None,
    threads: int = 1,
) -> list[list[int]]:
    """Viterbi (``alpha=None``) or an FFBS sample of every line, entirely in C.

    Same ids as the device DP (:func:`decoding.viterbi`, hence SentencePiece; or the law of
    ``decoding.sample(method="ffbs")`` with the same counter-based uniforms) followed by
    ``model.merge_unknown``; see ``jaxlab_host_dp`` in ``_native.c`` for the recursions.

    Args:
      cps, lengths, prefix, char_lut: The lines as for :func:`layout` (normalised code points,
        or raw text with the dummy-prefix symbol ``prefix`` and a ``char_lut`` that escapes
        spaces).
      tables: ``lattice.LatticeTables``.
      first_missing: Id of a symbol that is no single-symbol piece (the unknown id, or
        ``tables.none_id``).
      alpha: None for Viterbi, else the sampler's inverse temperature (finite, >= 0).
      key_words: The two uint32 words of the PRNG key (``jax.random.bits(key, (2,), uint32)``).
      first_line: Global index of line 0 (the sampler's counter).
      prefix_cp, space_cp: The code point the prefix symbol stands for, and the one a raw space
        stands for (-1: itself); used to spell unknown characters as bytes.
      unk_id, unk_mode: The unknown id and its handling: 0 keep, 1 merge runs, 2 UTF-8 bytes.
      byte_ids: int32 ``[256]`` byte piece ids (``unk_mode=2``).
      threads: Lines are split into this many contiguous spans of about equal size, encoded in
        parallel (ctypes releases the GIL); the result does not depend on it.

    Returns:
      The id list of every line. Raises ``ValueError`` (code -7 among them: a line without
      segmentation, which callers send to the device DP instead).
    """
    if unk_mode not in (0, 1, 2):
        raise ValueError(f"unk_mode must be 0, 1 or 2, got {unk_mode}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    code = _vector(cps, np.uint32, "cps")
    lens = _vector(lengths, np.int64, "lengths")
    prefixed = lens > 0 if prefix >= 0 else np.zeros(len(lens), bool)
    n = int(lens.sum())
    if (lens < 0).any() or n - int(prefixed.sum()) != len(code):
        raise ValueError(f"lengths (minus prefixes) must be >= 0 and sum to len(cps) = {len(code)}")
    lut = _vector(tables.char_lut if char_lut is None else char_lut, np.int32, "char_lut")
    scores = np.ascontiguousarray(tables.edge_scores, np.float32)
    bids = _vector(np.full(256, -1) if byte_ids is None else byte_ids, np.int32, "byte_ids", 256)
    cap = 4 if unk_mode == 2 else 1
    ids = np.empty(max(cap * n, 1), np.int32)
    counts = np.zeros(len(lens), np.int64)
    keep: list = []
    trie = _trie(tables, int(first_missing), keep)
    args = DpArgs(
        cps=_ptr(code), lengths=_ptr(lens), char_lut=_ptr(lut), scores=_ptr(scores),
        byte_ids=_ptr(bids), ids=_ptr(ids), counts=_ptr(counts), n=n, n_cps=len(code),
        b=len(lens), lut_len=len(lut), n_scores=len(scores), prefix=int(prefix),
        prefix_cp=int(prefix_cp), space_cp=int(space_cp), unk_id=int(unk_id),
        unk_mode=int(unk_mode), cap=cap, sample=int(alpha is not None),
        key0=int(key_words[0]) & 0xFFFFFFFF, key1=int(key_words[1]) & 0xFFFFFFFF,
        first_line=int(first_line),
    )  # fmt: skip
    fn = _require().jaxlab_host_dp
    a = 0.0 if alpha is None else float(alpha)
    # Spans of about equal symbol counts, split between lines.
    ends = np.cumsum(lens)
    cuts = np.searchsorted(ends, n * np.arange(1, threads) / threads, "right") if n else []
    bounds = [0, *sorted({int(c) for c in cuts}), len(lens)]
    spans = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]

    def part(lo, hi):
        start = int(ends[lo - 1]) if lo else 0
        start_cp = start - int(prefixed[:lo].sum())
        span = Span(0, 0, lo, hi, start, start_cp)
        k = _check(fn(ctypes.byref(trie), ctypes.byref(args), ctypes.byref(span), a), "host_dp")
        return start, k

    if len(spans) > 1:
        futures = [_dp_pool(len(spans) - 1).submit(part, *sp) for sp in spans[1:]]
        try:
            first = part(*spans[0])
        finally:  # the workers write into this call's buffers: never leave before they end
            concurrent.futures.wait(futures)
        done = [first] + [f.result() for f in futures]
    else:
        done = [part(*sp) for sp in spans]
    make, ints = _module().id_lists, _int_objects(len(scores))
    out: list[list[int]] = []
    for (lo, hi), (start, k) in zip(spans, done, strict=True):
        if int(counts[lo:hi].sum()) != k or cap * start + k > len(ids):
            raise ValueError("native host_dp: inconsistent output counts")
        out += make(ids.ctypes.data + 4 * cap * start, counts.ctypes.data, lo, hi, ints)
    return out


def _dp_pool(workers: int):
    """Worker threads for the host DP's spans (grown on demand, shared)."""
    global _dp_executor
    with native._lock:
        if _dp_executor is None or _dp_executor._max_workers < workers:
            _dp_executor = concurrent.futures.ThreadPoolExecutor(workers, "jaxlab-dp")
    return _dp_executor


def _forget_pool_in_child() -> None:
    """A forked child has no worker threads: it must not submit to the parent's executor."""
    global _dp_executor
    _dp_executor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)
