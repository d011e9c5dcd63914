"""The unigram vocabulary (host side) and SentencePiece-style text normalisation.

A :class:`UnigramModel` is a frozen table of pieces with float32 log-probabilities and
SentencePiece piece types. Loaders: :func:`from_pieces` (a dict piece -> log-prob or count) and
``jaxlab.tokenizer.spm.from_sentencepiece`` (a SentencePiece ``.model`` file).

Normalisation reproduces SentencePiece's identity normaliser with its whitespace flags
(``remove_extra_whitespaces``, ``add_dummy_prefix``, ``escape_whitespaces``), vectorised over a
batch of lines held as one flat array of code points.

References: T. Kudo and J. Richardson, "SentencePiece" (EMNLP 2018), ``src/normalizer.cc``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np

# SentencePiece ModelProto.SentencePiece.Type values.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPACE_SYMBOL = "\u2581"  # ▁, SentencePiece's escaped space
UNK_PENALTY = 10.0  # SentencePiece's kUnkPenalty: unknown edge score = min NORMAL score - 10


@dataclasses.dataclass(frozen=True, eq=False)
class UnigramModel:
    """A unigram vocabulary: pieces, float32 log-probabilities (scores) and piece types.

    Attributes:
      pieces: Piece strings by id (byte pieces are spelled ``<0xXX>`` as in SentencePiece).
      scores: float32 ``[V]`` log-probabilities (SentencePiece scores).
      types: int8 ``[V]`` SentencePiece piece types (NORMAL=1, UNKNOWN=2, CONTROL=3, ...).
      unk_id: Id of the unknown piece, or -1 if the model has none.
      bos_id, eos_id: Ids of the control pieces, or -1.
      byte_fallback: Emit unknown characters as UTF-8 ``<0xXX>`` byte pieces.
      add_dummy_prefix: Prepend ▁ to every non-empty line.
      remove_extra_whitespaces: Strip and collapse runs of U+0020.
      escape_whitespaces: Replace U+0020 by ▁.
      treat_whitespace_as_suffix: The dummy ▁ goes at the end of a line instead of its start
        (SentencePiece's trainer option of that name: pieces then end with ▁).
      unk_surface: What ``decode`` prints for the unknown id.
      charsmap: The ``precompiled_charsmap`` of a model with a rule-based normaliser
        (``nmt_nfkc``, ``nfkc_cf``, custom), applied by :func:`normalize`; empty for identity.
    """

    pieces: tuple[str, ...]
    scores: np.ndarray
    types: np.ndarray
    unk_id: int = -1
    bos_id: int = -1
    eos_id: int = -1
    byte_fallback: bool = False
    add_dummy_prefix: bool = False
    remove_extra_whitespaces: bool = False
    escape_whitespaces: bool = False
    treat_whitespace_as_suffix: bool = False
    unk_surface: str = " \u2047 "
    charsmap: bytes = b""  # SentencePiece's precompiled_charsmap (empty: identity normaliser)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @property
    def unk_score(self) -> float:
        """Score of an unknown-character edge: min over NORMAL pieces minus 10 (SentencePiece)."""
        normal = self.scores[self.types == NORMAL]
        return float(np.float32(normal.min()) - np.float32(UNK_PENALTY))

    @property
    def byte_ids(self) -> np.ndarray:
        """int32 ``[256]``: id of the ``<0xXX>`` piece for each byte, -1 where absent."""
        out = np.full(256, -1, np.int32)
        for i in np.flatnonzero(self.types == BYTE):
            out[int(self.pieces[i][3:5], 16)] = i
        return out

    def piece_to_id(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.pieces)}

    @functools.cached_property
    def user_symbols(self) -> tuple[str, ...]:
        """The user-defined symbols (pieces of type USER_DEFINED)."""
        return tuple(self.pieces[i] for i in np.flatnonzero(self.types == USER_DEFINED))


def from_pieces(
    pieces: Mapping[str, float | int], *, counts: bool = False, unk: bool = True
) -> UnigramModel:
    """Builds a model without normalisation from ``{piece: log-prob}`` (or ``{piece: count}``).

    Args:
      pieces: Piece strings with their log-probabilities, or counts if ``counts``.
      counts: Interpret the values as counts: log p = log count - log total.
      unk: Add an ``<unk>`` piece at id 0 for characters with no single-character piece.

    Returns:
      A model whose ids follow the dict order (after ``<unk>`` if added).
    """
    names = list(pieces)
    vals = np.array([float(pieces[p]) for p in names], np.float64)
    if counts:
        vals = np.log(vals) - math.log(vals.sum())
    if any(not p for p in names):
        raise ValueError("empty piece in vocabulary")
    types = [NORMAL] * len(names)
    if unk:
        names, vals, types = ["<unk>", *names], np.concatenate([[0.0], vals]), [UNKNOWN, *types]
    return UnigramModel(
        pieces=tuple(names),
        scores=vals.astype(np.float32),
        types=np.array(types, np.int8),
        unk_id=0 if unk else -1,
    )


def to_codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated code points (uint32 ``[N]``) and per-line lengths (int64 ``[B]``)."""
    flat = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    return flat, np.fromiter(map(len, texts), np.int64, len(texts))


def line_offsets(lengths: np.ndarray) -> np.ndarray:
    """Start index of every line in the flat array (int64 ``[B]``)."""
    return (np.cumsum(lengths) - lengths).astype(np.int64)


def normalize(
    model: UnigramModel, cps: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Applies SentencePiece's normaliser with the model's whitespace flags.

    The identity normaliser is vectorised here; a model with a ``charsmap`` (rule-based
    normaliser) goes through :func:`charsmap.normalize_line`, line by line.

    Per line: drop leading/trailing U+0020 and collapse runs (``remove_extra_whitespaces``);
    a line left empty stays empty; otherwise prepend a space (``add_dummy_prefix``) and map
    spaces to ▁ (``escape_whitespaces``). With both ``remove_extra_whitespaces`` and
    ``escape_whitespaces``, trailing ▁ are then stripped too (literal U+2581 included), as
    SentencePiece's normaliser does after escaping. With ``treat_whitespace_as_suffix`` the
    dummy space is appended after that stripping instead of prepended. User-defined symbols
    are copied unnormalised (longest match first), which only the charsmap path can change.

    Args:
      model: Supplies the flags.
      cps: uint32 ``[N]`` code points of all lines, concatenated.
      lengths: int ``[B]`` line lengths.

    Returns:
      ``(cps, lengths)`` after normalisation.
    """
    lengths = np.asarray(lengths, np.int64)
    if model.charsmap or any(" " in u for u in model.user_symbols):
        return _normalize_rules(model, cps, lengths)
    suffix = model.add_dummy_prefix and model.treat_whitespace_as_suffix
    starts = line_offsets(lengths)
    if model.remove_extra_whitespaces and cps.size:
        line = np.repeat(np.arange(len(lengths)), lengths)
        space = cps == 32
        prev = np.concatenate([[True], space[:-1]])
        prev[starts[lengths > 0]] = True  # leading spaces of a line are dropped
        keep = ~space | ~prev
        # Trailing: drop positions after the last non-space of their line.
        idx = np.where(~space, np.arange(cps.size), -1)
        last = np.full(len(lengths), -1, np.int64)
        nonempty = lengths > 0
        last[nonempty] = np.maximum.reduceat(idx, starts[nonempty])
        keep &= np.arange(cps.size) <= last[line]
        cps, line = cps[keep], line[keep]
        lengths = np.bincount(line, minlength=len(lengths)).astype(np.int64)
        starts = line_offsets(lengths)
    nonempty = lengths > 0  # lines that get the dummy space
    if model.add_dummy_prefix and not suffix:
        cps = np.insert(cps, starts[nonempty], 32)
        lengths = lengths + nonempty
    cps = cps.astype(np.uint32)  # a copy: the caller's array is never modified
    if model.escape_whitespaces:
        cps[cps == 32] = ord(SPACE_SYMBOL)
        if model.remove_extra_whitespaces and cps.size:
            # SentencePiece strips trailing ▁ after escaping, so also literal U+2581 (and the
            # dummy prefix of a line that is nothing else).
            cps, lengths = _strip_trailing(cps, lengths, ord(SPACE_SYMBOL))
    if suffix:
        space = ord(SPACE_SYMBOL) if model.escape_whitespaces else 32
        cps = np.insert(cps, line_offsets(lengths)[nonempty] + lengths[nonempty], space)
        lengths = lengths + nonempty
    return cps, lengths


def _strip_trailing(cps: np.ndarray, lengths: np.ndarray, symbol: int):
    """Drops the run of ``symbol`` at the end of every line."""
    starts = line_offsets(lengths)
    line = np.repeat(np.arange(len(lengths)), lengths)
    idx = np.where(cps != symbol, np.arange(cps.size), -1)
    last = np.full(len(lengths), -1, np.int64)
    nonempty = lengths > 0
    last[nonempty] = np.maximum.reduceat(idx, starts[nonempty])
    keep = np.arange(cps.size) <= last[line]
    return cps[keep], np.bincount(line[keep], minlength=len(lengths)).astype(np.int64)


def _normalize_rules(model: UnigramModel, cps: np.ndarray, lengths: np.ndarray):
    """:func:`normalize` for a model with a precompiled charsmap, or with user-defined symbols
    that contain spaces (host Python, line by line)."""
    from jaxlab.tokenizer import charsmap

    rules = _charsmap(model.charsmap) if model.charsmap else None
    text = np.asarray(cps, np.uint32).tobytes().decode("utf-32-le")
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    lines = [
        charsmap.normalize_line(
            text[a:b],
            rules,
            add_dummy_prefix=model.add_dummy_prefix,
            remove_extra_whitespaces=model.remove_extra_whitespaces,
            escape_whitespaces=model.escape_whitespaces,
            suffix=model.treat_whitespace_as_suffix,
            user_symbols=model.user_symbols,
        )
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    out = np.frombuffer("".join(lines).encode("utf-32-le"), np.uint32).copy()
    return out, np.fromiter(map(len, lines), np.int64, len(lines))


@functools.lru_cache(maxsize=8)
def _charsmap(blob: bytes):
    from jaxlab.tokenizer import charsmap

    return charsmap.CharsMap(blob)


def merge_unknown(
    model: UnigramModel, ids: list[int], last_chars: np.ndarray, byte_ids: np.ndarray
) -> list[int]:
    """SentencePiece's unknown handling of one line's ids: each ``<unk>`` becomes the UTF-8
    byte pieces of its character (``byte_fallback``; ``byte_ids`` from :attr:`byte_ids`), or
    runs of ``<unk>`` merge into one. ``last_chars``: the code point each id ends at."""
    unk, res = model.unk_id, []
    for i, c in zip(ids, last_chars.tolist(), strict=True):
        if i != unk:
            res.append(i)
        elif model.byte_fallback:
            res += byte_ids[list(chr(c).encode("utf-8"))].tolist()
        elif not res or res[-1] != unk:
            res.append(i)
    return res


def decode(model: UnigramModel, ids: Sequence[Sequence[int]]) -> list[str]:
    """Text for each id list: ▁ -> space, byte pieces -> UTF-8, the dummy prefix dropped.

    As SentencePiece: with ``add_dummy_prefix`` or ``remove_extra_whitespaces`` the first piece
    loses a leading ▁; with ``remove_extra_whitespaces`` so does every following piece while
    nothing visible has been decoded (leading lone ▁ pieces decode to nothing). ▁ becomes a
    space whatever ``escape_whitespaces`` says.
    """
    types, pieces, out = model.types, model.pieces, []
    strip = model.add_dummy_prefix or model.remove_extra_whitespaces
    for seq in ids:
        parts, buf, at_start = [], bytearray(), strip
        for i in seq:
            if types[i] == BYTE:
                buf.append(int(pieces[i][3:5], 16))
                continue
            if buf:
                parts.append(buf.decode("utf-8", "replace"))
                buf, at_start = bytearray(), False
            if types[i] == CONTROL:
                continue
            piece = model.unk_surface if types[i] == UNKNOWN else pieces[i]
            if at_start and types[i] != UNKNOWN:
                piece = piece.removeprefix(SPACE_SYMBOL)
            at_start = at_start and not piece and model.remove_extra_whitespaces
            parts.append(piece)
        if buf:
            parts.append(buf.decode("utf-8", "replace"))
        out.append("".join(parts).replace(SPACE_SYMBOL, " "))
    return out
