"""Unigram vocabulary training: EM over the lattice with likelihood-based pruning.

The E-step's expected piece counts are gradients: d/ds_i sum_w f_w log Z(w) = E[count of i]
(the edge marginals of the forward recursion), computed in JAX by differentiating
``decoding.log_partition`` through the lattice gather. The M-step is SentencePiece's Bayesian
update log p_i = digamma(c_i) - digamma(sum c) (required characters with c_i < 0.5 get the minimum
score, as SentencePiece does). Pruning scores each piece by the loss in
likelihood if it were replaced by its best segmentation without it,
loss_i = c_i (log p_i - sum_{a in alt(i)} log p_a), and keeps the best ``shrink`` fraction
(single characters are always kept). Words are split before every ▁ (SentencePiece's
``split_by_whitespace``), so training runs on the multiset of distinct words.

References: T. Kudo, "Subword Regularization" (arXiv:1804.10959), Sec. 3.2;
google/sentencepiece ``src/unigram_model_trainer.cc``.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import digamma

from jaxlab.tokenizer import decoding
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import (
    BYTE,
    CONTROL,
    NORMAL,
    SPACE_SYMBOL,
    UNKNOWN,
    UnigramModel,
    from_pieces,
    normalize,
    to_codepoints,
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Unigram trainer settings (SentencePiece defaults where they exist)."""

    vocab_size: int = 8000  # final size, including <unk>, <s>, </s> and 256 byte pieces
    max_piece_length: int = 16  # in code points
    seed_factor: int = 10  # seed vocabulary = seed_factor * vocab_size most frequent substrings
    shrink: float = 0.75  # fraction of pieces kept per pruning round
    em_iters: int = 2  # EM iterations per round
    byte_fallback: bool = True
    max_words: int = 200_000  # most frequent distinct words used for training
    # Characters kept: the most frequent ones that cover this fraction of all character
    # occurrences (SentencePiece's --character_coverage, same default); the others are unknown
    # (byte pieces under byte fallback) and start no piece.
    character_coverage: float = 0.9995

    def __post_init__(self):
        if not 0.0 < self.character_coverage <= 1.0:
            raise ValueError(f"character_coverage must be in (0, 1], got {self.character_coverage}")


def _flags_model(byte_fallback: bool) -> UnigramModel:
    return UnigramModel(
        pieces=(),
        scores=np.zeros(0, np.float32),
        types=np.zeros(0, np.int8),
        byte_fallback=byte_fallback,
        add_dummy_prefix=True,
        escape_whitespaces=True,
    )


def count_words(lines: Sequence[str], config: TrainConfig) -> dict[str, int]:
    """Distinct ▁-initial words of the normalised lines with their frequencies."""
    cps, lengths = normalize(_flags_model(config.byte_fallback), *to_codepoints(lines))
    text = cps.tobytes().decode("utf-32-le")
    counts = collections.Counter()
    parts = text.split(SPACE_SYMBOL)
    if parts[0]:
        counts[parts[0]] += 1
    for chunk in parts[1:]:  # a run of spaces gives one "▁" word per space, as in SentencePiece
        counts[SPACE_SYMBOL + chunk] += 1
    return dict(counts)


def required_chars(words: Mapping[str, int], coverage: float) -> dict[str, int]:
    """The most frequent characters covering ``coverage`` of all occurrences, with counts.

    As SentencePiece: characters sorted by frequency (ties by code point) are kept while the
    covered fraction is below ``coverage``. NUL is never kept: SentencePiece does not accept it
    as a piece (under byte fallback it is the byte piece <0x00>).
    """
    chars = collections.Counter()
    for w, f in words.items():
        for c in w:
            chars[c] += f
    chars.pop("\x00", None)
    total = sum(chars.values())
    kept, covered = {}, 0
    for c, f in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0])):
        if kept and covered >= coverage * total:
            break
        kept[c] = f
        covered += f
    return kept


def _split_at_unknown(words: Mapping[str, int], chars: Mapping[str, int]) -> dict[str, int]:
    """Words cut into their runs of kept characters (no piece spans an unknown character)."""
    out = collections.Counter()
    for w, f in words.items():
        if all(c in chars for c in w):
            out[w] += f
            continue
        run = []
        for c in w + "\x00":  # NUL is never kept: it ends the last run
            if c in chars:
                run.append(c)
            elif run:
                out["".join(run)] += f
                run = []
    return dict(out)


def seed_pieces(
    words: Mapping[str, int], config: TrainConfig, chars: Mapping[str, int] | None = None
) -> dict[str, int]:
    """The most frequent substrings (by frequency x length) of kept characters, plus those
    characters (``chars``, default :func:`required_chars` of ``words``)."""
    subs = collections.Counter()
    if chars is None:
        chars = required_chars(words, config.character_coverage)
    m = config.max_piece_length
    for w, f in words.items():
        for i in range(len(w)):
            if w[i] not in chars:
                continue
            for j in range(i + 2, min(len(w), i + m) + 1):
                if w[j - 1] not in chars:
                    break
                subs[w[i:j]] += f
    size = config.seed_factor * config.vocab_size
    best = sorted(subs.items(), key=lambda kv: -kv[1] * len(kv[0]))[:size]
    pieces = dict(best)
    pieces.update(chars)
    return pieces


def _objective(edge_scores, ids, starts, last_cell, weights):
    """sum_w f_w log Z(w): its gradient in edge_scores is the expected piece counts."""
    z = decoding.log_partition(ids, starts, 1.0, edge_scores)
    return jnp.sum(weights * z.reshape(-1)[last_cell])


_EXPECTED = jax.jit(jax.value_and_grad(_objective))


