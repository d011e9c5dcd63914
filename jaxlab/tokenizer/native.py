"""Compiled host kernels for the unigram tokenizer, with the NumPy code as reference/fallback.

Why this exists: SentencePiece finds the pieces of a line by walking its trie in compiled C++.
``lattice.find_edges`` does the same search level by level with vectorised NumPy, which is exact
but costs about 80 ms per MiB of text (one gather, mask and compaction per level), so the host
side, not the device DP, bounds the tokenizer's throughput. The kernels here (``_native.c``,
plain C) walk the same reversed-piece trie one position at a time, through the dense transition
table or, for large alphabets, the same exact hash table the NumPy search probes; the walk
visits exactly the (position, matching suffix) pairs the NumPy search visits, so the lattices
are identical, entry for entry.

The C file is compiled when the package is installed (``pip install .`` or ``pip install -e
.``; ``setup.py`` declares it as the optional extension ``jaxlab.tokenizer._native``), and this
module loads that shared library with :mod:`ctypes`. Nothing is compiled or written at run time.
Arguments travel in :class:`ctypes.Structure` classes that mirror the C structs field by field;
loading checks the structs' sizes and that the build matches the installed ``_native.c`` (a
hash compiled in by ``setup.py``), so a stale build after an edit is not used.

If the extension is absent (no compiler at install time), stale or fails to load,
:func:`available` returns False, :func:`host_path` says why, and callers use the NumPy path.
``JAXLAB_NATIVE=0`` in the environment disables the kernels.

API (each function raises ``RuntimeError`` when the kernels are unavailable and ``ValueError``
for arguments of the wrong dtype, shape or range):

* :func:`find_edges`: the lattice edges of a flat batch of lines, written into a caller-owned
  int16/int32 buffer with an arbitrary ``base[i] + k * kstride`` layout.
* :func:`pack_rows`: ``lattice.pack_rows`` (first-fit row packing of whole lines).
* :func:`gather_ends`: the decoded piece ids of every line, read back from the device output.
* :func:`layout`: the whole device layout of a batch (grid cells, line starts, positions and the
  lattice) in one pass; equal to ``lattice.layout``, the NumPy one.

The whole DP on the host (Viterbi and FFBS in C over the same trie walk) is bound in
:mod:`jaxlab.tokenizer.native_dp`, with the argument structs declared here.

Large alphabets: when a model's dense transition table would be too big, the walk reads the
two-level table of ``lattice.build_tables`` (dense rows for the busiest nodes, sparse sorted
rows for the rest) rather than the hash table; ``LatticeTables.transitions`` names the table.

The module is a single concept, the layout kernels' bindings with their argument checks (about
560 lines), so it is not split further.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import importlib.util
import logging
import os
import pathlib
import threading

import numpy as np

_log = logging.getLogger(__name__)

_SOURCE = pathlib.Path(__file__).with_name("_native.c")
EXTENSION = "jaxlab.tokenizer._native"

_lock = threading.Lock()
_UNSET = object()
_lib: object = _UNSET  # ctypes.CDLL once loaded, None after a failure
_why = ""  # why the kernels are unavailable (after a failure)

_ERRORS = {
    -1: "a symbol id is outside [0, len(child1))",
    -2: "a trie node is outside [0, len(piece_of)) (corrupt tables)",
    -3: "an output cell base[i] + k * kstride is outside out",
    -4: "a cell index is outside dev",
    -5: "lengths are negative or do not sum to len(cell)",
    -6: "the output must be int16 or int32",
    -7: "a line has no segmentation (a character in no piece and no unknown id)",
    -8: "out of memory for the host DP's scratch arrays",
}
ERR_UNREACHABLE_TEXT = _ERRORS[-7]  # encoder falls back to the JAX DP on this one

_I64 = ctypes.c_int64
_PTR = ctypes.c_void_p


def _fields(pointers: str, ints: str) -> list[tuple[str, type]]:
    return [(n, _PTR) for n in pointers.split()] + [(n, _I64) for n in ints.split()]


class Trie(ctypes.Structure):
    """``jaxlab_trie`` in ``_native.c``: a model's reversed-piece trie (``LatticeTables``)."""

    _fields_ = _fields(
        "child1 trans keys values piece_of node_info rows sp_pairs",
        "a1 num_nodes hash_bits max_probe max_len first_missing none_id pad_id",
    )


