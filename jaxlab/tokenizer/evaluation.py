"""Measurements of a unigram tokenizer: sampler exactness, SentencePiece parity, speed, training.

Shared by the ``tokenizer_sampling`` experiment and usable on their own (host-side, NumPy).

* The toy of kexue.fm/archives/9811: the string ``"abcd"`` over all ten substrings
  (:func:`reference.toy_vocab`), its log partition function at two inverse temperatures
  (:data:`TOY_LOG_Z`) and the law of Su's biased v1 Viterbi Sampling (kexue.fm/archives/9768) on
  it (:data:`TOY_V1`), computed by enumerating the sampler's duels.
* :func:`check_sampler`: many draws of one string, tested against the exact law
  ``P(w)^alpha / Z`` by chi-square and by the largest frequency error.
* :func:`reference_fits`: the same test for the pure-Python samplers of :mod:`reference`.
* :func:`throughput`: MB/s of encode calls (median and best of repeats after a warm-up);
  :func:`versus_sentencepiece` times jaxlab and SentencePiece side by side.
* :func:`parity`: ids equal to SentencePiece's, and ``decode(encode(x)) == x``.
* :func:`compare_trainers`: jaxlab's EM trainer against SentencePiece's on the same text.
"""

from __future__ import annotations

import math
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from jaxlab.tokenizer import reference, spm, training
from jaxlab.tokenizer.encoder import Tokenizer

TOY_TEXT = "abcd"
TOY_LOG_Z = {1.0: -3.055608, 0.1: 1.528442}  # log Z_alpha("abcd"), by the forward recursion
# v1's probabilities at alpha = 1 on the toy (candidates arrive longest first).
TOY_V1 = {"a|b|c|d": 0.0018, "a|b|cd": 0.0121, "a|bc|d": 0.0114, "a|bcd": 0.0999,
          "ab|c|d": 0.0433, "ab|cd": 0.2141, "abc|d": 0.2702, "abcd": 0.3472}  # fmt: skip
# Three equally scored segmentations of "abc", in arrival order, and v1's law on them.
THREE_EQUAL = {"a": -1.0, "bc": -2.0, "ab": -1.5, "c": -1.5, "abc": -3.0}
THREE_EQUAL_SUPPORT = (("abc",), ("a", "bc"), ("ab", "c"))
THREE_EQUAL_V1 = (0.25, 0.25, 0.5)


def frequency_bound(probs: Sequence[float], n: int, sigmas: float) -> float:
    """``sigmas`` binomial standard errors of the least certain cell after ``n`` draws."""
    p = np.asarray(probs, np.float64)
    return float(sigmas * math.sqrt(float((p * (1 - p)).max()) / n))


def check_sampler(
    tok: Tokenizer,
    vocab: Mapping[str, float],
    alpha: float,
    method: str,
    n: int,
    *,
    key,
    text: str = TOY_TEXT,
    sigmas: float = 4.0,
) -> dict:
    """Draws ``n`` segmentations of ``text`` and compares them with the exact law.

    Returns:
      dict(pvalue, max_abs_error, freqs, bound): chi-square p-value, largest |frequency -
      probability|, the frequencies in the order of ``exact_distribution``'s support, and
      the ``sigmas``-standard-error bound on that error for an exact sampler.
    """
    exact = reference.exact_distribution(text, dict(vocab), alpha)
    out = tok.tokenize([text] * n, alpha=alpha, key=key, method=method)
    fit = reference.goodness_of_fit(out, exact)
    return {**fit, "bound": frequency_bound(list(exact.values()), n, sigmas)}


# The pure-Python samplers of ``reference`` and whether each is exact (9811) or biased (9768).
REFERENCE_SAMPLERS = {
    "online (Python)": (reference.sample_online, True),
    "v1 (Python)": (reference.sample_v1, False),
    "BytePiece 4e92759 intermediate fix (Python)": (reference.sample_4e92759, False),
}


def reference_fits(
    vocab: Mapping[str, float], alpha: float, draws: int, rng, text: str = TOY_TEXT
) -> dict[str, dict]:
    """``{name: goodness_of_fit}`` of each of :data:`REFERENCE_SAMPLERS` on ``text``."""
    exact = reference.exact_distribution(text, dict(vocab), alpha)
    return {
        name: reference.goodness_of_fit([fn(text, vocab, alpha, rng) for _ in range(draws)], exact)
        for name, (fn, _) in REFERENCE_SAMPLERS.items()
    }


def bytes_per_token(
    tok: Tokenizer, lines: Sequence[str], alphas: Sequence[float | None], *, key
) -> list[float]:
    """UTF-8 bytes (with newlines) per token of ``lines`` at each alpha (None: Viterbi); the
    sample at ``alphas[i]`` draws from ``fold_in(key, 1000 + i)``."""
    import jax

    nbytes = sum(len(line.encode("utf-8")) for line in lines) + len(lines)
    out = []
    for i, a in enumerate(alphas):
        k = None if a is None else jax.random.fold_in(key, 1000 + i)
        out.append(nbytes / max(1, sum(map(len, tok.encode(lines, alpha=a, key=k)))))
    return out


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """``(median s, best s, last output)`` of ``repeats`` calls after one warm-up call."""
    fn()  # warm-up (and compile)
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(min(times)), out


