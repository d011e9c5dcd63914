"""``jaxlab tokenizer train|encode|sample``: unigram tokenization from files to files.

  jaxlab tokenizer --version      the version, the host path (native or numpy) and DP path
  jaxlab tokenizer train  --input corpus.txt [more.txt ...] --vocab-size 8000 --output m.model
  jaxlab tokenizer encode --model m.model --input text.txt --output ids.txt [--pieces]
  jaxlab tokenizer sample --model m.model --input text.txt --output ids.txt --alpha 0.1
                          [--seed 0] [--method ffbs|online|eager|v1] [--num-samples 1]

Models are SentencePiece unigram ``.model`` files (identity or rule-based normaliser, e.g. the
default nmt_nfkc); ``train`` writes one
that ``sentencepiece`` can load too. Output: one line per input line, ids (or pieces) separated
by spaces; ``sample --num-samples k`` writes k lines per input line. ``-`` (or /dev/stdin) as
``--input`` reads standard input, ``-`` as ``--output`` writes standard output. Output files are
written to a temporary file in their directory and renamed into place, so a full disk or an
interrupt never leaves a partial file; an output that is also an input is refused. ``train``
keeps the most frequent characters covering ``--character-coverage`` of the text (0.9995, as
SentencePiece); a vocabulary too small for them is a one-line error, as in SentencePiece.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import tempfile

from jaxlab.config_args import ArgumentParser as _Parser
from jaxlab.config_args import UsageError


def _read_text(path: str, what: str = "--input") -> list[str]:
    """The lines of a UTF-8 file; ``-`` is standard input (so are /dev/stdin and pipes)."""
    if path == "-":
        raw = sys.stdin.buffer.read()
    else:
        p = pathlib.Path(path)
        if not p.exists():
            raise UsageError(f"{what}: no such file: {path}")
        if p.is_dir():
            raise UsageError(f"{what}: is a directory: {path}")
        try:
            with open(p, "rb") as f:  # not read_bytes(): also FIFOs and /dev/stdin
                raw = f.read()
        except OSError as e:
            raise UsageError(f"{what}: cannot read {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what}: {path} is not valid UTF-8 (byte offset {e.start})") from None
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def _load_model(path: str):
    from jaxlab.tokenizer import spm

    if not pathlib.Path(path).is_file():
        raise UsageError(f"--model: no such file: {path}")
    try:
        return spm.from_sentencepiece(path)
    except (ValueError, UnicodeDecodeError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--model: cannot load {path} as a unigram model: {msg}") from None


def _check_output(path: str, inputs: list[str]) -> None:
    """Refuses an output that is an input or whose directory does not exist (before any work)."""
    if path == "-":
        return
    p = pathlib.Path(path)
    for name in inputs:
        if name != "-" and p.exists() and pathlib.Path(name).exists():
            if os.path.samefile(p, name):
                raise UsageError(f"--output: {path} is also an input; it would be overwritten")
    if p.is_dir():
        raise UsageError(f"--output: is a directory: {path}")
    if not p.parent.is_dir():
        raise UsageError(f"--output: directory does not exist: {p.parent}")


def _write(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically: a temporary file in the same directory, renamed
    into place, so a full disk or an interrupt never leaves a partial file. ``-`` and special
    files (``/dev/stdout``, pipes) are written directly."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    p = pathlib.Path(path)
    tmp = None
    try:
        if p.exists() and not p.is_file():
            with open(p, "wb") as f:
                f.write(data)
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if p.exists():
            os.chmod(tmp, p.stat().st_mode & 0o777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
        tmp = None
    except OSError as e:
        raise UsageError(f"--output: cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _rows_text(rows) -> bytes:
    return "".join(" ".join(map(str, row)) + "\n" for row in rows).encode("utf-8")


def _coverage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def version_line() -> str:
    """The version, the host path and the default DP path of ``Tokenizer``.

    ``jaxlab <v>, tokenizer host path: native (<library>), DP: host-c (default; JAX with
    host_dp=False)``, or ``numpy (<why>), DP: jax`` without the compiled kernels. The
    transition table (dense / two-level) depends on the model: ``Tokenizer.dp_path``.
    """
    import jaxlab
    from jaxlab.tokenizer import native

    path, detail = native.host_path()
    dp = "host-c (default; JAX with host_dp=False or a mesh)" if path == "native" else "jax"
    return f"jaxlab {jaxlab.__version__}, tokenizer host path: {path} ({detail}), DP: {dp}"


def _parser() -> _Parser:
    parser = _Parser(prog="jaxlab tokenizer", description="Unigram tokenizer (SentencePiece files)")
    parser.add_argument(
        "--version", action="store_true", help="print the version and host path (native/numpy)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train a unigram vocabulary (EM + pruning)")
    t.add_argument("--input", nargs="+", required=True, help="UTF-8 text files (- = stdin)")
    t.add_argument("--vocab-size", type=_positive_int, required=True)
    t.add_argument("--output", required=True, help="model file to write (.model; - = stdout)")
    t.add_argument("--max-piece-length", type=_positive_int, default=16)
    t.add_argument("--no-byte-fallback", action="store_true")
    t.add_argument(
        "--character-coverage",
        type=_coverage,
        default=0.9995,
        help="keep the most frequent characters covering this fraction of the text; the rest "
        "are unknown (byte pieces). SentencePiece's option and default",
    )
    for name in ("encode", "sample"):
        p = sub.add_parser(name, help=f"{name} a text file, one output line per input line")
        p.add_argument("--model", required=True, help="SentencePiece unigram .model file")
        p.add_argument("--input", required=True, help="UTF-8 text file (- = stdin)")
        p.add_argument("--output", required=True, help="output file (- = stdout)")
        p.add_argument("--pieces", action="store_true", help="write pieces instead of ids")
    s = sub.choices["sample"]
    s.add_argument("--alpha", type=float, required=True, help="inverse temperature, >= 0")
    s.add_argument("--seed", type=_seed, default=0, help="PRNG seed in [0, 2**63)")
    s.add_argument("--method", choices=("ffbs", "online", "eager", "v1"), default="ffbs")
    s.add_argument("--num-samples", type=_positive_int, default=1)
    return parser


def cli(argv: list[str]) -> int:
    """Entry point for ``jaxlab tokenizer ...``; returns 0 or raises UsageError."""
    if argv[:1] == ["--version"]:
        print(version_line())
        return 0
    args = _parser().parse_args(argv)
    if args.version:
        print(version_line())
        return 0
    if args.command == "train":
        from jaxlab.tokenizer import spm, training

        _check_output(args.output, args.input)
        lines = [line for path in args.input for line in _read_text(path)]
        special = 3 + (0 if args.no_byte_fallback else 256)
        if args.vocab_size <= special + 1:
            raise UsageError(f"--vocab-size: must exceed {special + 1} (special + byte pieces)")
        try:
            config = training.TrainConfig(
                vocab_size=args.vocab_size,
                max_piece_length=args.max_piece_length,
                byte_fallback=not args.no_byte_fallback,
                character_coverage=args.character_coverage,
            )
            model = training.train(lines, config)
        except ValueError as e:
            raise UsageError(f"train: {e}") from None
        _write(args.output, spm.model_proto_bytes(model))
        return 0
    _check_output(args.output, [args.input, args.model])
    model = _load_model(args.model)
    lines = _read_text(args.input)
    if args.command == "sample" and not (math.isfinite(args.alpha) and args.alpha >= 0):
        raise UsageError(f"--alpha: expected a finite number >= 0, got {args.alpha}")
    import jax

    from jaxlab.tokenizer.encoder import Tokenizer

    tok = Tokenizer(model)
    if args.command == "encode":
        out = tok.encode(lines)
    else:
        key = jax.random.key(args.seed)
        samples = [
            tok.encode(lines, alpha=args.alpha, key=jax.random.fold_in(key, i), method=args.method)
            for i in range(args.num_samples)
        ]
        out = [s[j] for j in range(len(lines)) for s in samples]
    if args.pieces:
        out = [[model.pieces[i] for i in row] for row in out]
    _write(args.output, _rows_text(out))
    return 0
