"""Host-side lattice construction: every vocabulary piece that occurs in a batch of lines.

Tables are built once per model. Pieces are stored as a trie over their *reversed* symbols, so
the windows ending at a position are found by walking left one symbol at a time. The trie's
transitions ``(parent node, symbol) -> child`` live in an open-addressing hash table keyed by
the exact integer ``parent * (A + 1) + symbol``; a probe is accepted only if the stored key equals
the query key, so a hash collision can cost a probe but never create or lose an edge (every edge
is verified symbol by symbol, by induction over the trie walk). When ``nodes x (A + 1)`` is small
(<= 2^24 entries; 4.8M for an 8k SentencePiece model) the same transitions are also stored as a
dense table indexed by that key, which is exact by construction and needs one gather per step;
the hash table serves larger alphabets (and the collision test); the compiled walk of
:mod:`native` uses whichever exists. Symbols are code points
mapped to dense ids ``1..A`` (0 = a character no piece contains).

The search is level-synchronous and vectorised over all windows of the batch: level ``l`` keeps
only the windows whose last ``l`` symbols are a suffix of some piece, so the total work is the
number of (position, matching suffix) pairs, not ``N * M``.

The lattice is returned as piece ids ``[N, M]`` (``NONE`` where no piece), with ``ids[t, k]`` the
piece covering symbols ``t-k .. t``. In SentencePiece mode a position whose character is not a
single-character piece gets an unknown edge of length 1 (``unk_id``, score min - 10).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxlab.tokenizer import native
from jaxlab.tokenizer.model import NORMAL, USER_DEFINED, UnigramModel, line_offsets

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclasses.dataclass(frozen=True, eq=False)
class LatticeTables:
    """Per-model lookup tables (NumPy, host side).

    Attributes:
      char_lut: int32 dense id per code point (0 = not in any piece), length max code point + 1.
      child1: int32 ``[A + 1]`` trie node of each one-symbol suffix (0 = none; root is 0).
      keys, values: the transition hash table (int64 keys, -1 = empty; int32 child nodes).
      max_probe: Longest probe sequence any stored key needs.
      piece_of: int32 ``[num_nodes]`` piece id whose reversed spelling ends at the node, or -1.
      trans: Optional dense transition table ``[num_nodes * (A + 1)]`` (child node, 0 = none),
        used instead of the hash table when it is small (direct indexing: exact, one gather).
      node_info, rows, sp_pairs: Optional two-level transition table for large alphabets
        (built when ``trans`` is not), used by the compiled kernels. ``node_info`` is int32
        ``[num_nodes, 3]``: (first, count, piece) per node, packed so that one cache line
        serves a step of the walk. ``count = -1``: the node has the dense row ``first``,
        ``rows[first * (A + 1) + symbol]`` (the nodes with the most children, as many as fit
        in the budget); else its children are the ``count`` (symbol, child) pairs
        ``sp_pairs[first : first + count]`` (int32 ``[E, 2]``, sorted by symbol; binary
        search). ``piece`` repeats ``piece_of``. Exact, like the others.
    """

    char_lut: np.ndarray
    child1: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    max_probe: int
    piece_of: np.ndarray
    trans: np.ndarray | None
    alphabet_size: int
    max_len: int
    edge_scores: np.ndarray
    node_info: np.ndarray | None = None
    rows: np.ndarray | None = None
    sp_pairs: np.ndarray | None = None

    @property
    def transitions(self) -> str:
        """Which transition table the compiled walk uses: ``dense``, ``two-level`` or ``hash``."""
        if self.trans is not None:
            return "dense"
        return "two-level" if self.node_info is not None else "hash"

    @property
    def width(self) -> int:
        """M rounded up to a power of two: the lattice's last axis (fewer distinct shapes)."""
        return 1 << (self.max_len - 1).bit_length()

    @property
    def none_id(self) -> int:
        return len(self.edge_scores) - 2

    @property
    def pad_id(self) -> int:
        return len(self.edge_scores) - 1


def _slots(keys: np.ndarray, bits: int) -> np.ndarray:
    return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - bits)).astype(np.int64)


