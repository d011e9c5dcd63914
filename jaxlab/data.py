"""Byte-level text data: the default corpus, a held-out split by file, deterministic batches.

The default corpus is the Python standard library source of the running interpreter (``*.py``
files under ``sysconfig.get_paths()["stdlib"]``, ``site-packages`` excluded), read as raw bytes:
nothing is downloaded. Files are sorted by relative path; file ``i`` goes to the held-out split
when ``crc32(relative_path) % heldout_every == 0`` — a fixed split that does not depend on how
many files this Python ships. Any list of user text files can replace it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sysconfig
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.array_types import Array, ArrayLike, Int, Integer


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the bytes come from and how they are split.

    Attributes:
      files: User text files; empty means the Python standard library corpus.
      heldout_every: A file is held out when ``crc32(name) % heldout_every == 0`` (stdlib corpus),
        or for user files, the last ``1/heldout_every`` of the bytes of every file is held out.
      max_bytes: Cap on the bytes kept per split (0 = no cap), for quick runs.
    """

    files: tuple[str, ...] = ()
    heldout_every: int = 10
    max_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Train and held-out byte streams (uint8) plus the names of the files in each."""

    train: np.ndarray
    heldout: np.ndarray
    train_files: tuple[str, ...]
    heldout_files: tuple[str, ...]


def stdlib_files() -> list[pathlib.Path]:
    """The ``*.py`` files of the running interpreter's standard library, sorted, tests excluded."""
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
    files = [p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _cap(chunks: list[bytes], max_bytes: int) -> np.ndarray:
    data = b"".join(chunks)
    if max_bytes:
        data = data[:max_bytes]
    return np.frombuffer(data, dtype=np.uint8).copy()


def load_corpus(config: DataConfig = DataConfig()) -> Corpus:
    """Loads the corpus of ``config`` and splits it.

    Raises:
      FileNotFoundError: a user file does not exist.
      ValueError: a split comes out empty.
    """
    if config.heldout_every < 2:
        raise ValueError(f"heldout_every must be >= 2, got {config.heldout_every}")
    train, heldout, train_names, heldout_names = [], [], [], []
    if config.files:
        for name in config.files:
            path = pathlib.Path(name)
            if not path.is_file():
                raise FileNotFoundError(f"data file not found: {name}")
            data = path.read_bytes()
            cut = len(data) - len(data) // config.heldout_every
            train.append(data[:cut])
            heldout.append(data[cut:])
            train_names.append(name)
            heldout_names.append(name)
    else:
        root = pathlib.Path(sysconfig.get_paths()["stdlib"])
        for path in stdlib_files():
            rel = path.relative_to(root).as_posix()
            is_heldout = zlib.crc32(rel.encode()) % config.heldout_every == 0
            (heldout if is_heldout else train).append(path.read_bytes())
            (heldout_names if is_heldout else train_names).append(rel)
    corpus = Corpus(
        train=_cap(train, config.max_bytes),
        heldout=_cap(heldout, config.max_bytes),
        train_files=tuple(train_names),
        heldout_files=tuple(heldout_names),
    )
    if corpus.train.size < 2 or corpus.heldout.size < 2:
        raise ValueError("corpus split is empty: give more text or a larger heldout_every")
    return corpus


def sample_windows(
    tokens: Integer[ArrayLike, " S"], num: int, length: int, *, key: Array
) -> Int[Array, "B L"]:
    """Draws ``num`` random windows of ``length`` tokens (uniform start positions).

    Windows of ``length = seq_len + 1`` give inputs ``w[:, :-1]`` and targets ``w[:, 1:]``.
    Pure and jit-able (``num`` and ``length`` static); the same key gives the same batch.
    """
    tokens = jnp.asarray(tokens)
    starts = jax.random.randint(key, (num,), 0, tokens.shape[0] - length + 1)
    offsets = jnp.arange(length)
    return tokens[starts[:, None] + offsets[None, :]].astype(jnp.int32)


def eval_windows(tokens: np.ndarray, num: int, length: int) -> np.ndarray:
    """``num`` evenly spaced, fixed windows of ``length`` tokens (int32) for evaluation."""
    if tokens.shape[0] < length:
        raise ValueError(f"need at least {length} held-out bytes, have {tokens.shape[0]}")
    starts = np.linspace(0, tokens.shape[0] - length, num).astype(np.int64)
    return np.stack([tokens[s : s + length] for s in starts]).astype(np.int32)


def unigram_entropy_bits(tokens: np.ndarray, vocab_size: int = 256) -> float:
    """Entropy in bits of the empirical byte distribution of ``tokens``: the order-0 baseline."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def split_fingerprint(corpus: Corpus) -> str:
    """A short hash of both splits, so runs can record exactly which data they saw."""
    h = zlib.crc32(corpus.train.tobytes())
    h = zlib.crc32(corpus.heldout.tobytes(), h)
    return f"{h:08x}-{corpus.train.size}-{corpus.heldout.size}"