class FindArgs(ctypes.Structure):
    """``jaxlab_find_args``: the inputs and output of :func:`find_edges`."""

    _fields_ = _fields("symbols offsets base out", "n kstride out_len out_itemsize")


class LayoutArgs(ctypes.Structure):
    """``jaxlab_layout_args``: the inputs, outputs and scratch buffers of :func:`layout`."""

    _fields_ = _fields(
        "cps lengths row col0 char_lut ids starts cell lines offs sym used",
        "n n_cps b c r m lut_len prefix first_line ids_itemsize",
    )


class Span(ctypes.Structure):
    """``jaxlab_span``: the rows and lines one layout call handles."""

    _fields_ = _fields("", "row_lo row_hi line_lo line_hi start start_cp")


class DpArgs(ctypes.Structure):
    """``jaxlab_dp_args``: the inputs and outputs of :func:`host_dp`."""

    _fields_ = _fields(
        "cps lengths char_lut scores byte_ids ids counts",
        "n n_cps b lut_len n_scores prefix prefix_cp space_cp unk_id unk_mode cap sample key0 key1"
        " first_line",
    )


_STRUCTS = (Trie, FindArgs, LayoutArgs, Span, DpArgs)  # in jaxlab_struct_size's order


def _disabled() -> bool:
    return os.environ.get("JAXLAB_NATIVE", "").strip() == "0"


def available() -> bool:
    """True if the compiled kernels are loaded (loading them on first call).

    False when ``JAXLAB_NATIVE=0`` is set, or when the extension is absent, stale or fails to
    load (logged once; :func:`host_path` gives the reason).
    """
    return _library() is not None


def host_path() -> tuple[str, str]:
    """``("native", library path)`` or ``("numpy", why the kernels are not used)``."""
    lib = _library()
    if lib is not None:
        return "native", lib._name
    return "numpy", "disabled by JAXLAB_NATIVE=0" if _disabled() else _why


# ---- loading ---------------------------------------------------------------------------------


def source_hash() -> str | None:
    """Hash of the installed ``_native.c`` as ``setup.py`` computes it (None if not shipped)."""
    try:
        return hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _find() -> str:
    spec = importlib.util.find_spec(EXTENSION)
    if spec is None or not spec.origin or not spec.origin.endswith(tuple(_suffixes())):
        raise RuntimeError(
            "the extension jaxlab.tokenizer._native is not built "
            "(no C compiler at install time? reinstall with `pip install -e .`)"
        )
    return spec.origin


def _suffixes() -> list[str]:
    import importlib.machinery

    return importlib.machinery.EXTENSION_SUFFIXES


