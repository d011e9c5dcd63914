"""SentencePiece's rule-based normaliser, read from a model's ``precompiled_charsmap``.

Models trained with ``normalization_rule_name`` ``nmt_nfkc`` (SentencePiece's default: T5, mT5,
ALBERT, XLNet, XLM-R, ...), ``nfkc``, ``nfkc_cf`` or custom rules carry their normalisation as a
compiled blob: a little-endian uint32 size, a darts-clone double-array trie of that many bytes
over UTF-8 input, then the replacement strings (NUL-terminated) that the trie's values point
into. Normalisation replaces, at every position, the longest prefix the trie knows by its
replacement, and copies other characters as they are; SentencePiece then handles whitespace
(dummy prefix, collapsing and stripping spaces, escaping them as ▁) on the normalised text.

This module is the host-side reference of that procedure in Python (one line at a time), as
google/sentencepiece ``src/normalizer.cc`` (``Normalizer::Normalize``, ``NormalizePrefix``)
describes it; decoding needs no inverse (SentencePiece decodes to normalised text).
"""

from __future__ import annotations

import numpy as np

SPACE_SYMBOL = "\u2581"


class CharsMap:
    """The trie and replacement strings of a ``precompiled_charsmap`` blob."""

    def __init__(self, blob: bytes):
        if len(blob) < 4:
            raise ValueError("precompiled_charsmap: shorter than its 4-byte header")
        size = int.from_bytes(blob[:4], "little")
        if size % 4 or 4 + size > len(blob):
            raise ValueError(f"precompiled_charsmap: bad trie size {size} for {len(blob)} bytes")
        self.units = np.frombuffer(blob[4 : 4 + size], "<u4").astype(np.int64).tolist()
        self.normalized = blob[4 + size :]

    def longest(self, data: bytes, start: int) -> tuple[int, int]:
        """(length, value) of the longest trie key that prefixes ``data[start:]`` ((0, 0): none)."""
        units, best = self.units, (0, 0)
        pos = _offset(units[0])
        for i in range(start, len(data)):
            c = data[i]
            pos ^= c
            if pos >= len(units):
                break
            unit = units[pos]
            if unit & ((1 << 31) | 0xFF) != c:  # label
                break
            pos ^= _offset(unit)
            if (unit >> 8) & 1:  # has a leaf: a key ends here
                best = (i + 1 - start, units[pos] & ((1 << 31) - 1))
        return best

    def replacement(self, value: int) -> bytes:
        end = self.normalized.find(b"\0", value)
        return self.normalized[value : end if end >= 0 else len(self.normalized)]

    def normalize_prefix(self, data: bytes, i: int) -> tuple[bytes, int]:
        """The replacement of the longest rule at ``data[i:]`` (or its first character as is),
        and how many bytes it consumes."""
        length, value = self.longest(data, i)
        if length:
            return self.replacement(value), length
        n = _utf8_length(data[i])
        return data[i : i + n], n


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def _utf8_length(lead: int) -> int:
    return 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def normalize_line(
    text: str,
    charsmap: CharsMap | None,
    *,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    suffix: bool = False,
    user_symbols: tuple[str, ...] = (),
) -> str:
    """SentencePiece's ``Normalizer::Normalize`` of one line.

    ``suffix`` (``treat_whitespace_as_suffix``): the dummy space goes at the end, after the
    trailing spaces are stripped. ``user_symbols``: at every position the longest user-defined
    symbol that starts there is copied as it is (SentencePiece's ``PrefixMatcher``), before
    any normalisation rule is tried.
    """
    data = text.encode("utf-8")
    pieces = []
    i = 0
    symbols = sorted({u.encode("utf-8") for u in user_symbols}, key=len, reverse=True)

    def prefix(at):
        for u in symbols:
            if data.startswith(u, at):
                return u, len(u)
        if charsmap is None:
            n = _utf8_length(data[at])
            return data[at : at + n], n
        return charsmap.normalize_prefix(data, at)

    if remove_extra_whitespaces:  # leading (normalised) spaces
        while i < len(data):
            rep, n = prefix(i)
            if rep != b" ":
                break
            i += n
    if i >= len(data):
        return ""
    space = SPACE_SYMBOL.encode() if escape_whitespaces else b" "
    if add_dummy_prefix and not suffix:
        pieces.append(space)
    prev_space = remove_extra_whitespaces
    while i < len(data):
        rep, n = prefix(i)
        i += n
        if prev_space:
            rep = rep.lstrip(b" ")
        if rep:
            pieces.append(rep.replace(b" ", space) if escape_whitespaces else rep)
            prev_space = remove_extra_whitespaces and rep.endswith(b" ")
    out = b"".join(pieces)
    if remove_extra_whitespaces:
        while out.endswith(space):
            out = out[: -len(space)]
    if add_dummy_prefix and suffix:
        out += space
    return out.decode("utf-8", errors="replace")
