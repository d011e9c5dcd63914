"""SentencePiece interoperability: read a unigram ``.model`` file, train one for comparison.

The ``.model`` file is a serialized ``sentencepiece.ModelProto``. We read the few fields we need
with a small protobuf wire-format reader (no protobuf dependency): pieces (piece, score, type),
the trainer spec (model type, byte fallback, whitespace-as-suffix, special ids) and the
normaliser spec (rule name, precompiled charsmap, whitespace flags).

References: google/sentencepiece ``src/sentencepiece_model.proto``.
"""

from __future__ import annotations

import pathlib
import struct

import numpy as np

from jaxlab.tokenizer.model import BYTE, NORMAL, UNKNOWN, UnigramModel


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def parse_fields(buf: bytes) -> list[tuple[int, int, object]]:
    """Decodes one protobuf message into ``(field_number, wire_type, value)`` triples.

    Varints come back as int, fixed32/64 as raw bytes, length-delimited fields as bytes.

    Raises:
      ValueError: on malformed input (unknown wire type, truncation).
    """
    out, i = [], 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(buf) or field == 0:
            raise ValueError("truncated or malformed protobuf message")
        out.append((field, wire, value))
    return out


def _last(fields, number, default):
    vals = [v for f, _, v in fields if f == number]
    return vals[-1] if vals else default


def read_model_proto(path: str | pathlib.Path) -> dict:
    """Reads the fields of a SentencePiece ``.model`` file that a unigram encoder needs.

    Returns:
      dict(pieces, scores, types, model_type, byte_fallback, treat_whitespace_as_suffix,
      unk_id, bos_id, eos_id, unk_surface, normalizer_name, charsmap, add_dummy_prefix,
      remove_extra_whitespaces, escape_whitespaces, denormalizer).
    """
    top = parse_fields(pathlib.Path(path).read_bytes())
    pieces, scores, types = [], [], []
    for f, w, v in top:
        if f == 1 and w == 2:
            sub = parse_fields(v)
            pieces.append(_last(sub, 1, b"").decode("utf-8"))
            raw = _last(sub, 2, b"\0\0\0\0")
            scores.append(struct.unpack("<f", raw)[0])
            types.append(_last(sub, 3, NORMAL))
    trainer = parse_fields(_last(top, 2, b""))
    norm = parse_fields(_last(top, 3, b""))
    if not pieces:
        raise ValueError("no pieces: not a SentencePiece model")
    signed = lambda x: x - (1 << 64) if x >= 1 << 63 else x
    return dict(
        pieces=pieces,
        scores=np.array(scores, np.float32),
        types=np.array(types, np.int8),
        model_type=_last(trainer, 3, 1),
        byte_fallback=bool(_last(trainer, 35, 0)),
        treat_whitespace_as_suffix=bool(_last(trainer, 24, 0)),
        unk_id=signed(_last(trainer, 40, 0)),
        bos_id=signed(_last(trainer, 41, 1)),
        eos_id=signed(_last(trainer, 42, 2)),
        unk_surface=_last(trainer, 44, " \u2047 ".encode()).decode("utf-8"),
        normalizer_name=_last(norm, 1, b"").decode("utf-8"),
        charsmap=_last(norm, 2, b""),
        add_dummy_prefix=bool(_last(norm, 3, 1)),
        remove_extra_whitespaces=bool(_last(norm, 4, 1)),
        escape_whitespaces=bool(_last(norm, 5, 1)),
        denormalizer=_last(parse_fields(_last(top, 5, b"")), 2, b""),
    )