def throughput(
    modes: Mapping[str, Callable[[], object]], nbytes: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """``{mode: (median MB/s, best MB/s)}`` for encode calls over ``nbytes`` of text."""
    speed = {}
    for name, fn in modes.items():
        med, best, _ = timed(fn, repeats)
        speed[name] = (nbytes / med / 1e6, nbytes / best / 1e6)
    return speed


def versus_sentencepiece(
    tok: Tokenizer, sp, lines: Sequence[str], *, key, repeats: int, alphas=(0.1, 0.5)
) -> tuple[dict[str, tuple[float, float]], list[list]]:
    """Viterbi (SentencePiece on one thread) and FFBS at ``alphas``, both libraries, same lines.

    Returns:
      ``(speed, rows)``: :func:`throughput`'s dict and table rows ``[mode, median MB/s, best
      MB/s, median ratio against SentencePiece in the same mode]``.
    """
    nbytes = sum(len(line.encode("utf-8")) for line in lines) + len(lines)  # with newlines
    modes = {
        "SentencePiece Viterbi (1 thread)": lambda: sp.encode(lines, num_threads=1),
        "jaxlab Viterbi": lambda: tok.encode(lines),
    }
    for a in alphas:
        modes[f"SentencePiece FFBS alpha={a}"] = lambda a=a: sp.encode(
            lines, enable_sampling=True, nbest_size=-1, alpha=a, num_threads=1
        )
        modes[f"jaxlab FFBS alpha={a}"] = lambda a=a: tok.encode(lines, alpha=a, key=key)
    speed = throughput(modes, nbytes, repeats)
    rows = []
    for name, (med, best) in speed.items():
        base = "SentencePiece Viterbi (1 thread)" if "Viterbi" in name else name
        rows.append([name, med, best, med / speed[base.replace("jaxlab", "SentencePiece")][0]])
    return speed, rows


def parity(tok: Tokenizer, sp, lines: Sequence[str]) -> dict:
    """Viterbi ids of ``tok`` against SentencePiece processor ``sp`` on ``lines``.

    Returns:
      dict(ids, same_fraction, round_trips): jaxlab's ids, the fraction of lines whose ids are
      identical, and how many lines ``decode(encode(line))`` gives back unchanged.
    """
    ours, theirs = tok.encode(lines), sp.encode(list(lines))
    same = sum(a == b for a, b in zip(ours, theirs, strict=True)) / max(len(lines), 1)
    back = sum(a == b for a, b in zip(tok.decode(ours), lines, strict=True))
    return dict(ids=ours, same_fraction=same, round_trips=back)


def cached_sentencepiece(path: pathlib.Path, train_text: str, vocab_size: int) -> float | None:
    """Trains SentencePiece's SP-ws model into ``path`` unless it exists; returns the seconds."""
    path = pathlib.Path(path)
    if path.exists():
        return None
    text = path.with_name("train.txt")
    text.write_text(train_text)
    t0 = time.perf_counter()
    spm.train_sentencepiece(text, path.with_suffix(""), vocab_size)
    text.unlink()
    return time.perf_counter() - t0


def compare_trainers(
    train_lines: Sequence[str],
    test_lines: Sequence[str],
    vocab_size: int,
    workdir: str | pathlib.Path,
    *,
    mesh=None,
) -> dict[str, dict]:
    """Trains jaxlab's EM and SentencePiece at ``vocab_size`` on the same lines, scores both.

    Writes ``jaxlab_unigram.model`` and ``sp_small.model`` into ``workdir``. Scores on
    ``test_lines``: bytes per Viterbi token and the held-out log-likelihood ``sum log Z`` per
    byte (alpha = 1).

    Returns:
      ``{"jaxlab EM" | "SentencePiece": dict(vocab, bytes_per_token, nats_per_byte, train_s)}``.
    """
    workdir = pathlib.Path(workdir)
    t0 = time.perf_counter()
    ours = training.train(list(train_lines), training.TrainConfig(vocab_size=vocab_size))
    ours_s = time.perf_counter() - t0
    spm.write_model_proto(ours, workdir / "jaxlab_unigram.model")
    text = workdir / "train_small.txt"
    text.write_text("\n".join(train_lines))
    t0 = time.perf_counter()
    theirs = spm.from_sentencepiece(spm.train_sentencepiece(text, workdir / "sp_small", vocab_size))
    theirs_s = time.perf_counter() - t0
    text.unlink()
    nbytes = sum(len(line.encode("utf-8")) for line in test_lines)
    out = {}
    for name, model, secs in (("jaxlab EM", ours, ours_s), ("SentencePiece", theirs, theirs_s)):
        tok = Tokenizer(model, mesh=mesh)
        ll = float(np.sum(tok.log_partition(test_lines, 1.0)))
        tokens = sum(map(len, tok.encode(test_lines)))
        out[name] = dict(
            vocab=model.vocab_size,
            bytes_per_token=nbytes / tokens,
            nats_per_byte=ll / nbytes,
            train_s=secs,
        )
    return out
