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
* :func:`speed_claims` / :func:`speed_ratios`: CPU-time, equal-thread and one-thread ratios.
* :func:`two_sample`: jaxlab's FFBS draws against SentencePiece's sampler (chi-square).
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
# Short stdlib-like lines for the two-sample test against SentencePiece's sampler.
TWO_SAMPLE_LINES = ("return self", "import os", "for key in keys:")


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


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object, float]:
    """``(median s, best s, last output, median CPU s)`` of ``repeats`` calls after a warm-up.

    CPU seconds are the process's (all threads), from :func:`time.process_time`.
    """
    fn()  # warm-up (and compile)
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(times)), float(min(times)), out, float(np.median(cpu))


def throughput(
    modes: Mapping[str, Callable[[], object]], nbytes: int, repeats: int
) -> dict[str, tuple[float, float, float]]:
    """``{mode: (median MB/s, best MB/s, MB per CPU second)}`` for encode calls over ``nbytes``
    of text (the last from the median CPU time, all threads of the process)."""
    speed = {}
    for name, fn in modes.items():
        med, best, _, cpu = timed(fn, repeats)
        speed[name] = (nbytes / med / 1e6, nbytes / best / 1e6, nbytes / max(cpu, 1e-9) / 1e6)
    return speed


def versus_sentencepiece(
    tok: Tokenizer,
    sp,
    lines: Sequence[str],
    *,
    key,
    repeats: int,
    alphas=(0.1, 0.5),
    threads: int | None = None,
) -> tuple[dict[str, tuple[float, float, float]], list[list]]:
    """Viterbi and FFBS at ``alphas``, both libraries, same lines; SentencePiece on one thread
    and on ``threads`` (default: the CPU count, which jaxlab's XLA CPU client uses).

    Returns:
      ``(speed, rows)``: :func:`throughput`'s dict and table rows ``[mode, median MB/s, best
      MB/s, MB per CPU s, median ratio against SentencePiece on one thread in the same mode]``.
    """
    import os

    threads = threads or os.cpu_count() or 1
    nbytes = sum(len(line.encode("utf-8")) for line in lines) + len(lines)  # with newlines
    modes = {}
    for t in sorted({1, threads}):
        modes[f"SentencePiece Viterbi ({t} thread)"] = lambda t=t: sp.encode(lines, num_threads=t)
    modes["jaxlab Viterbi"] = lambda: tok.encode(lines)
    for a in alphas:
        for t in sorted({1, threads}):
            modes[f"SentencePiece FFBS alpha={a} ({t} thread)"] = lambda a=a, t=t: sp.encode(
                lines, enable_sampling=True, nbest_size=-1, alpha=a, num_threads=t
            )
        modes[f"jaxlab FFBS alpha={a}"] = lambda a=a: tok.encode(lines, alpha=a, key=key)
    speed = throughput(modes, nbytes, repeats)
    rows = []
    for name, (med, best, cpu) in speed.items():
        mode = "Viterbi" if "Viterbi" in name else name.split(" ", 1)[1].split(" (")[0]
        rows.append([name, med, best, cpu, med / speed[f"SentencePiece {mode} (1 thread)"][0]])
    return speed, rows


def speed_ratios(speed: Mapping[str, tuple[float, float, float]], mode: str) -> dict[str, float]:
    """jaxlab / SentencePiece throughput in ``mode`` ("Viterbi" or "FFBS alpha=a"), three ways.

    Returns:
      dict(one_thread, equal_threads, cpu_time): median wall-clock ratio against SentencePiece
      on one thread, against SentencePiece on as many threads as the machine has (jaxlab's
      XLA client uses them all), and the ratio of bytes per CPU second (all threads counted).
    """
    ours = speed[f"jaxlab {mode}"]
    sp = {k: v for k, v in speed.items() if k.startswith(f"SentencePiece {mode} (")}
    one = sp[f"SentencePiece {mode} (1 thread)"]
    many = max(sp.items(), key=lambda kv: int(kv[0].rsplit("(", 1)[1].split()[0]))[1]
    return dict(
        one_thread=ours[0] / one[0], equal_threads=ours[0] / many[0], cpu_time=ours[2] / one[2]
    )


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


