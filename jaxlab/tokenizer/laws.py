"""Laws of the samplers on constructed inputs: v1 on K equal candidates, the alpha limits.

* :func:`equal_candidates` / :func:`v1_equal_candidates`: K equally scored segmentations
  meeting at one end, where Su's v1 Viterbi Sampling (kexue.fm/archives/9768) gives
  1/2^(K-1), 1/2^(K-1), 1/2^(K-2), ..., 1/2 instead of 1/K each.
* :func:`temperature_limit`: the gap ``(1/alpha) log Z_alpha - V`` to the Viterbi score V,
  which lies in ``[0, log(#segmentations) / alpha]`` and so vanishes as alpha grows
  (kexue.fm/archives/9811).
* :func:`viterbi_limits`: ``alpha=None`` against the brute-force argmax; ``alpha < 0`` refused.

Used by the ``tokenizer_sampling`` experiment (:mod:`jaxlab.tokenizer.evaluation` has the rest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxlab.tokenizer import reference
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.evaluation import frequency_bound

# Toy strings for the alpha -> infinity limits (each has one best segmentation).
LIMIT_TEXTS = ("abcd", "abcdab", "dcba", "bcdabc", "cdab", "abcdabcd")


def equal_candidates(k: int) -> tuple[dict[str, float], tuple[tuple[str, ...], ...], tuple]:
    """``k`` equally scored segmentations of one string that meet only at its end.

    The string is ``k`` distinct letters; the pieces are its proper prefixes, its proper
    suffixes and the whole string, scored so that every prefix + suffix pair scores as the whole.
    No other node of the lattice has two candidates, so Su's v1 sampler resolves the ``k``
    candidates by ``k - 1`` fair duels in arrival order (longest last piece first): the last
    arrival wins with 1/2, the one before with 1/4, ..., the first two with 1/2^(k-1) each.

    Returns:
      ``(vocab, support, v1_law)``: support in arrival order (whole string first).
    """
    if not 2 <= k <= 26:
        raise ValueError(f"k must be in [2, 26], got {k}")
    text = "abcdefghijklmnopqrstuvwxyz"[:k]
    whole = -float(k)
    vocab = {text: whole}
    for i in range(1, k):
        vocab[text[:i]] = -1.0 - 0.25 * i
        vocab[text[i:]] = whole - vocab[text[:i]]
    support = ((text,), *((text[:i], text[i:]) for i in range(1, k)))
    law = (0.5 ** (k - 1), *(0.5 ** (k - i) for i in range(1, k)))
    return vocab, support, law


def v1_equal_candidates(k: int, n: int, *, key, sigmas: float = 4.0, mesh=None) -> dict:
    """``n`` v1 draws over :func:`equal_candidates` ``(k)``, against v1's law and the uniform one.

    Returns:
      dict(freqs, law, max_abs_error, bound, pvalue_uniform): frequencies in arrival order, the
      1/2^(k-1), ..., 1/2 law, the largest |frequency - law|, its ``sigmas``-standard-error bound,
      and the chi-square p-value against the exact (uniform, 1/k) law.
    """
    from jaxlab.tokenizer.model import from_pieces

    vocab, support, law = equal_candidates(k)
    tok = Tokenizer(from_pieces(vocab), mesh=mesh)
    out = tok.tokenize([support[0][0]] * n, alpha=1.0, key=key, method="v1")
    freqs = np.array(reference.frequencies(out, support)) / n
    fit = reference.goodness_of_fit(out, dict.fromkeys(support, 1.0 / k))
    return dict(
        freqs=freqs.tolist(),
        law=list(law),
        max_abs_error=float(np.abs(freqs - np.array(law)).max()),
        bound=frequency_bound(law, n, sigmas),
        pvalue_uniform=fit["pvalue"],
    )


def temperature_limit(
    tok: Tokenizer,
    vocab: Mapping[str, float],
    texts: Sequence[str],
    alphas: Sequence[float],
    *,
    slack: float = 0.0,
) -> list[dict]:
    """``(1/alpha) log Z_alpha - V`` for each text and alpha, with its bound.

    ``Z_alpha = sum_w exp(alpha s(w))`` over the S segmentations, ``V = max_w s(w)``, so
    ``exp(alpha V) <= Z_alpha <= S exp(alpha V)`` and the gap lies in ``[0, log(S) / alpha]``:
    (1/alpha) log Z -> V as alpha grows. ``log Z`` from jaxlab's recursion, V and S by brute force;
    ``slack`` absorbs the recursion's rounding (float32) on both sides of the interval.

    Returns:
      One dict(alpha, max_gap, min_gap, max_bound, ok) per alpha over ``texts``; ``ok`` when every
      text's gap lies in ``[-slack, log(S) / alpha + slack]``.
    """
    vit = [reference.viterbi(t, dict(vocab))[1] for t in texts]
    nseg = [len(reference.enumerate_segmentations(t, dict(vocab))) for t in texts]
    out = []
    for a in alphas:
        gaps = np.asarray(tok.log_partition(list(texts), a), np.float64) / a - np.array(vit)
        bounds = np.log(np.array(nseg, np.float64)) / a
        out.append(dict(alpha=a, max_gap=float(gaps.max()), min_gap=float(gaps.min()),
                        max_bound=float(bounds.max()),
                        ok=bool(np.all((gaps <= bounds + slack) & (gaps >= -slack)))))  # fmt: skip
    return out


def viterbi_limits(tok: Tokenizer, vocab: Mapping[str, float], texts: Sequence[str]) -> dict:
    """``alpha=None`` gives the brute-force argmax segmentation; ``alpha < 0`` is refused.

    Returns:
      dict(same, total, negative_refused): how many texts ``tokenize(alpha=None)`` segments as
      :func:`reference.viterbi` does, and whether ``alpha=-1`` raised ``ValueError`` (jaxlab's
      API: None is Viterbi; BytePiece's ``alpha < 0`` sentinel is not accepted).
    """
    got = tok.tokenize(list(texts), alpha=None)
    same = sum(
        tuple(g) == reference.viterbi(t, dict(vocab))[0] for g, t in zip(got, texts, strict=True)
    )
    try:
        tok.encode(list(texts[:1]), alpha=-1.0)
        refused = False
    except ValueError:
        refused = True
    return dict(same=same, total=len(texts), negative_refused=refused)