def load(path: str) -> ctypes.CDLL:
    """Loads the kernels from a built extension at ``path`` and checks it against this module."""
    lib = ctypes.CDLL(path)
    lib.jaxlab_struct_size.argtypes, lib.jaxlab_struct_size.restype = [_I64], _I64
    for i, struct in enumerate(_STRUCTS):
        if lib.jaxlab_struct_size(i) != ctypes.sizeof(struct):
            raise RuntimeError(f"{path}: struct {struct.__name__} differs from native.py (stale)")
    lib.jaxlab_source_hash.argtypes, lib.jaxlab_source_hash.restype = [], ctypes.c_char_p
    built, shipped = lib.jaxlab_source_hash().decode(), source_hash()
    if shipped is not None and built != shipped:
        raise RuntimeError(
            f"{path} was built from another version of _native.c (stale build; "
            "reinstall with `pip install -e .`)"
        )
    p = ctypes.POINTER
    lib.jaxlab_find_edges.argtypes = [p(Trie), p(FindArgs)]
    lib.jaxlab_layout.argtypes = [p(Trie), p(LayoutArgs), p(Span)]
    lib.jaxlab_pack_rows.argtypes = [_I64, _PTR, _I64, _PTR, _PTR]
    lib.jaxlab_gather_ends.argtypes = [_PTR, _I64, _I64, _PTR, _I64, _PTR, _I64, _PTR, _PTR]
    lib.jaxlab_host_dp.argtypes = [p(Trie), p(DpArgs), p(Span), ctypes.c_double]
    lib.jaxlab_uniform.argtypes, lib.jaxlab_uniform.restype = [_I64] * 4, ctypes.c_float
    names = ("jaxlab_find_edges", "jaxlab_layout", "jaxlab_pack_rows", "jaxlab_gather_ends")
    for name in (*names, "jaxlab_host_dp"):
        getattr(lib, name).restype = _I64
    return lib


def _library() -> ctypes.CDLL | None:
    """The loaded library, or None if disabled or unavailable (loaded once per process)."""
    global _lib, _why
    if _disabled():
        return None
    if _lib is _UNSET:
        with _lock:
            if _lib is _UNSET:
                try:
                    _lib = load(_find())
                except Exception as e:  # any failure means "use the NumPy path"
                    _why = str(e)
                    _log.warning("jaxlab native tokenizer kernels unavailable: %s", e)
                    _lib = None
    return _lib  # type: ignore[return-value]


def _require() -> ctypes.CDLL:
    lib = _library()
    if lib is None:
        raise RuntimeError(f"jaxlab native kernels are unavailable: {host_path()[1]}")
    return lib


# ---- argument handling ---------------------------------------------------------------------


