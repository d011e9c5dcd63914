"""The benchmark corpora: the interpreter's standard-library source, and localized man pages.

:func:`manpage_split` is the second, multilingual text: the translated manual pages under
``/usr/share/man/<language>/`` (20-odd languages including CJK and Cyrillic, roff source as is),
files in sorted order, every tenth file held out for the test text.

The split follows the tokenizer spec's measurement method: walk
``sysconfig.get_paths()["stdlib"]`` in sorted order, skip ``site-packages``, ``test``, ``tests``,
``idlelib`` and ``lib2to3``; training text is every remaining ``.py`` file outside ``asyncio/``,
``email/`` and ``pydoc_data/``; the held-out test text is the first 512 KiB of
``pydoc_data/topics.py`` (cut at a newline) followed by the ``asyncio/`` and ``email/`` sources,
truncated at a newline to at most 1 MiB.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import sysconfig

SKIP_DIRS = frozenset({"site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"})
HELD_OUT_DIRS = ("asyncio", "email", "pydoc_data")


def _py_files(root: pathlib.Path) -> list[pathlib.Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        out += [pathlib.Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return out


def _read(path: pathlib.Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that ends with a newline and has at most ``max_bytes``."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    end = raw.rfind(b"\n", 0, max_bytes)
    return raw[: end + 1].decode("utf-8", errors="replace")


def stdlib_split(max_train_bytes: int | None = None) -> tuple[str, str]:
    """Returns ``(train_text, test_text)`` from the stdlib source, as the spec describes.

    Args:
      max_train_bytes: Optional cap on the training text (cut at a newline), for quick runs.

    Returns:
      Two strings; the test text is at most 1 MiB of UTF-8 and ends with a newline.
    """
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    train, held = [], []
    for path in _py_files(root):
        top = path.relative_to(root).parts[0]
        (held if top in HELD_OUT_DIRS else train).append(path)
    train_text = "".join(_read(p) for p in train)
    if max_train_bytes is not None:
        train_text = _cut(train_text, max_train_bytes)
    topics = [p for p in held if p.relative_to(root).parts[0] == "pydoc_data"]
    code = [p for p in held if p.relative_to(root).parts[0] in ("asyncio", "email")]
    test = _cut("".join(_read(p) for p in topics if p.name == "topics.py"), 512 * 1024)
    test = _cut(test + "".join(_read(p) for p in code), 1024 * 1024)
    return train_text, test


def manpage_split(
    root: str | pathlib.Path = "/usr/share/man",
    max_train_bytes: int = 10 * 1024 * 1024,
    test_bytes: int = 2 * 1024 * 1024,
) -> tuple[str, str]:
    """Returns ``(train_text, test_text)`` from the translated man pages under ``root``.

    Languages are the subdirectories of ``root`` not named ``man*`` (the untranslated pages),
    in sorted order; within each, the files in sorted order (gzip or plain). File ``i`` (over
    all languages) goes to the test text if ``i % 10 == 9``. Both texts are cut at a newline.

    Raises:
      ValueError: ``root`` holds no translated pages.
    """
    root = pathlib.Path(root)
    langs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("man"))
    files = [f for lang in langs for f in sorted(lang.rglob("*")) if f.is_file()]
    if not files:
        raise ValueError(f"root: no translated man pages under {root}")
    train, test, size = [], [], 0
    for i, f in enumerate(files):
        raw = f.read_bytes()
        if f.suffix == ".gz":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError):
                continue
        text = raw.decode("utf-8", errors="replace").replace("\r", "")
        (test if i % 10 == 9 else train).append(text if text.endswith("\n") else text + "\n")
        size += len(raw)
        if size > 2 * (max_train_bytes + test_bytes) and sum(map(len, test)) > test_bytes:
            break
    return _cut("".join(train), max_train_bytes), _cut("".join(test), test_bytes)