def from_sentencepiece(path: str | pathlib.Path) -> UnigramModel:
    """Loads a SentencePiece unigram model: any normaliser (identity, or the rules of its
    precompiled charsmap), user-defined symbols, whitespace as prefix or suffix.

    Args:
      path: A ``.model`` file written by ``SentencePieceTrainer``.

    Returns:
      The vocabulary with SentencePiece's flags, ids and scores.

    Raises:
      ValueError: (one line, naming the field) if the file is not a unigram model, its
        precompiled charsmap is malformed, it has a denormaliser, or a piece contains NUL.
    """
    p = read_model_proto(path)
    if p["model_type"] != 1:
        raise ValueError(f"{path}: model_type {p['model_type']} is not unigram (1)")
    if p["charsmap"]:
        from jaxlab.tokenizer.charsmap import CharsMap

        CharsMap(p["charsmap"])  # a malformed blob is refused here, naming the field
    if p["denormalizer"]:  # decode would apply a second charsmap to the decoded text
        raise ValueError(f"{path}: denormalizer_spec.precompiled_charsmap is not supported")
    nul = next((i for i, piece in enumerate(p["pieces"]) if "\x00" in piece), None)
    if nul is not None:  # sentencepiece refuses to load these too
        raise ValueError(f"{path}: piece {nul} contains a NUL character (pieces must not)")
    n = len(p["pieces"])
    idx = lambda i: i if 0 <= i < n else -1
    unk = np.flatnonzero(p["types"] == UNKNOWN)
    return UnigramModel(
        pieces=tuple(p["pieces"]),
        scores=p["scores"],
        types=p["types"],
        unk_id=int(unk[0]) if unk.size else -1,
        bos_id=idx(p["bos_id"]),
        eos_id=idx(p["eos_id"]),
        byte_fallback=p["byte_fallback"] and bool((p["types"] == BYTE).any()),
        add_dummy_prefix=p["add_dummy_prefix"],
        remove_extra_whitespaces=p["remove_extra_whitespaces"],
        escape_whitespaces=p["escape_whitespaces"],
        treat_whitespace_as_suffix=p["treat_whitespace_as_suffix"],
        unk_surface=p["unk_surface"],
        charsmap=p["charsmap"],
    )


def train_sentencepiece(
    text_path: str | pathlib.Path, model_prefix: str | pathlib.Path, vocab_size: int, **kwargs
) -> pathlib.Path:
    """Trains a SentencePiece unigram model with the "SP-ws" arguments of BENCHMARKS.md
    (identity normaliser, byte fallback, whitespace kept; any of them overridable).

    Returns:
      The path of the written ``.model`` file.
    """
    import sentencepiece as spm

    args = dict(
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=1.0,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        max_sentence_length=16384,
        num_threads=2,
        minloglevel=2,
    )
    args.update(kwargs)
    spm.SentencePieceTrainer.train(input=str(text_path), model_prefix=str(model_prefix), **args)
    return pathlib.Path(f"{model_prefix}.model")


def _put_varint(out: bytearray, x: int) -> None:
    x &= (1 << 64) - 1  # negative int32 fields are encoded as 64-bit two's complement
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return


def _field(out: bytearray, number: int, value) -> None:
    if isinstance(value, bool | int):
        _put_varint(out, number << 3)
        _put_varint(out, int(value))
    elif isinstance(value, float):
        _put_varint(out, number << 3 | 5)
        out += struct.pack("<f", value)
    else:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        _put_varint(out, number << 3 | 2)
        _put_varint(out, len(raw))
        out += raw


def write_model_proto(model: UnigramModel, path: str | pathlib.Path) -> pathlib.Path:
    """Writes ``model`` as a SentencePiece unigram ``.model`` (its charsmap, or identity).

    The file loads in ``sentencepiece.SentencePieceProcessor`` and in :func:`from_sentencepiece`.
    """
    path = pathlib.Path(path)
    path.write_bytes(model_proto_bytes(model))
    return path


def model_proto_bytes(model: UnigramModel) -> bytes:
    """The serialised ``ModelProto`` that :func:`write_model_proto` writes."""
    if any("\x00" in piece for piece in model.pieces):
        raise ValueError("model.pieces: a piece contains NUL, which sentencepiece refuses to load")
    out = bytearray()
    for piece, score, kind in zip(
        model.pieces, model.scores.tolist(), model.types.tolist(), strict=True
    ):
        sub = bytearray()
        _field(sub, 1, piece)
        _field(sub, 2, float(score))
        _field(sub, 3, int(kind))
        _field(out, 1, sub)
    trainer = bytearray()
    _field(trainer, 3, 1)  # model_type = UNIGRAM
    _field(trainer, 4, model.vocab_size)
    _field(trainer, 24, bool(model.treat_whitespace_as_suffix))
    _field(trainer, 35, bool(model.byte_fallback))
    _field(trainer, 40, model.unk_id)
    _field(trainer, 41, model.bos_id)
    _field(trainer, 42, model.eos_id)
    _field(trainer, 43, -1)  # pad_id
    _field(out, 2, trainer)
    norm = bytearray()
    _field(norm, 1, "custom" if model.charsmap else "identity")
    if model.charsmap:
        _field(norm, 2, model.charsmap)
    _field(norm, 3, bool(model.add_dummy_prefix))
    _field(norm, 4, bool(model.remove_extra_whitespaces))
    _field(norm, 5, bool(model.escape_whitespaces))
    _field(out, 3, norm)
    return bytes(out)