def _vector(x, dtype, name: str, n: int | None = None) -> np.ndarray:
    """``x`` as a contiguous 1-D array of ``dtype`` (copied only if needed), length-checked."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got {a.dtype}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} has length {len(a)}, expected {n}")
    return np.ascontiguousarray(a, dtype)


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _check(code: int, fn: str) -> int:
    if code < 0:
        raise ValueError(f"native {fn}: {_ERRORS.get(code, f'error {code}')}")
    return code


def _itemsize(a: np.ndarray, name: str) -> int:
    if a.dtype not in (np.int16, np.int32):
        raise ValueError(f"{name} must be int16 or int32, got {a.dtype}")
    return a.dtype.itemsize


def _trie(tables, first_missing: int, keep: list) -> Trie:
    """The C view of ``tables`` (arrays appended to ``keep``, which must outlive the call)."""
    a1 = len(tables.child1)
    child1 = _vector(tables.child1, np.int32, "child1")
    piece_of = _vector(tables.piece_of, np.int32, "piece_of")
    keys = _vector(tables.keys, np.int64, "keys")
    values = _vector(tables.values, np.int32, "values", len(keys))
    bits = len(keys).bit_length() - 1
    if len(keys) != 1 << bits or not 1 <= bits <= 63:
        raise ValueError(f"keys must have a power-of-two length >= 2, got {len(keys)}")
    trans = None
    if tables.trans is not None:
        trans = _vector(tables.trans, np.int32, "trans", len(piece_of) * a1)
    if a1 < 1 or len(piece_of) < 1:
        raise ValueError("empty tables: need len(child1) >= 1 and the root node in piece_of")
    if tables.max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {tables.max_len}")
    two = _two_level(tables, len(piece_of), a1) if trans is None else (None,) * 3
    keep += [child1, piece_of, keys, values, trans, *two]
    return Trie(
        child1=_ptr(child1),
        trans=_ptr(trans),
        keys=_ptr(keys),
        values=_ptr(values),
        piece_of=_ptr(piece_of),
        node_info=_ptr(two[0]),
        rows=_ptr(two[1]),
        sp_pairs=_ptr(two[2]),
        a1=a1,
        num_nodes=len(piece_of),
        hash_bits=bits,
        max_probe=int(tables.max_probe),
        max_len=int(tables.max_len),
        first_missing=int(first_missing),
        none_id=int(tables.none_id),
        pad_id=int(tables.pad_id),
    )


def _two_level(tables, num_nodes: int, a1: int) -> tuple:
    """The two-level transition arrays of ``tables``, checked (or three Nones if it has none).

    The checks (every dense row inside ``rows``, every sparse run inside ``sp_pairs``, the
    pieces equal to ``piece_of``) run once per table object: the arrays are read-only after
    :func:`lattice.build_tables`.
    """
    if getattr(tables, "node_info", None) is None:
        return (None,) * 3
    key = id(tables)
    hit = _checked.get(key)
    if hit is not None and hit[0] is tables:
        return hit[1]
    info = np.ascontiguousarray(tables.node_info, np.int32)
    rows = _vector(tables.rows, np.int32, "rows")
    pairs = np.ascontiguousarray(tables.sp_pairs, np.int32)
    if info.shape != (num_nodes, 3) or pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError("node_info must be [num_nodes, 3] and sp_pairs [E, 2]")
    if len(rows) % a1:
        raise ValueError("rows must hold whole rows of len(child1) entries")
    first, count = info[:, 0].astype(np.int64), info[:, 1].astype(np.int64)
    dense = count < 0
    if (dense & ((count != -1) | (first < 0) | (first >= len(rows) // a1))).any():
        raise ValueError("node_info: a dense row outside `rows`")
    if (~dense & ((first < 0) | (first + count > len(pairs)))).any():
        raise ValueError("node_info: a sparse run outside `sp_pairs`")
    if not np.array_equal(info[:, 2], np.asarray(tables.piece_of)):
        raise ValueError("node_info: pieces differ from piece_of")
    out = (info, rows, pairs)
    _checked.clear()  # one table at a time is the common case; keep the cache small
    _checked[key] = (tables, out)
    return out


_checked: dict = {}


def _check_ids_fit(dtype, tables, first_missing: int) -> None:
    info = np.iinfo(dtype)
    top = max(len(tables.edge_scores) - 1, int(first_missing))
    if top > info.max or int(first_missing) < info.min:
        raise ValueError(f"piece ids up to {top} do not fit in {np.dtype(dtype)}")


# ---- kernels ---------------------------------------------------------------------------------


def find_edges(
    tables,
    symbols: np.ndarray,
    offsets: np.ndarray,
    *,
    first_missing: int | np.integer,
    base: np.ndarray,
    kstride: int | np.integer,
    out: np.ndarray,
) -> None:
    """Writes the lattice edges of a flat batch of lines into ``out`` (in place).

    Same search and results as ``lattice.find_edges``; only the output layout differs: the edge
    of length ``k + 1`` ending at symbol ``i`` goes to ``out[base[i] + k * kstride]``. Cells no
    edge reaches are left as the caller filled them.

    Args:
      tables: ``lattice.LatticeTables`` (the dense transition table is used when present, the
        exact hash table otherwise).
      symbols: int ``[N]`` dense symbol ids of all lines, concatenated (0 = in no piece).
      offsets: int ``[N]`` position of each symbol within its line (windows never cross lines).
      first_missing: Written at ``k = 0`` where the symbol is no single-symbol piece (the
        unknown id, or ``tables.none_id`` when the model has none).
      base: int ``[N]`` cell of the length-1 edge of each symbol.
      kstride: Distance between the cells of consecutive edge lengths.
      out: C-contiguous writable 1-D int16 or int32 array, pre-filled by the caller.
    """
    if not isinstance(out, np.ndarray) or out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous 1-D numpy array (it is written in place)")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    itemsize = _itemsize(out, "out")
    _check_ids_fit(out.dtype, tables, int(first_missing))
    sym = _vector(symbols, np.int32, "symbols")
    n = len(sym)
    off = _vector(offsets, np.int32, "offsets", n)
    bas = _vector(base, np.int64, "base", n)
    keep: list = []
    trie = _trie(tables, int(first_missing), keep)
    args = FindArgs(
        symbols=_ptr(sym),
        offsets=_ptr(off),
        base=_ptr(bas),
        out=_ptr(out),
        n=n,
        kstride=int(kstride),
        out_len=len(out),
        out_itemsize=itemsize,
    )
    _check(_require().jaxlab_find_edges(ctypes.byref(trie), ctypes.byref(args)), "find_edges")


def pack_rows(lengths: np.ndarray, row_len: int | np.integer) -> tuple[np.ndarray, np.ndarray]:
    """``lattice.pack_rows``: whole lines, in order, into rows of at most ``row_len - 1`` symbols.

    Returns:
      ``(row, col)``: int64 ``[B]`` row of each line and the column where it starts.
    """
    lens = _vector(lengths, np.int64, "lengths")
    row = np.empty(len(lens), np.int64)
    col = np.empty(len(lens), np.int64)
    lib = _require()
    _check(lib.jaxlab_pack_rows(len(lens), _ptr(lens), int(row_len), _ptr(row), _ptr(col)), "pack")
    return row, col


def gather_ends(
    dev: np.ndarray, cell: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The piece ids the device DP placed in each line's cells, in order.

    Args:
      dev: 1-D int16/int32 device output: the id of the piece ending at a cell, -1 elsewhere.
      cell: int ``[N]`` index into ``dev`` of every symbol (lines contiguous, in order).
      lengths: int ``[B]`` symbols per line (summing to N).

    Returns:
      ``(ids, counts)``: int32 ``[K]`` = ``dev[cell][dev[cell] >= 0]`` and int64 ``[B]`` how
      many of those belong to each line.
    """
    d = np.asarray(dev)
    if d.ndim != 1:
        raise ValueError(f"dev must be 1-D, got shape {d.shape}")
    itemsize = _itemsize(d, "dev")
    d = np.ascontiguousarray(d)
    cells = _vector(cell, np.int64, "cell")
    lens = _vector(lengths, np.int64, "lengths")
    ids = np.empty(len(cells), np.int32)
    counts = np.empty(len(lens), np.int64)
    k = _check(
        _require().jaxlab_gather_ends(
            _ptr(d), itemsize, len(d), _ptr(cells), len(cells), _ptr(lens), len(lens),
            _ptr(ids), _ptr(counts),
        ),
        "gather_ends",
    )  # fmt: skip
    return (ids[:k].copy() if k < len(ids) else ids), counts