def speed_claims(speed, *, goal_source: str, time_source: str) -> tuple[list[dict], dict]:
    """Report rows for :func:`versus_sentencepiece`'s timings (reported, not checked: timings on
    a shared machine).

    One row per mode (Viterbi, FFBS alpha=0.1) with the CPU-time ratio, the equal-thread ratio
    and the one-thread ratio (:func:`speed_ratios`), and one row with the sampling / Viterbi time
    ratio of each library beside 9768's figures (BytePiece v1 1.95 / 1.36 MB/s, about 1.4x;
    SentencePiece unigram 5.65 / 1.28 MB/s, 4.4x), flagged against the spec's 2x target.

    Returns:
      ``(claims, figures)``; figures ``speed_ratio_{Viterbi|FFBS0.1}_{one_thread|equal_threads|
      cpu_time}``, ``sampling_over_viterbi_time``, ``sp_sampling_over_viterbi_time`` and
      ``mb_s_<mode>`` (median MB/s).
    """
    from jaxlab import report

    claims, figures = [], {f"mb_s_{k}": v[0] for k, v in speed.items()}
    nthreads = max(int(k.rsplit("(", 1)[1].split()[0]) for k in speed if k.endswith("thread)"))
    for mode, short, want in (
        ("Viterbi", "Viterbi", ">= 1.0"),
        ("FFBS alpha=0.1", "FFBS0.1", ">= 2.0"),
    ):
        q = speed_ratios(speed, mode)
        figures.update({f"speed_ratio_{short}_{k}": v for k, v in q.items()})
        measured = (
            f"CPU time {q['cpu_time']:.2f}x; equal threads ({nthreads}) {q['equal_threads']:.2f}x; "
            f"jaxlab on {nthreads} vs SentencePiece on 1 thread {q['one_thread']:.2f}x"
        )
        name = f"{mode} throughput jaxlab / SentencePiece (CPU time; equal threads)"
        why = "speed goal; timings on a loaded shared machine"
        claims.append(report.reported(name, measured, source=goal_source, expected=want, why=why))
    ours = speed["jaxlab Viterbi"][0] / speed["jaxlab FFBS alpha=0.1"][0]
    theirs = (
        speed["SentencePiece Viterbi (1 thread)"][0]
        / speed["SentencePiece FFBS alpha=0.1 (1 thread)"][0]
    )
    figures.update(sampling_over_viterbi_time=ours, sp_sampling_over_viterbi_time=theirs)
    flag = "over" if ours > 2.0 else "within"
    claims.append(report.reported(
        "sampling / Viterbi time, alpha=0.1 "
        "(9768: BytePiece v1 1.95/1.36 MB/s, SP-Unigram 5.65/1.28)",
        f"jaxlab {ours:.2f}x ({flag} the spec's 2x target); SentencePiece {theirs:.2f}x",
        source=time_source, expected="about 1.3-1.5x (BytePiece v1); 4.4x (SentencePiece)",
        why="timing on a loaded shared machine",
    ))  # fmt: skip
    return claims, figures


def two_sample(
    tok: Tokenizer, sp, lines: Sequence[str], alpha: float, n: int, *, key
) -> list[float]:
    """Chi-square two-sample p-values: ``n`` jaxlab FFBS draws of each line against ``n`` draws
    of SentencePiece's sampler (``enable_sampling=True, nbest_size=-1``), same model and alpha.

    Segmentations seen fewer than 5 times in both samples together are dropped from the table.
    """
    import jax
    from scipy import stats

    out = []
    for i, line in enumerate(lines):
        ours = [
            tuple(x) for x in tok.encode([line] * n, alpha=alpha, key=jax.random.fold_in(key, i))
        ]
        theirs = [tuple(x) for x in sp.encode([line] * n, enable_sampling=True, nbest_size=-1,
                                              alpha=alpha, num_threads=1)]  # fmt: skip
        support = sorted(set(ours) | set(theirs))
        table = np.array(
            [reference.frequencies(ours, support), reference.frequencies(theirs, support)]
        )
        table = table[:, table.sum(0) >= 5]
        out.append(float(stats.chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0)
    return out


def plots(workdir, exact1, freq_at_1, bpt_alphas, bpt, bpt_viterbi, speed) -> list[str]:
    """The experiment's three figures: toy segmentation probabilities at alpha = 1 (exact and each
    sampler's frequencies), bytes/token against alpha, median throughput per mode."""
    from jaxlab import plots as jplots

    support = ["|".join(w) for w in exact1]
    fig, ax = jplots.new_figure(size=(7.0, 3.6))
    x, width = np.arange(len(support)), 0.2
    bars = [("exact", list(exact1.values())), ("FFBS", freq_at_1["ffbs"]),
            ("one-pass", freq_at_1["online"]), ("v1", freq_at_1["v1"])]  # fmt: skip
    for j, (label, vals) in enumerate(bars):
        ax.bar(x + (j - 1.5) * width, vals, width, label=label)
    ax.set_xticks(x, support, rotation=30)
    ax.set(ylabel="probability", title='"abcd" segmentations, alpha = 1')
    ax.legend()
    names = [jplots.save_figure(fig, workdir, "toy_probabilities.png")]
    fig, ax = jplots.new_figure()
    ax.semilogx(bpt_alphas, bpt, "o-", label="FFBS sample")
    ax.axhline(bpt_viterbi, color="k", ls="--", label="Viterbi")
    ax.set(xlabel="alpha", ylabel="bytes / token")
    ax.legend()
    names.append(jplots.save_figure(fig, workdir, "bytes_per_token.png"))
    fig, ax = jplots.new_figure(size=(7.0, 3.6))
    ax.barh(list(speed), [v[0] for v in speed.values()])
    ax.set_xlabel("MB/s (median)")
    names.append(jplots.save_figure(fig, workdir, "throughput.png"))
    return names
