"""Compiled host kernels for the unigram tokenizer, with the NumPy code as reference/fallback.

Why this exists: SentencePiece finds the pieces of a line by walking its trie in compiled C++.
``lattice.find_edges`` does the same search level by level with vectorised NumPy, which is exact
but costs about 80 ms per MiB of text (one gather, mask and compaction per level), so the host
side, not the device DP, bounds the tokenizer's throughput. The kernels here (``_native.c``,
plain C99) walk the same reversed-piece trie one position at a time through the same dense
transition table; the walk visits exactly the (position, matching suffix) pairs the NumPy search
visits, so the lattices are identical, entry for entry.

The C file ships with the package and is compiled lazily, on first use, with the system C
compiler (``$CC``, default ``cc``) into a per-user cache directory (``$JAXLAB_CACHE/native``,
else ``~/.cache/jaxlab/native``, else a temporary directory), then loaded with :mod:`ctypes`.
The library's file name carries a hash of the source, the compiler, its flags and the machine
architecture, so an edited source gets its own build. Builds are written under a temporary name
and renamed into place, so concurrent processes (``pytest -n 2``) never load a half-written file.

If anything fails (no compiler, a compile or load error) :func:`available` returns False and
the reason is logged once; callers keep using the NumPy path. ``JAXLAB_NATIVE=0`` in the
environment disables the kernels (nothing is compiled).

API (each function raises ``RuntimeError`` when the kernels are unavailable and ``ValueError``
for arguments of the wrong dtype, shape or range):

* :func:`find_edges`: the lattice edges of a flat batch of lines, written into a caller-owned
  int16/int32 buffer with an arbitrary ``base[i] + k * kstride`` layout.
* :func:`pack_rows`: ``lattice.pack_rows`` (first-fit row packing of whole lines).
* :func:`gather_ends`: the decoded piece ids of every line, read back from the device output.
* :func:`layout`: the whole device layout of a batch (grid cells, line starts, positions and the
  lattice) in one pass; equal to the NumPy layout in ``encoder.Tokenizer.prepare``.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np

_log = logging.getLogger(__name__)

_SOURCE = pathlib.Path(__file__).with_name("_native.c")
# No -march=native: it measured no faster (the time goes to the data-dependent trie walk, not
# to arithmetic), and a build cached in a shared home directory must run on every CPU there.
_FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC")

_lock = threading.Lock()
_UNSET = object()
_lib: object = _UNSET  # ctypes.CDLL once loaded, None after a failure

_ERRORS = {
    -1: "a symbol id is outside [0, len(child1))",
    -2: "a trie node is outside [0, len(piece_of)) (corrupt tables)",
    -3: "an output cell base[i] + k * kstride is outside out",
    -4: "a cell index is outside dev",
    -5: "lengths are negative or do not sum to len(cell)",
}

_I64 = ctypes.c_int64
_PTR = ctypes.c_void_p


def _disabled() -> bool:
    return os.environ.get("JAXLAB_NATIVE", "").strip() == "0"


def available() -> bool:
    """True if the compiled kernels are loaded (compiling them on first call).

    False when ``JAXLAB_NATIVE=0`` is set, or when compiling or loading failed (logged once).
    """
    return _library() is not None


# ---- building and loading --------------------------------------------------------------------


def _cache_dirs() -> list[pathlib.Path]:
    dirs = []
    if os.environ.get("JAXLAB_CACHE"):
        dirs.append(pathlib.Path(os.environ["JAXLAB_CACHE"]) / "native")
    else:
        try:
            dirs.append(pathlib.Path.home() / ".cache" / "jaxlab" / "native")
        except RuntimeError:  # no home directory
            pass
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    dirs.append(pathlib.Path(tempfile.gettempdir()) / f"jaxlab-native-{uid}")
    return dirs


def _compile(cc: str, flags: tuple[str, ...], directory: pathlib.Path, source: str) -> pathlib.Path:
    """Compiles ``source`` with ``flags`` into ``directory`` (cached by content) and returns it."""
    digest = hashlib.sha256(
        "\0".join([source, cc, *flags, platform.machine(), sys.platform]).encode()
    ).hexdigest()[:16]
    target = directory / f"jaxlab_native_{platform.machine()}_{digest}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=directory)
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, *flags, "-o", tmp, str(_SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} {' '.join(flags)} failed:\n{proc.stderr.strip()}")
        os.replace(tmp, target)  # atomic: a concurrent build of the same file is identical
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _build() -> ctypes.CDLL:
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise RuntimeError(f"C compiler {cc!r} not found (set CC)")
    source = _SOURCE.read_text()
    errors = []
    for directory in _cache_dirs():  # the next directory if one is not writable
        try:
            return _declare(ctypes.CDLL(str(_compile(cc, _FLAGS, directory, source))))
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            errors.append(f"[{directory}] {e}")
    raise RuntimeError("\n".join(errors))


_LAYOUT = [_I64, _PTR, _I64, _PTR, _PTR, _PTR, _I64, _I64, _I64, _PTR, _I64, _PTR, _PTR, _I64]
_LAYOUT += [_I64, _PTR, _I64, _I64, _I64, _I64, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR]
_LAYOUT += [_I64] * 8  # row_lo, row_hi, line_lo, line_hi, start, n_cps, start_cp, prefix


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Sets the C signatures (pointers as void*, sizes and scalars as int64)."""
    find = [_I64, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _PTR, _I64, _I64, _I64, _PTR, _I64, _PTR]
    for name, args in (
        ("jaxlab_find_edges_i16", find + [_I64]),
        ("jaxlab_find_edges_i32", find + [_I64]),
        ("jaxlab_pack_rows", [_I64, _PTR, _I64, _PTR, _PTR]),
        ("jaxlab_layout_i16", _LAYOUT),
        ("jaxlab_layout_i32", _LAYOUT),
        ("jaxlab_gather_ends_i16", [_PTR, _I64, _PTR, _I64, _PTR, _I64, _PTR, _PTR]),
        ("jaxlab_gather_ends_i32", [_PTR, _I64, _PTR, _I64, _PTR, _I64, _PTR, _PTR]),
    ):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, _I64
    return lib


