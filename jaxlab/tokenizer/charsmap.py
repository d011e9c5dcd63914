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
        self._chars: dict[str, tuple[bytes | None, bool]] = {}

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

    def char_rule(self, ch: str) -> tuple[bytes | None, bool]:
        """``(replacement or None, context_free)`` for the character ``ch``, cached.

        ``context_free``: no rule key extends past ``ch`` (its trie node has no child), so the
        longest match at ``ch`` is the rule for ``ch`` alone, whatever follows it.
        """
        hit = self._chars.get(ch)
        if hit is None:
            hit = self._chars[ch] = self._char_rule(ch.encode("utf-8"))
        return hit

    def _char_rule(self, data: bytes) -> tuple[bytes | None, bool]:
        units, pos = self.units, _offset(self.units[0])
        for c in data:
            pos ^= c
            if pos >= len(units) or units[pos] & ((1 << 31) | 0xFF) != c:
                return None, True  # the walk dies inside the character: no rule
            unit = units[pos]
            pos ^= _offset(unit)
        rep = self.replacement(units[pos] & ((1 << 31) - 1)) if (unit >> 8) & 1 else None
        for label in range(1, 256):  # any child: a longer key may start here
            child = pos ^ label
            if child < len(units) and units[child] & ((1 << 31) | 0xFF) == label:
                return rep, False
        return rep, True

    def replacement(self, value: int) -> bytes:
        end = self.normalized.find(b"\0", value)
        return self.normalized[value : end if end >= 0 else len(self.normalized)]


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


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
    pieces = []
    i = 0
    starts: dict[str, list[str]] = {}
    for u in sorted(set(user_symbols), key=len, reverse=True):
        starts.setdefault(u[0], []).append(u)

    def prefix(at):
        """(replacement bytes, characters consumed) at character ``at``."""
        for u in starts.get(text[at], ()):
            if text.startswith(u, at):
                return u.encode("utf-8"), len(u)
        ch = text[at]
        if charsmap is None:
            return ch.encode("utf-8", "surrogatepass"), 1
        rep, context_free = charsmap.char_rule(ch)
        if context_free:
            return (ch.encode("utf-8", "surrogatepass") if rep is None else rep), 1
        data = text[at : at + 64].encode("utf-8", "surrogatepass")
        length, value = charsmap.longest(data, 0)
        if length == len(data) and at + 64 < len(text):  # the rule may go on: the whole rest
            data = text[at:].encode("utf-8", "surrogatepass")
            length, value = charsmap.longest(data, 0)
        if not length:
            return ch.encode("utf-8", "surrogatepass"), 1
        return charsmap.replacement(value), len(data[:length].decode("utf-8", "surrogatepass"))

    if remove_extra_whitespaces:  # leading (normalised) spaces
        while i < len(text):
            rep, n = prefix(i)
            if rep != b" ":
                break
            i += n
    if i >= len(text):
        return ""
    space = SPACE_SYMBOL.encode() if escape_whitespaces else b" "
    if add_dummy_prefix and not suffix:
        pieces.append(space)
    prev_space = remove_extra_whitespaces
    while i < len(text):
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