def layout(
    cps: np.ndarray,
    lengths: np.ndarray,
    row: np.ndarray,
    col0: np.ndarray,
    *,
    rows: int,
    cols: int,
    tables,
    first_missing: int,
    dtype,
    positions: bool = True,
    first_line: int = 0,
    threads: int = 2,
    prefix: int = -1,
    char_lut: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Lays normalised lines out in the DP's time-major grid and builds their lattice.

    Args:
      cps: uint32 code points of all lines, concatenated: normalised, or raw text when
        ``prefix`` / ``char_lut`` do the normalisation.
      lengths, row, col0: int ``[B]`` line lengths in symbols (normalised, with any prefix) and
        their places from :func:`pack_rows` (every line must end before its row's last column).
      rows, cols: The grid: ``R`` rows of ``C`` cells; cell ``(col, row)`` is ``col * R + row``.
      tables: ``lattice.LatticeTables`` (dense transition table or hash table).
      first_missing: Edge id at ``k = 0`` for a symbol that is no single-symbol piece.
      dtype: int16 or int32, the lattice's dtype.
      positions: Also return the line index and offset of every cell (samplers need them).
      first_line: Added to the line indices.
      threads: 2 lays out the two halves of the rows in parallel (one in a worker thread; the
        result does not depend on it), 1 uses the calling thread only.
      prefix: Dense symbol put before every non-empty line (SentencePiece's dummy prefix read
        from raw text), or -1 for none.
      char_lut: Code point -> dense symbol map to use instead of ``tables.char_lut`` (e.g. one
        that sends U+0020 to the symbol of U+2581, escaping whitespace on the fly).

    Returns:
      ``(ids [C, M, R], starts bool [C, R], cell int64 [N], lines, offsets)`` (the last two
      int32 ``[C, R]``, or None without ``positions``).
    """
    c, r, m = int(cols), int(rows), int(tables.width)
    ids = np.empty((c, m, r), dtype)
    itemsize = _itemsize(ids, "dtype")
    _check_ids_fit(ids.dtype, tables, int(first_missing))
    code = _vector(cps, np.uint32, "cps")
    lens = _vector(lengths, np.int64, "lengths")
    rw = _vector(row, np.int64, "row", len(lens))
    cl = _vector(col0, np.int64, "col0", len(lens))
    n = int(lens.sum())
    prefixed = lens > 0 if prefix >= 0 else np.zeros(len(lens), bool)
    if (lens < 0).any() or n - int(prefixed.sum()) != len(code):
        raise ValueError(f"lengths (minus prefixes) must be >= 0 and sum to len(cps) = {len(code)}")
    starts = np.empty((c, r), np.uint8)
    cell = np.empty(n, np.int64)
    lines = np.empty((c, r), np.int32) if positions else None
    offs = np.empty((c, r), np.int32) if positions else None
    sym = np.empty(n, np.int32)
    used = np.empty(r, np.int64)
    lut = _vector(tables.char_lut if char_lut is None else char_lut, np.int32, "char_lut")
    keep: list = []
    trie = _trie(tables, int(first_missing), keep)
    args = LayoutArgs(
        cps=_ptr(code), lengths=_ptr(lens), row=_ptr(rw), col0=_ptr(cl), char_lut=_ptr(lut),
        ids=_ptr(ids), starts=_ptr(starts), cell=_ptr(cell), lines=_ptr(lines), offs=_ptr(offs),
        sym=_ptr(sym), used=_ptr(used), n=n, n_cps=len(code), b=len(lens), c=c, r=r, m=m,
        lut_len=len(lut), prefix=int(prefix), first_line=int(first_line), ids_itemsize=itemsize,
    )  # fmt: skip
    fn = _require().jaxlab_layout

    def part(row_lo, row_hi, line_lo, line_hi):
        start = int(lens[:line_lo].sum())
        start_cp = start - int(prefixed[:line_lo].sum())
        span = Span(row_lo, row_hi, line_lo, line_hi, start, start_cp)
        return _check(fn(ctypes.byref(trie), ctypes.byref(args), ctypes.byref(span)), "layout")

    # Two halves of the rows (split between lines) can run in parallel: each writes only its
    # own rows. ctypes releases the GIL during the C call.
    rows_used = int(rw[-1]) + 1 if len(rw) else 0
    split_row = rows_used // 2
    if threads > 1 and split_row > 0 and len(code) >= _PARALLEL_MIN_SYMBOLS:
        split_line = int(np.searchsorted(rw, split_row))
        other = _pool().submit(part, split_row, r, split_line, len(lens))
        part(0, split_row, 0, split_line)
        other.result()
    else:
        part(0, r, 0, len(lens))
    return ids, starts.view(bool), cell, lines, offs


_PARALLEL_MIN_SYMBOLS = 1 << 14
_executor = None


def _pool():
    """One worker thread shared by all layouts (created on first use)."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(1, "jaxlab-native")
    return _executor


def _forget_pool_in_child() -> None:
    """A forked child has no worker thread: it must not submit to the parent's executor."""
    global _executor
    _executor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)