def _library() -> ctypes.CDLL | None:
    """The loaded library, or None if disabled or unavailable (built once per process)."""
    global _lib
    if _disabled():
        return None
    if _lib is _UNSET:
        with _lock:
            if _lib is _UNSET:
                try:
                    _lib = _build()
                except Exception as e:  # any failure means "use the NumPy path"
                    _log.warning("jaxlab native tokenizer kernels unavailable: %s", e)
                    _lib = None
    return _lib  # type: ignore[return-value]


def _require() -> ctypes.CDLL:
    lib = _library()
    if lib is None:
        why = "disabled by JAXLAB_NATIVE=0" if _disabled() else "failed to build (see log)"
        raise RuntimeError(f"jaxlab native kernels are unavailable: {why}")
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


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _check(code: int, fn: str) -> int:
    if code < 0:
        raise ValueError(f"native {fn}: {_ERRORS.get(code, f'error {code}')}")
    return code


def _out_kind(a: np.ndarray, name: str) -> str:
    if a.dtype == np.int16:
        return "i16"
    if a.dtype == np.int32:
        return "i32"
    raise ValueError(f"{name} must be int16 or int32, got {a.dtype}")


# ---- kernels ---------------------------------------------------------------------------------


def find_edges(
    symbols: np.ndarray,
    offsets: np.ndarray,
    *,
    child1: np.ndarray,
    trans: np.ndarray | None,
    a1: int | np.integer,
    piece_of: np.ndarray,
    max_len: int | np.integer,
    first_missing: int | np.integer,
    none_id: int | np.integer,
    base: np.ndarray,
    kstride: int | np.integer,
    out: np.ndarray,
) -> None:
    """Writes the lattice edges of a flat batch of lines into ``out`` (in place).

    Same search and results as ``lattice.find_edges`` with the dense transition table; only the
    output layout differs: the edge of length ``k + 1`` ending at symbol ``i`` goes to
    ``out[base[i] + k * kstride]``. Cells no edge reaches are left as the caller filled them.

    Args:
      symbols: int ``[N]`` dense symbol ids of all lines, concatenated (0 = in no piece).
      offsets: int ``[N]`` position of each symbol within its line (windows never cross lines).
      child1, trans, piece_of: ``LatticeTables.child1`` (int32 ``[a1]``), ``.trans`` (int32
        ``[num_nodes * a1]``, must not be None) and ``.piece_of`` (int32 ``[num_nodes]``).
      a1: Alphabet size + 1 (``len(child1)``).
      max_len: Longest piece in symbols (edges of at most this length are searched).
      first_missing: Written at ``k = 0`` where the symbol is no single-symbol piece (the
        unknown id, or ``none_id`` when the model has none).
      none_id: Written where a window is a proper suffix of a piece but not a piece.
      base: int ``[N]`` cell of the length-1 edge of each symbol.
      kstride: Distance between the cells of consecutive edge lengths.
      out: C-contiguous writable 1-D int16 or int32 array, pre-filled by the caller.
    """
    if not isinstance(out, np.ndarray) or out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous 1-D numpy array (it is written in place)")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    kind = _out_kind(out, "out")
    a1, max_len, kstride = int(a1), int(max_len), int(kstride)
    first_missing, none_id = int(first_missing), int(none_id)
    sym = _vector(symbols, np.int32, "symbols")
    n = len(sym)
    off = _vector(offsets, np.int32, "offsets", n)
    bas = _vector(base, np.int64, "base", n)
    c1 = _vector(child1, np.int32, "child1", a1)
    pof = _vector(piece_of, np.int32, "piece_of")
    if trans is None:
        raise ValueError("find_edges needs the dense transition table (tables.trans is None)")
    tr = _vector(trans, np.int32, "trans", len(pof) * a1)
    if a1 < 1 or len(pof) < 1:
        raise ValueError("empty tables: need a1 >= 1 and at least the root node in piece_of")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    info = np.iinfo(out.dtype)
    top = max(int(pof.max()), first_missing, none_id)
    if top > info.max or min(first_missing, none_id) < info.min:
        raise ValueError(f"piece ids up to {top} do not fit in out's dtype {out.dtype}")
    lib = _require()
    _check(
        getattr(lib, f"jaxlab_find_edges_{kind}")(
            n,
            _ptr(sym),
            _ptr(off),
            _ptr(c1),
            _ptr(tr),
            a1,
            len(pof),
            _ptr(pof),
            max_len,
            first_missing,
            none_id,
            _ptr(bas),
            kstride,
            _ptr(out),
            len(out),
        ),
        "find_edges",
    )


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
    kind = _out_kind(d, "dev")
    d = np.ascontiguousarray(d)
    cells = _vector(cell, np.int64, "cell")
    lens = _vector(lengths, np.int64, "lengths")
    ids = np.empty(len(cells), np.int32)
    counts = np.empty(len(lens), np.int64)
    lib = _require()
    k = _check(
        getattr(lib, f"jaxlab_gather_ends_{kind}")(
            _ptr(d),
            len(d),
            _ptr(cells),
            len(cells),
            _ptr(lens),
            len(lens),
            _ptr(ids),
            _ptr(counts),
        ),
        "gather_ends",
    )
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
      tables: ``lattice.LatticeTables`` with the dense transition table.
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
    if tables.trans is None:
        raise ValueError("layout needs the dense transition table (tables.trans is None)")
    c, r, m = int(cols), int(rows), int(tables.width)
    ids = np.empty((c, m, r), dtype)
    kind = _out_kind(ids, "dtype")
    top = max(len(tables.edge_scores) - 1, int(first_missing))
    if top > np.iinfo(ids.dtype).max:
        raise ValueError(f"piece ids up to {top} do not fit in {ids.dtype}")
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
    c1 = _vector(tables.child1, np.int32, "child1")
    pof = _vector(tables.piece_of, np.int32, "piece_of")
    tr = _vector(tables.trans, np.int32, "trans", len(pof) * len(c1))
    fn = getattr(_require(), f"jaxlab_layout_{kind}")
    pointers = [_ptr(x) if x is not None else None for x in (ids, starts, cell, lines, offs)]
    fixed = (n, _ptr(code), len(lens), _ptr(lens), _ptr(rw), _ptr(cl), c, r, m)
    fixed += (_ptr(lut), len(lut), _ptr(c1), _ptr(tr), len(c1), len(pof), _ptr(pof))
    fixed += (int(tables.max_len), int(first_missing), int(tables.none_id), int(tables.pad_id))
    fixed += (int(first_line), *pointers, _ptr(sym), _ptr(used))

    def part(row_lo, row_hi, line_lo, line_hi):
        start = int(lens[:line_lo].sum())
        start_cp = start - int(prefixed[:line_lo].sum())
        span = (row_lo, row_hi, line_lo, line_hi, start, len(code), start_cp, int(prefix))
        return _check(fn(*fixed, *span), "layout")

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
