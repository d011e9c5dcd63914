"""Host API: batch encode / sample / decode with a unigram model (SentencePiece-compatible).

``Tokenizer(model)`` builds the lattice tables once; ``encode(texts, alpha=..., key=...)``
normalises the lines as SentencePiece does, packs whole lines end to end into ``R`` rows of
``C`` cells (``R`` and ``C`` bucketed, so a few shapes cover every batch), builds the lattice
``[C, M, R]`` in that time-major layout on the host, runs the DP for all rows in one jitted call,
and maps unknown characters to ``<unk>`` (merged) or to UTF-8 byte pieces (byte fallback).

Host work (layout, lattice search, reading ids back) runs in the small compiled kernels of
:mod:`jaxlab.tokenizer.native` when ``pip install`` built them, else in vectorised NumPy; the
results are identical. With the kernels and no device mesh, Viterbi and the ``ffbs`` sampler
skip the layout and the JAX DP altogether: ``native_dp.host_dp`` runs the whole DP per line in C
(same float32 recursion, same ids; ``Tokenizer(host_dp=False)`` keeps the JAX DP, and
:attr:`Tokenizer.dp_path` says which one runs). On the JAX DP, large inputs are split into
chunks of about ``CHUNK_CHARS`` characters and pipelined: the DP of one chunk runs
(asynchronous dispatch) while the host lays out the next chunk and reads back the previous one.

``alpha=None`` (the default) is Viterbi; a finite ``alpha >= 0`` samples from P(w)^alpha / Z
(``alpha = 0``: uniform over segmentations). BytePiece's ``alpha < 0`` sentinel for Viterbi is
not accepted: a negative or nan ``alpha`` raises ``ValueError`` (CONTRIBUTING.md, STYLE §2.4).

A single concept (the batched host API, its pipelining and the choice of DP path), about 540
lines, so it is not split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import math
import numbers
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import sharding
from jaxlab.tokenizer import decoding, native, native_dp
from jaxlab.tokenizer import lattice as lat
from jaxlab.tokenizer.model import (
    UnigramModel,
    decode,
    line_offsets,
    merge_unknown,
    normalize,
    to_codepoints,
)


@dataclasses.dataclass(frozen=True)
class Batch:
    """A batch of normalised lines laid out for the device DP (host arrays).

    The layout is time-major with rows last (see :mod:`decoding`): ``R`` rows of ``C`` cells,
    cell ``(col, row)`` has the flat index ``col * R + row``.
    """

    text: tuple[np.ndarray, np.ndarray]  # the code points and lengths the layout was built from
    lengths: np.ndarray  # int64 [B] normalised line lengths
    cell: np.ndarray  # int64 [N] flat cell index col * R + row of every symbol
    ids: np.ndarray  # int [C, M, R] lattice piece ids
    starts: np.ndarray  # bool [C, R] line (and padding) starts
    lines: np.ndarray | None  # int32 [C, R] line index of every cell (samplers only)
    offsets: np.ndarray | None  # int32 [C, R] offset within the line (samplers only)
    last_cell: np.ndarray  # int64 [B] cell of each line's last symbol (-1 if empty)
    model: UnigramModel | None = None  # set when ``text`` is raw (normalised on demand)

    @functools.cached_property
    def cps(self) -> np.ndarray:
        """uint32 ``[N]`` normalised code points (computed on first use from raw text)."""
        return self.text[0] if self.model is None else normalize(self.model, *self.text)[0]

    def edge_index(self, cell: np.ndarray, k: np.ndarray | int) -> np.ndarray:
        """Flat index into ``ids`` of edge ``k`` (length k + 1) ending at ``cell``."""
        _, m, r = self.ids.shape
        return (cell // r * m + k) * r + cell % r

    def symbol_edges(self) -> np.ndarray:
        """The lattice as ``[N, M]``: the edges ending at every symbol, in text order."""
        _, m, r = self.ids.shape
        return self.ids.reshape(-1)[self.edge_index(self.cell[:, None], np.arange(m))]


def _bucket(n: int, minimum: int = 16, steps: int = 1) -> int:
    """Rounds n up to a power of two, or to one of ``steps`` values per octave."""
    top = 1 << int(np.ceil(np.log2(max(n, 1))))
    grain = max(1, top // (2 * steps)) if steps > 1 else top
    return max(minimum, -(-n // grain) * grain)


SAMPLERS = decoding.METHODS  # the samplers of ``decoding.sample``


def _check_alpha(alpha) -> float:
    """``alpha`` as a float, or ValueError unless it is a finite number >= 0."""
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise ValueError(f"alpha must be a finite number >= 0 (or None), got {alpha!r}")
    value = float(alpha)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"alpha must be a finite number >= 0 (or None for Viterbi), got {alpha}")
    return value


def _lines(texts) -> Sequence[str]:
    """``texts`` if it is a sequence of str; ValueError for a single str or other items."""
    if isinstance(texts, str | bytes):
        raise ValueError("texts must be a list of lines (str), got a single string; use [text]")
    if not isinstance(texts, Sequence):
        texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        bad = next(t for t in texts if not isinstance(t, str))
        raise ValueError(f"texts must hold str lines, got {type(bad).__name__}")
    return texts


LONG_ROW = 1 << 16  # rows longer than this are bucketed finely (memory of long lines)
CHUNK_CHARS = 1 << 17  # encode() pipelines host lattice building and device DP over chunks


def _forward(edge_scores, ids, starts, alpha, method, lines, offsets, key):
    """The one jitted device function: lattice ``[C, M, R]`` -> piece-end ids ``[C, R]``.

    Cells where no piece ends hold -1. For ``log_partition`` and ``entropy`` the values at
    every cell are returned instead.
    """
    if method == "viterbi":
        _, k, ends = decoding.viterbi(ids, starts, edge_scores)
    elif method == "log_partition":
        return decoding.log_partition(ids, starts, alpha, edge_scores)
    elif method == "entropy":
        return decoding.entropy(ids, starts, alpha, edge_scores)
    else:
        k, ends = decoding.sample(ids, starts, lines, offsets, alpha, method, edge_scores, key=key)
    piece = jnp.take_along_axis(ids, k[:, None, :], axis=1)[:, 0]
    return jnp.where(ends, piece, jnp.asarray(-1, ids.dtype))


# The jit boundary of the host API; shared by all tokenizers (shapes are bucketed).
DEVICE_FN = jax.jit(_forward, static_argnames=("method",))


@functools.cache
def _sharded_device_fn(mesh: jax.sharding.Mesh):
    """``DEVICE_FN`` with rows over ``data``; one per mesh, shared by its tokenizers."""
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, sharding.DATA_AXIS))
    return jax.jit(_forward, static_argnames=("method",), out_shardings=rows)


def _nbest(edge_scores, ids, num):
    s = edge_scores[ids.astype(jnp.int32)]
    return jax.vmap(lambda x: decoding.nbest(x, num))(s)


NBEST_FN = jax.jit(_nbest, static_argnames=("num",))


@contextlib.contextmanager
def _gc_paused():
    """Pauses Python's cyclic garbage collector while the id lists are built.

    ``encode`` creates one list per line (26k lists of 560k ints for 1 MiB of source code). With
    the collector running, these allocations trigger dozens of collections (some of them of
    older generations too) that find nothing: lists of ints cannot form cycles. Paused, one
    collection runs when it is re-enabled. Reference counting frees everything as usual, and
    the collector's previous state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Tokenizer:
    """Batch unigram tokenizer over a :class:`UnigramModel` (host object, jitted device DP).

    Args:
      model: The vocabulary (e.g. ``spm.from_sentencepiece(path)``).
      target_row_len: Rows hold about this many symbols; more rows = wider DP steps.
      table_bits: Hash-table size override (tests force collisions with a tiny table).
      score_table_size: Pad the device score table to this length (fixed shapes across the
        shrinking vocabularies of training); default: the next power of two.
      mesh: Data parallelism (``jaxlab.sharding.data_mesh``): the row axis ``R`` of the DP is
        split over the ``data`` axis (rows are padded with empty rows to a multiple of the
        device count, as bucketing already does). Results do not depend on it: line i draws
        from (key, i) only. Default: unsharded, the shared ``DEVICE_FN``.
      use_native: Build lattices and read results with the compiled host kernels
        (:mod:`jaxlab.tokenizer.native`) instead of NumPy. Default: when they are available.
        Results are identical either way; only the host time differs.
      host_dp: Run Viterbi and the ``ffbs`` sampler entirely in C on the host
        (``native_dp.host_dp``: trie walk, DP, backtracking, unknown handling and the id lists),
        instead of building the lattice for the jitted JAX DP. Default (None): when the
        compiled kernels are used and no ``mesh`` is given. False keeps the JAX DP; True
        requires the kernels and no mesh. Viterbi ids are identical either way; samples follow
        the same law with the same uniforms. The other samplers, ``log_partition``,
        ``entropy`` and ``nbest`` always use the JAX DP. :attr:`dp_path` says which runs.
      threads: Host threads of the C DP (lines split into contiguous spans; results do not
        depend on it). Default: the CPUs this process may use, at most 8.
    """

    def __init__(
        self,
        model: UnigramModel,
        *,
        target_row_len: int = 1024,
        table_bits: int | None = None,
        score_table_size: int | None = None,
        mesh: jax.sharding.Mesh | None = None,
        use_native: bool | None = None,
        host_dp: bool | None = None,
        threads: int | None = None,
    ):
        self.model = model
        self.tables = lat.build_tables(model, table_bits=table_bits)
        self.target_row_len = target_row_len
        self._byte_ids = model.byte_ids
        scores = self.tables.edge_scores
        # Pad the score table to a power of two so that small vocabularies share compilations.
        size = max(score_table_size or 0, _bucket(len(scores)))
        pad = np.full(size - len(scores), -np.inf, np.float32)
        self._edge_scores = jnp.asarray(np.concatenate([scores, pad]))
        self._dtype = np.int16 if model.vocab_size + 2 < 2**15 else np.int32
        self.mesh = mesh
        if use_native and not native.available():
            why = native.host_path()[1]
            raise RuntimeError(f"use_native=True but the compiled kernels are unavailable: {why}")
        self.use_native = native.available() if use_native is None else use_native
        self.device_fn = DEVICE_FN if mesh is None else _sharded_device_fn(mesh)
        if host_dp and mesh is not None:
            raise ValueError("host_dp=True runs on the host: it cannot be combined with a mesh")
        if host_dp and not self.use_native:
            raise ValueError("host_dp=True needs the compiled kernels (use_native is False)")
        self.host_dp = self.use_native and mesh is None if host_dp is None else bool(host_dp)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads}")
        self.threads = threads or min(8, len(os.sched_getaffinity(0)))
        # How the layout kernel normalises raw text (identity normaliser, no whitespace removal).
        lut = self.tables.char_lut
        lut = np.concatenate([lut, np.zeros(max(0, 0x2582 - len(lut)), lut.dtype)])
        if model.escape_whitespaces:
            lut[32] = lut[0x2581]
        self._raw_text = {
            "char_lut": lut,
            "prefix": int(lut[0x2581 if model.escape_whitespaces else 32])
            if model.add_dummy_prefix
            else -1,
        }

    @property
    def host_path(self) -> str:
        """``"native"`` (compiled kernels) or ``"numpy"``: the host path :meth:`prepare` takes."""
        return "native" if self.use_native else "numpy"

    @property
    def dp_path(self) -> str:
        """Where Viterbi and ``ffbs`` run: ``"host-c"`` (:func:`native_dp.host_dp`) or ``"jax"``.

        With the compiled kernels, also which transition table their trie walk reads
        (``dense``, ``two-level`` or ``hash``), e.g. ``"host-c (two-level transitions)"``.
        """
        path = "host-c" if self.host_dp else "jax"
        if self.use_native:
            path += f" ({self.tables.transitions} transitions)"
        return path

    # ---- layout -------------------------------------------------------------------------
    def prepare(
        self,
        texts: Sequence[str],
        *,
        row_len: int | None = None,
        first_line: int = 0,
        positions: bool = True,
    ) -> Batch:
        """Normalises ``texts`` and builds the padded row layout and lattice.

        Whole lines are packed greedily, in order, into rows of ``C`` symbols (``C`` a power of
        two >= ``target_row_len`` and > the longest line). ``first_line`` is the global index
        of ``texts[0]`` (``lines`` holds global indices, so a line's randomness does not depend
        on how a call is split into chunks). ``positions=False`` skips ``lines`` and
        ``offsets``, which only the samplers need.
        """
        raw = to_codepoints(texts)
        fast = self.use_native
        m = self.model
        if fast and not (m.remove_extra_whitespaces or m.charsmap or m.treat_whitespace_as_suffix):
            # The layout kernel reads the raw text: dummy prefix and escaped spaces on the fly.
            prefix = (raw[1] > 0) if m.add_dummy_prefix else 0  # one ▁ per line
            cps, lengths, lazy = raw[0], raw[1] + prefix, True
        else:
            (cps, lengths), lazy = normalize(self.model, *raw), False
        longest = int(lengths.max()) if len(lengths) else 0
        if row_len is not None and row_len > longest:
            c = row_len
        else:
            # Rows of very long lines round up to one of 8 sizes per octave, not a power of two:
            # the lattice of a 5M-character line then pads to 5.2M cells instead of 8.4M.
            need = max(longest + 1, self.target_row_len)
            c = _bucket(need, steps=8 if need > LONG_ROW else 1)
        row, col0 = (native.pack_rows if self.use_native else lat.pack_rows)(lengths, c)
        r = _bucket(int(row.max()) + 1 if len(row) else 1, 1, steps=8)
        if self.mesh is not None:
            r = sharding.pad_to_multiple(r, self.mesh)  # more empty rows, one shard per device
        first_missing = self.model.unk_id if self.model.unk_id >= 0 else self.tables.none_id
        if fast:
            ids, starts, cell, lines, offs = native.layout(
                cps,
                lengths,
                row,
                col0,
                rows=r,
                cols=c,
                tables=self.tables,
                first_missing=first_missing,
                dtype=self._dtype,
                positions=positions,
                first_line=first_line,
                **(self._raw_text if lazy else {}),
            )
        else:
            ids, starts, cell, lines, offs = lat.layout(
                cps, lengths, row, col0, rows=r, cols=c, tables=self.tables,
                unk_id=self.model.unk_id, dtype=self._dtype, positions=positions,
                first_line=first_line,
            )  # fmt: skip
        nonempty = lengths > 0
        last = np.where(nonempty, (col0 + lengths - 1) * r + row, -1)
        return Batch(
            text=raw if lazy else (cps, lengths),
            model=self.model if lazy else None,
            lengths=lengths,
            cell=cell,
            ids=ids,
            starts=starts,
            lines=lines,
            offsets=offs,
            last_cell=last,
        )

    def _device(self, batch: Batch, method: str, alpha: float, key) -> jax.Array:
        """The device DP's output ``[C, R]`` (rows over ``data`` when the tokenizer has a mesh)."""
        key = jax.random.key(0) if key is None else key
        args = (batch.ids, batch.starts, batch.lines, batch.offsets)
        if self.mesh is not None:
            axes = (2, 1, 1, 1)
            args = tuple(
                None if x is None else sharding.shard_population(x, self.mesh, a, what="rows")
                for x, a in zip(args, axes, strict=True)
            )
        ids, starts, lines, offsets = args
        return self.device_fn(
            self._edge_scores, ids, starts, np.float32(alpha), method, lines, offsets, key
        )

    def _run(self, batch: Batch, method: str, alpha: float, key) -> np.ndarray:
        return np.asarray(self._device(batch, method, alpha, key)).reshape(-1)

    # ---- public API ---------------------------------------------------------------------
    def encode(
        self,
        texts: Sequence[str],
        *,
        alpha: float | None = None,
        method: str = "ffbs",
        key: jax.Array | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
        row_len: int | None = None,
    ) -> list[list[int]]:
        """Ids for each line: Viterbi if ``alpha`` is None, else a sample from P^alpha / Z.

        Args:
          texts: Lines: a list (or other sequence) of str, each encoded independently, as
            ``SentencePieceProcessor``. A single str is refused (it is not a list of lines).
          alpha: None: Viterbi; a finite number >= 0: inverse temperature of the sampler.
          method: Sampler, one of ``SAMPLERS`` (``ffbs``, ``eager``, ``online`` exact; ``v1``
            biased); ignored for Viterbi.
          key: PRNG key (required when sampling); line i draws from (key, i) only.
          add_bos, add_eos: Add the model's control ids.
          row_len: Override the row length of the JAX DP's layout (results do not depend on
            it; the host C DP has no layout and ignores it).
        """
        texts = _lines(texts)
        if alpha is not None:
            alpha = _check_alpha(alpha)
            if method not in SAMPLERS:
                raise ValueError(f"method must be one of {SAMPLERS}, got {method!r}")
            if key is None:
                raise ValueError("key: sampling (alpha is not None) needs a key")
        method_ = "viterbi" if alpha is None else method
        if self.host_dp and method_ in ("viterbi", "ffbs"):
            out = self._encode_host(texts, alpha, key)
            if out is not None:
                if add_bos or add_eos:
                    pre = [self.model.bos_id] if add_bos else []
                    post = [self.model.eos_id] if add_eos else []
                    out = [pre + o + post for o in out]
                return out
        # Software pipeline over chunks of lines: the device DP of chunk i is dispatched
        # (asynchronously) before the host builds the lattice of chunk i + 1 and extracts the
        # ids of chunk i - 1, so the host work and the device DP overlap.
        out: list[list[int]] = []
        pending = None
        with _gc_paused():
            for a, b in self.chunks(texts):
                batch = self.prepare(
                    texts[a:b], row_len=row_len, first_line=a, positions=method_ != "viterbi"
                )
                dev = self._device(batch, method_, 0.0 if alpha is None else alpha, key)
                if pending is not None:
                    out += self._extract(*pending)
                pending = (batch, dev)
            if pending is not None:
                out += self._extract(*pending)
        if add_bos or add_eos:
            pre = [self.model.bos_id] if add_bos else []
            post = [self.model.eos_id] if add_eos else []
            out = [pre + o + post for o in out]
        return out

    def _encode_host(self, texts: Sequence[str], alpha: float | None, key) -> list | None:
        """Viterbi / FFBS ids of every line from :func:`native_dp.host_dp` (None: use the JAX DP).

        None only when some line has no segmentation (a character in no piece of a model
        without an unknown id), where the JAX DP's result is returned instead.
        """
        m = self.model
        raw = to_codepoints(texts)
        if not (m.remove_extra_whitespaces or m.charsmap or m.treat_whitespace_as_suffix):
            prefix = (raw[1] > 0) if m.add_dummy_prefix else 0  # read raw text: one ▁ per line
            cps, lengths, extra = raw[0], raw[1] + prefix, self._raw_text
            space = 0x2581 if m.escape_whitespaces else 32
            extra = {**extra, "prefix_cp": space, "space_cp": space}
        else:
            (cps, lengths), extra = normalize(m, *raw), {}
        words = (0, 0)
        if alpha is not None:
            words = tuple(int(w) for w in np.asarray(jax.random.bits(key, (2,), jnp.uint32)))
        unk_mode = 0 if m.unk_id < 0 else (2 if m.byte_fallback else 1)
        first_missing = m.unk_id if m.unk_id >= 0 else self.tables.none_id
        try:
            with _gc_paused():
                return native_dp.host_dp(
                    cps, lengths, tables=self.tables, first_missing=first_missing, alpha=alpha,
                    key_words=words, unk_id=m.unk_id, unk_mode=unk_mode,
                    byte_ids=self._byte_ids, threads=self.threads, **extra,
                )  # fmt: skip
        except ValueError as e:
            if native.ERR_UNREACHABLE_TEXT in str(e):
                return None
            raise

    def chunks(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """Line ranges ``[a, b)`` of about ``CHUNK_CHARS`` characters each (at least one)."""
        if len(texts) == 0:
            return [(0, 0)]
        ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)))
        cuts = np.searchsorted(ends, np.arange(1, ends[-1] // CHUNK_CHARS + 1) * CHUNK_CHARS)
        bounds = np.unique(np.concatenate([[0], cuts + 1, [len(texts)]]).clip(0, len(texts)))
        return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))

    def _extract(self, batch: Batch, dev: jax.Array) -> list[list[int]]:
        """Per-line id lists from the device output of one chunk (blocks on it)."""
        out_cells = np.asarray(dev).reshape(-1)
        if self.use_native:
            ids, per_line = native.gather_ends(out_cells, batch.cell, batch.lengths)
        else:
            tok = out_cells[batch.cell]
            ids = tok[tok >= 0]
            first = line_offsets(batch.lengths)
            per_line = np.zeros(len(batch.lengths), np.int64)
            nonempty = batch.lengths > 0
            if len(tok):
                per_line[nonempty] = np.add.reduceat(tok >= 0, first[nonempty])
        bounds = np.concatenate([[0], np.cumsum(per_line)]).tolist()
        flat = ids.tolist()
        out = [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        if self.model.unk_id >= 0:
            has_unk = ids == self.model.unk_id
            if has_unk.any():
                ends = np.flatnonzero(out_cells[batch.cell] >= 0)  # symbol of every piece end
                for i in np.unique(np.searchsorted(bounds, np.flatnonzero(has_unk), "right") - 1):
                    chars = batch.cps[ends[bounds[i] : bounds[i + 1]]]
                    out[i] = merge_unknown(self.model, out[i], chars, self._byte_ids)
        return out

    def tokenize(self, texts: Sequence[str], **kwargs) -> list[list[str]]:
        """Pieces for each line (``encode`` then id -> piece)."""
        return [[self.model.pieces[i] for i in ids] for ids in self.encode(texts, **kwargs)]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Text for each id list, as SentencePiece decodes (:func:`model.decode`)."""
        return decode(self.model, ids)

    def nbest(self, text: str, num: int) -> list[tuple[list[int], float]]:
        """The ``num`` best segmentations of one line: ``[(ids, score), ...]``, best first.

        Scores are the sums of piece scores (unknown edges score min - 10). Unknown characters
        are mapped as in :meth:`encode`. Fewer than ``num`` entries if the line has fewer
        segmentations.
        """
        batch = self.prepare([text], positions=False)
        n_sym = int(batch.lengths[0])
        c = _bucket(n_sym + 1, 16)
        ids = np.full((1, c, batch.ids.shape[1]), self.tables.none_id, batch.ids.dtype)
        ids[0, :, 0] = self.tables.pad_id
        ids[0, :n_sym] = batch.symbol_edges()
        vals, k, ends = NBEST_FN(self._edge_scores, ids, num)
        vals, k, ends = np.asarray(vals)[0], np.asarray(k)[0], np.asarray(ends)[0]
        out = []
        for rank in range(num):
            if not np.isfinite(vals[rank]):
                break
            pos = np.flatnonzero(ends[rank, :n_sym])
            piece = ids[0, pos, k[rank, pos]].astype(np.int64).tolist()
            if self.model.unk_id >= 0 and self.model.unk_id in piece:
                piece = merge_unknown(self.model, piece, batch.cps[pos], self._byte_ids)
            out.append((piece, float(vals[rank])))
        return out

    def _line_values(self, texts, method: str, alpha: float) -> np.ndarray:
        texts, alpha = _lines(texts), _check_alpha(alpha)
        batch = self.prepare(texts, positions=False)
        vals = self._run(batch, method, alpha, None)
        return np.where(batch.last_cell >= 0, vals[np.maximum(batch.last_cell, 0)], 0.0)

    def log_partition(self, texts: Sequence[str], alpha: float = 1.0) -> np.ndarray:
        """log Z_alpha of each line (0 for an empty line)."""
        return self._line_values(texts, "log_partition", alpha)

    def entropy(self, texts: Sequence[str], alpha: float = 1.0) -> np.ndarray:
        """Entropy (nats) of P_alpha over each line's segmentations."""
        return self._line_values(texts, "entropy", alpha)