def user_defined_score(model: UnigramModel, piece: str) -> np.float32:
    """SentencePiece's lattice score of a user-defined symbol: ``length * max_score - 0.1``.

    ``max_score`` is the float32 maximum of the NORMAL scores and of FLT_MIN (its initial value
    in ``unigram_model.cc``), ``length`` the symbol's length in characters (``PopulateNodes``;
    the optimised encoder counts UTF-8 bytes; the two agree whenever the maximum NORMAL score is
    <= 0, as in every trained model): about -0.1, far above any ordinary piece, so a
    user-defined symbol is (nearly) never split.
    """
    normal = model.scores[model.types == NORMAL]
    top = np.float32(max(np.finfo(np.float32).tiny, normal.max() if normal.size else 0.0))
    return np.float32(float(np.float32(len(piece)) * top) - 0.1)


def _two_level(
    children: dict, piece_of: np.ndarray, a1: int, budget: int, min_degree: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(node_info, rows, sp_pairs)`` of :class:`LatticeTables` (see there).

    Nodes with at least ``min_degree`` children get dense rows, most children first, while
    ``rows`` stays within ``budget`` entries; the other nodes keep sparse sorted rows.
    """
    num_nodes = len(piece_of)
    parent = np.fromiter((p for p, _ in children), np.int64, len(children))
    symbol = np.fromiter((c for _, c in children), np.int64, len(children))
    child = np.fromiter(children.values(), np.int64, len(children))
    degree = np.bincount(parent, minlength=num_nodes)
    busy = np.argsort(-degree, kind="stable")[: max(0, budget // a1)]
    busy = busy[degree[busy] >= min_degree]
    row_of = np.full(num_nodes, -1, np.int64)
    row_of[busy] = np.arange(len(busy))
    rows = np.zeros(len(busy) * a1, np.int32)
    dense = row_of[parent] >= 0
    rows[row_of[parent[dense]] * a1 + symbol[dense]] = child[dense]
    order = np.lexsort((symbol, parent))
    order = order[~dense[order]]
    count = np.bincount(parent[order], minlength=num_nodes)
    info = np.empty((num_nodes, 3), np.int32)
    info[:, 0] = np.where(row_of >= 0, row_of, np.cumsum(count) - count)
    info[:, 1] = np.where(row_of >= 0, -1, count)
    info[:, 2] = piece_of
    pairs = np.stack([symbol[order], child[order]], axis=1).astype(np.int32)
    return info, rows, pairs


def build_tables(
    model: UnigramModel,
    *,
    table_bits: int | None = None,
    dense_limit: int = 1 << 24,
    two_level: bool = True,
) -> LatticeTables:
    """Builds the reversed-piece trie and its transition hash table for ``model``.

    Args:
      model: The vocabulary; NORMAL pieces and user-defined symbols enter the lattice.
      table_bits: log2 of the hash-table size; default gives a load factor <= 1/4. Tiny values
        force collisions (used by tests).
      dense_limit: Also build the dense transition table if it has at most this many entries
        (0 disables it). Otherwise the two-level table is built, its dense rows within the same
        budget.
      two_level: Build the two-level table when the dense one is too big (False: the compiled
        walk then probes the hash table, like the NumPy search).
    """
    normal = [i for i in range(model.vocab_size) if model.types[i] in (NORMAL, USER_DEFINED)]
    alphabet = sorted({c for i in normal for c in model.pieces[i]})
    lut = np.zeros(max((ord(c) for c in alphabet), default=0) + 1, np.int32)
    lut[[ord(c) for c in alphabet]] = np.arange(1, len(alphabet) + 1)
    a1 = len(alphabet) + 1
    children: dict[tuple[int, int], int] = {}
    piece_of = [-1]
    for i in normal:
        node = 0
        for c in reversed(model.pieces[i]):
            nxt = children.get((node, int(lut[ord(c)])))
            if nxt is None:
                nxt = children[(node, int(lut[ord(c)]))] = len(piece_of)
                piece_of.append(-1)
            node = nxt
        piece_of[node] = i
    child1 = np.zeros(a1, np.int32)
    deep = {k: v for k, v in children.items() if k[0] != 0}
    for (parent, c), v in children.items():
        if parent == 0:
            child1[c] = v
    bits = table_bits or max(4, int(np.ceil(np.log2(max(len(deep), 1) * 4))))
    size = 1 << bits
    keys = np.full(size, -1, np.int64)
    values = np.zeros(size, np.int32)
    max_probe = 1
    for (parent, c), v in deep.items():
        k = parent * a1 + c
        s = int(_slots(np.array([k]), bits)[0])
        for probe in range(size):
            j = (s + probe) % size
            if keys[j] < 0:
                keys[j], values[j] = k, v
                max_probe = max(max_probe, probe + 1)
                break
        else:
            raise ValueError("hash table full")
    trans = None
    if len(piece_of) * a1 <= dense_limit:
        trans = np.zeros(len(piece_of) * a1, np.int32)
        for (parent, c), v in children.items():
            trans[parent * a1 + c] = v
    two = (None,) * 3
    if trans is None and two_level:
        deep_rows = {k: v for k, v in children.items() if k[0] != 0}  # root: child1
        two = _two_level(deep_rows, np.array(piece_of, np.int32), a1, min(dense_limit, 1 << 22))
    scores = np.full(model.vocab_size + 2, -np.inf, np.float32)
    scores[normal] = model.scores[normal]
    for i in np.flatnonzero(model.types == USER_DEFINED):
        scores[i] = user_defined_score(model, model.pieces[i])
    if model.unk_id >= 0:
        scores[model.unk_id] = model.unk_score
    scores[-1] = 0.0
    return LatticeTables(
        char_lut=lut,
        child1=child1,
        keys=keys,
        values=values,
        max_probe=max_probe,
        piece_of=np.array(piece_of, np.int32),
        trans=trans,
        alphabet_size=len(alphabet),
        max_len=max((len(model.pieces[i]) for i in normal), default=1),
        edge_scores=scores,
        node_info=two[0],
        rows=two[1],
        sp_pairs=two[2],
    )


def dense_symbols(tables: LatticeTables, cps: np.ndarray) -> np.ndarray:
    """Maps code points to dense symbol ids (0 for characters outside every piece)."""
    inside = cps < len(tables.char_lut)
    return np.where(inside, tables.char_lut[np.where(inside, cps, 0)], 0).astype(np.int64)


def _lookup(tables: LatticeTables, keys: np.ndarray) -> np.ndarray:
    """Exact hash-table lookup: child node per key, 0 where the transition does not exist."""
    bits = int(np.log2(len(tables.keys)))
    mask = len(tables.keys) - 1
    slot = _slots(keys, bits)
    out = np.zeros(len(keys), np.int32)
    todo = np.arange(len(keys))
    for probe in range(tables.max_probe):
        s = (slot[todo] + probe) & mask
        stored = tables.keys[s]
        hit = stored == keys[todo]
        out[todo[hit]] = tables.values[s[hit]]
        todo = todo[~hit & (stored >= 0)]  # an empty slot ends the probe sequence
        if not todo.size:
            break
    return out


def find_edges(
    tables: LatticeTables,
    symbols: np.ndarray,
    offsets: np.ndarray,
    *,
    unk_id: int,
    out: np.ndarray | None = None,
    base: np.ndarray | None = None,
    kstride: int = 1,
    dtype=np.int32,
    use_native: bool | None = None,
) -> np.ndarray:
    """Finds every piece occurrence in a flat batch of lines.

    Args:
      tables: From :func:`build_tables`.
      symbols: int ``[N]`` dense symbol ids of all lines, concatenated.
      offsets: int ``[N]`` position of each symbol within its line (windows never cross lines).
      unk_id: Id for unknown single-character edges (-1: no unknown edges).
      out: Optional flat, C-contiguous int16/int32 array to write into (already filled by the
        caller, e.g. with ``NONE``); edge ``k`` of symbol ``i`` goes to
        ``out[base[i] + k * kstride]``. This lets the caller lay the lattice out directly in
        the DP's order. Default: a new ``[N, width]`` array of ``dtype`` filled with ``NONE``.
      base, kstride: The layout of ``out`` (required with ``out``).
      use_native: Use the compiled walk (:mod:`jaxlab.tokenizer.native`); default: whenever
        it is available. Both give identical lattices.

    Returns:
      The lattice: piece ids, where entry ``k`` of symbol ``t`` is the piece spelled by symbols
      ``t-k..t`` and ``NONE`` where no piece matches (``out`` itself if given).
    """
    n = len(symbols)
    if out is None:
        out = np.full((n, tables.width), tables.none_id, dtype)
        base, kstride = np.arange(n, dtype=np.int64) * tables.width, 1
    elif base is None:
        raise ValueError("find_edges: `out` needs `base` (and `kstride`)")
    if not out.flags.c_contiguous:  # a reshape would copy: the caller would see no results
        raise ValueError("find_edges: `out` must be C-contiguous")
    flat = out.reshape(-1)
    first_missing = unk_id if unk_id >= 0 else tables.none_id
    if use_native is None:
        use_native = native.available()
    if use_native:
        native.find_edges(
            tables, symbols, offsets, first_missing=first_missing, base=base, kstride=kstride,
            out=flat,
        )  # fmt: skip
        return out
    m = tables.max_len
    a1 = tables.alphabet_size + 1
    small = tables.trans is not None  # dense keys fit in int32
    itype = np.int32 if small else np.int64
    node = tables.child1[symbols]
    piece = tables.piece_of[node]
    flat[base] = np.where(piece >= 0, piece, first_missing)
    # Put a 0 symbol (no transitions) before every line, so windows die at line starts.
    is_first = offsets == 0
    shifted = np.arange(n) + np.cumsum(is_first)
    guarded = np.zeros(n + int(is_first.sum()) + 1, itype)
    guarded[shifted] = symbols
    alive = np.flatnonzero(node > 0)
    node = node[alive].astype(itype)
    gpos = shifted[alive].astype(itype)
    cell = base[alive]
    for level in range(2, m + 1):
        key = node * itype(a1) + guarded[gpos - (level - 1)]
        node = tables.trans[key] if small else _lookup(tables, key)
        alive = np.flatnonzero(node)
        if not alive.size:
            break
        gpos, node, cell = gpos[alive], node[alive], cell[alive]
        piece = tables.piece_of[node]
        flat[cell + (level - 1) * kstride] = np.where(piece >= 0, piece, tables.none_id)
    return out


def pack_rows(lengths: np.ndarray, row_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Packs whole lines, in order, into rows of at most ``row_len - 1`` symbols (first fit).

    One cell per row is left free so that every row ends with at least one padding cell.

    Returns:
      ``(row, col)``: int64 ``[B]`` row of each line and the column where it starts.
    """
    row = np.zeros(len(lengths), np.int64)
    col = np.zeros(len(lengths), np.int64)
    r = used = 0
    for i, n in enumerate(lengths.tolist()):
        if used + n > row_len - 1 and used:
            r, used = r + 1, 0
        row[i], col[i] = r, used
        used += n
    return row, col


def layout(cps, lengths, row, col0, *, rows, cols, tables, unk_id, dtype, positions, first_line):
    """NumPy version of :func:`native.layout` (the reference, and the fallback).

    Lays normalised lines (code points ``cps``, ``lengths``, rows and columns from
    :func:`pack_rows`) out in the DP's time-major grid of ``rows`` rows of ``cols`` cells.

    Returns:
      ``(ids [C, M, R], starts bool [C, R], cell int64 [N], lines, offsets)``, the last two
      int32 ``[C, R]`` or None without ``positions``.
    """
    n, m, r, c = len(cps), tables.width, rows, cols
    first = line_offsets(lengths)
    sym_row = np.repeat(row, lengths)
    offset = np.arange(n, dtype=np.int64) - np.repeat(first, lengths)
    col = np.repeat(col0, lengths) + offset
    cell = col * r + sym_row
    ids = np.full((c, m, r), tables.none_id, dtype)
    ids[:, 0, :] = tables.pad_id  # cells without a symbol
    find_edges(
        tables, dense_symbols(tables, cps), offset, unk_id=unk_id, out=ids,
        base=col * (m * r) + sym_row, kstride=r, use_native=False,
    )  # fmt: skip
    starts = np.zeros((c, r), bool)
    nonempty = lengths > 0
    starts[col0[nonempty], row[nonempty]] = True
    used = np.bincount(row, weights=lengths, minlength=r).astype(np.int64)
    padded = np.flatnonzero(used < c)
    starts[used[padded], padded] = True  # padding after the last line of a row
    lines = offs = None
    if positions:
        lines = np.zeros(c * r, np.int32)
        lines[cell] = np.repeat(np.arange(len(lengths)), lengths) + first_line
        offs = np.zeros(c * r, np.int32)
        offs[cell] = offset
        lines, offs = lines.reshape(c, r), offs.reshape(c, r)
    return ids, starts, cell, lines, offs
