"""Pure-Python references for tests and the experiment: enumeration and sequential samplers.

A vocabulary here is a dict ``{piece: log-prob}``. Candidates for an end position arrive
longest first, as BytePiece's Aho-Corasick automaton emits them. Everything is float64.

* :func:`enumerate_segmentations` / :func:`exact_distribution`: brute force, P_a(w) ∝ exp(a s(w)).
* :func:`sample_online`: Su's one-pass "perfect" sampler (kexue.fm 9811, BytePiece d49e14b).
* :func:`sample_v1`: Su's first Viterbi Sampling (kexue.fm 9768, BytePiece 0.4.0). **Biased.**
* :func:`sample_4e92759`: the intermediate fix (BytePiece 4e92759): reservoir step, but the
  prefix weight is the *sampled* prefix path score instead of log Z. **Still biased.**

References: Su Jianlin, kexue.fm/archives/9768 and /9811; github.com/bojone/bytepiece.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

Vocab = Mapping[str, float]


def candidates(text: str, vocab: Vocab, end: int, max_len: int) -> list[tuple[int, float]]:
    """``(start, log p)`` of every piece ending at ``end``, longest first."""
    out = []
    for start in range(max(0, end - max_len), end):
        piece = text[start:end]
        if piece in vocab:
            out.append((start, float(vocab[piece])))
    return out


def enumerate_segmentations(text: str, vocab: Vocab) -> list[tuple[str, ...]]:
    """All segmentations of ``text`` into vocabulary pieces (exponential; short strings only)."""
    if not text:
        return [()]
    out = []
    for n in range(1, len(text) + 1):
        if text[:n] in vocab:
            out += [(text[:n], *rest) for rest in enumerate_segmentations(text[n:], vocab)]
    return out


def exact_distribution(text: str, vocab: Vocab, alpha: float) -> dict[tuple[str, ...], float]:
    """P_alpha(w) = exp(alpha s(w)) / Z for every segmentation w (alpha = 0: uniform)."""
    segs = enumerate_segmentations(text, vocab)
    logw = [alpha * sum(vocab[p] for p in w) for w in segs]
    z = log_partition(text, vocab, alpha)
    return {w: math.exp(lw - z) for w, lw in zip(segs, logw, strict=True)}


def log_partition(text: str, vocab: Vocab, alpha: float) -> float:
    """log Z_alpha by brute-force enumeration (logsumexp over all segmentations)."""
    logw = [alpha * sum(vocab[p] for p in w) for w in enumerate_segmentations(text, vocab)]
    if not logw:
        return -math.inf
    m = max(logw)
    return m + math.log(sum(math.exp(x - m) for x in logw))


def viterbi(text: str, vocab: Vocab) -> tuple[tuple[str, ...], float]:
    """Best segmentation and its score by brute force (first maximum in enumeration order)."""
    best, score = (), -math.inf
    for w in enumerate_segmentations(text, vocab):
        s = sum(vocab[p] for p in w)
        if s > score:
            best, score = w, s
    return best, score


def _backtrack(text: str, route: list[int]) -> tuple[str, ...]:
    out, e = [], len(text)
    while e > 0:
        out.append(text[route[e] : e])
        e = route[e]
    return tuple(reversed(out))


def _logaddexp(x: float, y: float) -> float:
    if x == -math.inf:
        return y
    if y == -math.inf:
        return x
    return max(x, y) + math.log1p(math.exp(-abs(x - y)))


def sample_online(text: str, vocab: Vocab, alpha: float, rng: random.Random) -> tuple[str, ...]:
    """Su's one-pass exact sampler: reservoir replacement with the updated running log Z.

    For the candidates (j, v) of end e, in arrival order: u = Z(j) + alpha v,
    Z(e) <- logaddexp(Z(e), u), and route(e) <- j with probability exp(u - Z(e)).
    """
    m = max(map(len, vocab))
    z = [0.0] + [-math.inf] * len(text)
    route = [0] * (len(text) + 1)
    for e in range(1, len(text) + 1):
        for j, v in candidates(text, vocab, e, m):
            u = z[j] + alpha * v
            z[e] = _logaddexp(z[e], u)
            if rng.random() < math.exp(u - z[e]):
                route[e] = j
    return _backtrack(text, route)


def sample_v1(text: str, vocab: Vocab, alpha: float, rng: random.Random) -> tuple[str, ...]:
    """Su's v1 Viterbi Sampling: keep the new candidate iff eps < sigmoid(alpha (s_new - s_held)).

    ``s`` are path scores (prefix path score + log p); the first candidate is always kept.
    Biased: K equal candidates come out 1/2^(K-1), ..., 1/4, 1/2 in arrival order.
    """
    m = max(map(len, vocab))
    score = [0.0] + [-math.inf] * len(text)
    route = [0] * (len(text) + 1)
    for e in range(1, len(text) + 1):
        for j, v in candidates(text, vocab, e, m):
            s = score[j] + v
            if score[e] == -math.inf:
                score[e], route[e] = s, j
                continue
            d = alpha * (s - score[e])
            p = 1.0 / (1.0 + math.exp(-d)) if d > -700 else 0.0
            if rng.random() < p:
                score[e], route[e] = s, j
    return _backtrack(text, route)


def sample_4e92759(text: str, vocab: Vocab, alpha: float, rng: random.Random) -> tuple[str, ...]:
    """The intermediate fix: reservoir step weighted by the *sampled* prefix path score.

    u = alpha (path(j) + v), W(e) <- logaddexp(W(e), u), replace with probability
    exp(u - W(e)); path(e) is the score of the kept path. Still biased (our reading of the
    commit: the prefix weight is the sampled path's score, not log Z(j)).
    """
    m = max(map(len, vocab))
    path = [0.0] + [-math.inf] * len(text)
    route = [0] * (len(text) + 1)
    for e in range(1, len(text) + 1):
        w = -math.inf
        for j, v in candidates(text, vocab, e, m):
            u = alpha * (path[j] + v)
            w = _logaddexp(w, u)
            if rng.random() < math.exp(u - w):
                route[e], path[e] = j, path[j] + v
    return _backtrack(text, route)


def frequencies(samples, support) -> list[int]:
    """Counts of each element of ``support`` among ``samples``."""
    counts = dict.fromkeys(support, 0)
    for s in samples:
        counts[tuple(s)] += 1
    return [counts[w] for w in support]


TOY_COUNTS = {
    "a": 10, "b": 10, "c": 10, "d": 10, "ab": 6, "bc": 4, "cd": 6, "abc": 3, "bcd": 3, "abcd": 1,
}  # fmt: skip
"""The spec's exactness toy for "abcd": log p = log(count / 63)."""


def toy_vocab() -> dict[str, float]:
    total = sum(TOY_COUNTS.values())
    return {p: math.log(c / total) for p, c in TOY_COUNTS.items()}


def goodness_of_fit(samples, exact: Mapping[tuple[str, ...], float]) -> dict:
    """Chi-square test of sampled segmentations against an exact law.

    Returns:
      dict(pvalue, max_abs_error, freqs): freqs are the empirical frequencies in the order of
      ``exact``'s keys.
    """
    from scipy import stats

    support = list(exact)
    counts = frequencies(samples, support)
    n = sum(counts)
    probs = [exact[w] for w in support]
    pvalue = float(stats.chisquare(counts, [p * n for p in probs]).pvalue)
    freqs = [c / n for c in counts]
    err = max(abs(f - p) for f, p in zip(freqs, probs, strict=True))
    return dict(pvalue=pvalue, max_abs_error=err, freqs=freqs)
