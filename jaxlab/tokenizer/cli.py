"""``jaxlab tokenizer train|encode|sample``: unigram tokenization from files to files.

  jaxlab tokenizer train  --input corpus.txt [more.txt ...] --vocab-size 8000 --output m.model
  jaxlab tokenizer encode --model m.model --input text.txt --output ids.txt [--pieces]
  jaxlab tokenizer sample --model m.model --input text.txt --output ids.txt --alpha 0.1
                          [--seed 0] [--method ffbs|online|eager|v1] [--num-samples 1]

Models are SentencePiece unigram ``.model`` files (identity normaliser); ``train`` writes one
that ``sentencepiece`` can load too. Output: one line per input line, ids (or pieces) separated
by spaces; ``sample --num-samples k`` writes k lines per input line.
"""

from __future__ import annotations

import argparse
import math
import pathlib

from jaxlab.config_args import ArgumentParser as _Parser
from jaxlab.config_args import UsageError


def _read_text(path: str, what: str = "--input") -> list[str]:
    p = pathlib.Path(path)
    if not p.is_file():
        raise UsageError(f"{what}: no such file: {path}")
    try:
        raw = p.read_bytes()
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


def _write(path: str, rows) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(" ".join(map(str, row)) + "\n")
    except OSError as e:
        raise UsageError(f"--output: cannot write {path}: {e.strerror}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> _Parser:
    parser = _Parser(prog="jaxlab tokenizer", description="Unigram tokenizer (SentencePiece files)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train a unigram vocabulary (EM + pruning)")
    t.add_argument("--input", nargs="+", required=True, help="UTF-8 text files")
    t.add_argument("--vocab-size", type=_positive_int, required=True)
    t.add_argument("--output", required=True, help="model file to write (.model)")
    t.add_argument("--max-piece-length", type=_positive_int, default=16)
    t.add_argument("--no-byte-fallback", action="store_true")
    for name in ("encode", "sample"):
        p = sub.add_parser(name, help=f"{name} a text file, one output line per input line")
        p.add_argument("--model", required=True, help="SentencePiece unigram .model file")
        p.add_argument("--input", required=True, help="UTF-8 text file")
        p.add_argument("--output", required=True, help="output file")
        p.add_argument("--pieces", action="store_true", help="write pieces instead of ids")
    s = sub.choices["sample"]
    s.add_argument("--alpha", type=float, required=True, help="inverse temperature, >= 0")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--method", choices=("ffbs", "online", "eager", "v1"), default="ffbs")
    s.add_argument("--num-samples", type=_positive_int, default=1)
    return parser


def cli(argv: list[str]) -> int:
    """Entry point for ``jaxlab tokenizer ...``; returns 0 or raises UsageError."""
    args = _parser().parse_args(argv)
    if args.command == "train":
        from jaxlab.tokenizer import spm, training

        lines = [line for path in args.input for line in _read_text(path)]
        special = 3 + (0 if args.no_byte_fallback else 256)
        if args.vocab_size <= special + 1:
            raise UsageError(f"--vocab-size: must exceed {special + 1} (special + byte pieces)")
        config = training.TrainConfig(
            vocab_size=args.vocab_size,
            max_piece_length=args.max_piece_length,
            byte_fallback=not args.no_byte_fallback,
        )
        model = training.train(lines, config)
        spm.write_model_proto(model, args.output)
        return 0
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
        out = []
        samples = [
            tok.encode(lines, alpha=args.alpha, key=jax.random.fold_in(key, i), method=args.method)
            for i in range(args.num_samples)
        ]
        out = [s[j] for j in range(len(lines)) for s in samples]
    if args.pieces:
        out = [[model.pieces[i] for i in row] for row in out]
    _write(args.output, out)
    return 0