def expected_counts(
    model: UnigramModel, words: Sequence[str], freqs: np.ndarray, table_size: int | None = None
):
    """E-step: (total log-likelihood, expected count of every piece) over weighted words."""
    tok = Tokenizer(model, score_table_size=table_size)
    batch = tok.prepare(words, positions=False)
    ll, grad = _EXPECTED(
        tok._edge_scores,
        batch.ids,
        batch.starts,
        batch.last_cell,
        jnp.asarray(freqs, jnp.float32),
    )
    return float(ll), np.asarray(grad)[: model.vocab_size]


def _alternative_loss(
    model: UnigramModel, counts: np.ndarray, table_size: int, all_pieces: Sequence[str]
) -> np.ndarray:
    """loss_i = c_i (log p_i - sum of log p over the best segmentation of piece i without i).

    The lattice is built over ``all_pieces`` (the fixed seed list, so every round has the same
    shapes and compiles once) and read back for the model's current pieces.
    """
    tok = Tokenizer(model, score_table_size=table_size)
    batch = tok.prepare(list(all_pieces), positions=False)
    ids = batch.ids.copy()
    multi = batch.lengths > 1
    # Remove each piece's own edge; seed pieces longer than the model's longest have none.
    own = multi & (batch.lengths <= tok.tables.max_len)
    where = batch.edge_index(batch.last_cell[own], batch.lengths[own] - 1)
    ids.reshape(-1)[where] = tok.tables.none_id
    batch = dataclasses.replace(batch, ids=ids)
    tok_ids = tok._run(batch, "viterbi", 0.0, None)[batch.cell]
    ends = tok_ids >= 0
    line = np.repeat(np.arange(len(batch.lengths)), batch.lengths)[ends]
    alt = np.bincount(line, weights=model.scores[tok_ids[ends]], minlength=len(batch.lengths))
    index = {p: i for i, p in enumerate(all_pieces)}
    rows = np.array([index[p] for p in model.pieces])
    loss = counts * (model.scores - alt[rows])
    loss[~multi[rows]] = np.inf  # single characters are required
    return loss


def train(lines: Sequence[str], config: TrainConfig = TrainConfig(), *, log=None) -> UnigramModel:
    """Trains a unigram vocabulary on ``lines`` (SentencePiece-style normalisation).

    Args:
      lines: Training text, one line per element.
      config: Trainer settings.
      log: Optional callable receiving one progress dict per EM iteration.

    Returns:
      A model with SentencePiece's layout: <unk>, <s>, </s>, (byte pieces), then pieces by
      descending score; ``add_dummy_prefix`` and ``escape_whitespaces`` on.
    """
    words = count_words(lines, config)
    chars = required_chars(words, config.character_coverage)
    words = _split_at_unknown(words, chars)
    top = collections.Counter(words).most_common(config.max_words)
    names = [w for w, _ in top]
    freqs = np.array([f for _, f in top], np.float64)
    pieces = seed_pieces(dict(top), config, chars)
    num_special = 3 + (256 if config.byte_fallback else 0)
    target = config.vocab_size - num_special
    if not chars:
        raise ValueError("lines: no training text (the input has no characters)")
    if len(chars) > target:
        raise ValueError(
            f"vocab_size: {config.vocab_size} leaves {target} pieces after {num_special} special "
            f"ones, fewer than the {len(chars)} characters covering {config.character_coverage} of "
            "the text; raise vocab_size or lower character_coverage (as SentencePiece requires)"
        )
    model = from_pieces(pieces, counts=True, unk=False)
    table_size = model.vocab_size + 2  # one score-table shape for every EM step
    seed_names = list(model.pieces)
    step = 0
    while True:
        for _ in range(config.em_iters):
            ll, counts = expected_counts(model, names, freqs, table_size)
            single = np.array([len(p) for p in model.pieces]) == 1
            keep = (counts >= 0.5) | single
            if keep.sum() < target <= model.vocab_size:  # never drop below the requested size
                multi = np.flatnonzero(~single)
                keep = single.copy()
                keep[multi[np.argsort(-counts[multi], kind="stable")][: target - single.sum()]] = (
                    True
                )
            c = counts[keep].astype(np.float64)
            rare = c < 0.5  # required characters the E-step did not use
            scores = digamma(np.maximum(c, 0.5)) - digamma(c.sum())
            if (~rare).any():  # SentencePiece gives them the minimum score (minus a hair)
                scores[rare] = scores[~rare].min() - 1e-4
            model = from_pieces(
                dict(
                    zip(np.array(model.pieces, object)[keep].tolist(), scores.tolist(), strict=True)
                ),
                unk=False,
            )
            if log:
                log(dict(step=step, log_likelihood=ll, vocab=model.vocab_size))
            step += 1
        if model.vocab_size <= target:
            break
        _, counts = expected_counts(model, names, freqs, table_size)
        loss = _alternative_loss(model, counts, table_size, seed_names)
        size = max(target, int(config.shrink * model.vocab_size))
        keep = np.sort(np.argsort(-loss, kind="stable")[:size])
        model = from_pieces(
            {model.pieces[i]: float(model.scores[i]) for i in keep.tolist()}, unk=False
        )
    order = np.argsort(-model.scores, kind="stable")
    special = [("<unk>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
    if config.byte_fallback:
        special += [(f"<0x{b:02X}>", 0.0, BYTE) for b in range(256)]
    normal = [(model.pieces[i], float(model.scores[i]), NORMAL) for i in order.tolist()]
    table = special + normal
    return UnigramModel(
        pieces=tuple(p for p, _, _ in table),
        scores=np.array([s for _, s, _ in table], np.float32),
        types=np.array([t for _, _, t in table], np.int8),
        unk_id=0,
        bos_id=1,
        eos_id=2,
        byte_fallback=config.byte_fallback,
        add_dummy_prefix=True,
        escape_whitespaces=True,
    )
