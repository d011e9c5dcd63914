"""Evaluating context extension: repeated-text windows, frequency multipliers, bootstrap verdicts.

Su's protocol (kexue.fm/archives/9706, /9708) compares methods by next-token accuracy at k·L on
natural text and on a passage repeated to fill k·L. Orderings between methods are decided here by
a percentile bootstrap over evaluation windows (the windows are the independent units; methods are
compared on the same windows, so differences are paired), never by comparing two means alone.

* :func:`repeated_windows`: held-out passages tiled to a window length.
* :func:`frequency_multipliers`: ``g_i = f'_i / f_i`` of a scaling against the unscaled RoPE;
  :data:`MULTIPLIER_TABLE` (Su's formulas, d = 128, k = 8, to 4 decimals) and
  :func:`scaling_identities`, the checks the extrapolation experiment reports.
* :func:`bootstrap_ci`: percentile interval of a statistic of per-window values.
* :func:`equivalence_verdict`: "≈ within a margin" from such an interval.
* :func:`order_claims`, :func:`magnitude_rows`: Su's orderings and table values as report claims,
  from per-window accuracies of the named variants (the extrapolation experiment's verdicts).

References: Su (2023), https://kexue.fm/archives/9706, https://kexue.fm/archives/9708;
Efron & Tibshirani, "An Introduction to the Bootstrap" (1993), ch. 13 (percentile intervals).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from jaxlab import report
from jaxlab.array_types import Array, ArrayLike, Float, PRNGKeyArray
from jaxlab.rope.scaling import RopeScaling, base_inv_freq, rope_frequencies


def repeated_windows(heldout: np.ndarray, num: int, passage: int, length: int) -> np.ndarray:
    """``num`` int32 windows of ``length`` tokens, each an evenly spaced held-out passage of
    ``passage`` tokens tiled to fill it (copying it back needs attention beyond ``passage``)."""
    if heldout.shape[0] < passage or passage < 1:
        raise ValueError(f"passage: expected 1 <= passage <= {heldout.shape[0]}, got {passage}")
    starts = np.linspace(0, heldout.shape[0] - passage, num).astype(np.int64)
    reps = -(-length // passage)
    rows = [np.tile(heldout[s : s + passage], reps)[:length] for s in starts]
    return np.stack(rows).astype(np.int32)


def frequency_multipliers(
    scaling: RopeScaling, rotary_dim: int, base: float, *, dtype=jnp.float32
) -> Float[Array, " P"]:
    """Per-pair multipliers ``g_i = f'_i / f_i`` of a static scaling (``P = rotary_dim / 2``).

    Pass ``dtype=jnp.float64`` under ``jax.enable_x64`` for analysis-grade digits.
    """
    scaled, _ = rope_frequencies(scaling, rotary_dim, base, dtype=dtype)
    return scaled / base_inv_freq(rotary_dim, base, dtype=dtype)


# g_i for d = 128, k = 8, b = 1e4 at pairs m = i + 1 in MULTIPLIER_PAIRS, to 4 decimals, from the
# formulas of Su 9706 (NTK-aware is bloc97's b·k^{d/(d-2)}; mixed: g_i = exp(-a (i+1)^b_mix)).
MULTIPLIER_PAIRS = (1, 2, 16, 32, 48, 64)
MULTIPLIER_TABLE = {
    ("linear", None): (0.125,) * 6,
    ("ntk_aware", None): (1.0, 0.9675, 0.6095, 0.3594, 0.2120, 0.1250),
    ("ntk_old", None): (1.0, 0.9680, 0.6142, 0.3652, 0.2172, 0.1291),
    ("ntk_fixed", None): (0.9680, 0.9371, 0.5946, 0.3536, 0.2102, 0.1250),
    ("ntk_mixed", 0.5): (0.7711, 0.6924, 0.3536, 0.2298, 0.1652, 0.1250),
    ("ntk_mixed", 0.625): (0.8568, 0.7879, 0.4172, 0.2597, 0.1760, 0.1250),
    ("ntk_mixed", 0.75): (0.9122, 0.8568, 0.4794, 0.2904, 0.1871, 0.1250),
}


def multipliers64(kind: str, mix_b: float | None = None, rotary_dim: int = 128, factor=8.0):
    """float64 :func:`frequency_multipliers` of a static kind at b = 1e4 (L0 = 4096 for YaRN)."""
    extra = {} if mix_b is None else {"mix_b": mix_b}
    scaling = RopeScaling(kind, factor=factor, original_max_position_embeddings=4096, **extra)
    with jax.enable_x64(True):
        return np.asarray(frequency_multipliers(scaling, rotary_dim, 1e4, dtype=jnp.float64))


def scaling_identities(rotary_dim: int = 128, factor: float = 8.0) -> dict[str, float]:
    """Float64 checks of the static scalings, from :func:`rope_frequencies` (b = 1e4).

    Returns:
      ``ntk_aware_base``: the base b' read off the lowest NTK-aware frequency
      (f_{P-1} = b'^{-(d-2)/d}); ``mixed_one_vs_fixed`` / ``mixed_zero_vs_pi``: max relative
      difference of g_i between NTK-mixed at b_mix = 1 and NTK-fixed, and at b_mix = 1e-9 and
      PI; ``table_max_abs``: max |g_i − MULTIPLIER_TABLE| (needs d = 128, k = 8).
    """
    d = rotary_dim
    with jax.enable_x64(True):
        ntk = RopeScaling("ntk_aware", factor=factor)
        inv = rope_frequencies(ntk, d, 1e4, dtype=jnp.float64)[0]
        base = float(inv[-1] ** (-d / (d - 2)))
    rel = lambda x, y: float(np.max(np.abs(x / y - 1)))
    rows = np.asarray(MULTIPLIER_PAIRS) - 1
    table = max(float(np.max(np.abs(multipliers64(kind, b, d, factor)[rows] - np.asarray(g))))
                for (kind, b), g in MULTIPLIER_TABLE.items())  # fmt: skip
    return dict(
        ntk_aware_base=base,
        mixed_one_vs_fixed=rel(multipliers64("ntk_mixed", 1.0, d, factor),
                               multipliers64("ntk_fixed", None, d, factor)),
        mixed_zero_vs_pi=rel(multipliers64("ntk_mixed", 1e-9, d, factor),
                             multipliers64("linear", None, d, factor)),
        table_max_abs=table,
    )  # fmt: skip


def bootstrap_ci(
    samples: Real[ArrayLike, "W ..."],
    *,
    key: PRNGKeyArray,
    num_resamples: int = 2000,
    level: float = 0.95,
    reduce: Callable[[Array], Array] | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of ``reduce(mean over windows of samples)``.

    Windows (axis 0) are resampled with replacement, all trailing axes together, so paired
    comparisons stay paired; ``reduce`` maps the per-resample mean (shape ``samples.shape[1:]``)
    to a scalar, e.g. ``jnp.min`` for "the smallest of several differences".

    Args:
      samples: Per-window values, e.g. accuracy differences between two methods, shape (W, ...).
      key: PRNG key of the resampling.
      num_resamples: Bootstrap resamples.
      level: Confidence level of the interval.
      reduce: Scalar statistic of the mean; None requires scalar-per-window ``samples``.

    Returns:
      ``(statistic, low, high)`` as floats: the statistic on all windows and the interval.
    """
    x = jnp.asarray(samples, jnp.float32)
    if x.ndim == 0 or x.shape[0] < 1:  # no windows
        raise ValueError(f"samples: expected at least one window on axis 0, got shape {x.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a value in (0, 1), got {level}")
    reduce = reduce or (lambda m: m)
    stat = lambda rows: reduce(jnp.mean(rows, axis=0))
    idx_RW = jax.random.randint(key, (num_resamples, x.shape[0]), 0, x.shape[0])
    stats_R = jax.vmap(lambda i: stat(x[i]))(idx_RW)
    lo, hi = jnp.quantile(stats_R, jnp.array([(1 - level) / 2, (1 + level) / 2], jnp.float32))
    return float(stat(x)), float(lo), float(hi)


def equivalence_verdict(ci: tuple[float, float], margin: float) -> bool | None:
    """Is a difference "≈ 0 within ``margin``"? From its confidence interval ``(low, high)``.

    True when the whole interval lies in ``[-margin, margin]``, False when it lies wholly
    outside, None ("not resolvable at this size") when it straddles a bound.
    """
    lo, hi = float(ci[0]), float(ci[1])
    if -margin <= lo and hi <= margin:
        return True
    if lo > margin or hi < -margin:
        return False
    return None


# Su's non-repeated accuracy at 4096 (9706/9708 tables), for :func:`magnitude_rows`.
SU_NATURAL = {"Baseline": 0.2316, "NTK-fixed": 0.3961, "NTK-mixed": 0.4012, "ReRoPE L/2": 0.4848}


def order_claims(
    acc: dict, in_range: np.ndarray, *, key: PRNGKeyArray, rerope_windows, train_len: int,
    mix_b, same: float, num_resamples: int, level: float, source: str,
) -> list[dict]:  # fmt: skip
    """Su's orderings on per-window accuracy at k·L, each decided by a bootstrap interval.

    Args:
      acc: variant name -> {"natural", "repeated"} -> per-window accuracy (W,). Names follow the
        extrapolation experiment: "Baseline", "PI", "NTK-old", "NTK-fixed", f"NTK-mixed
        b={mix_b}", f"ReRoPE w={w}" for each w in ``rerope_windows`` (one of them ``train_len``),
        each also with the suffixes "-log n†" (post-hoc log n) and "-log n" (pre-trained).
      in_range: per-window natural accuracy at the training length (W,).
      key: PRNG key; claim i resamples with ``fold_in(key, i)``.
      same: margin of the "≈" claims and of the ReRoPE w = L collapse.

    Returns:
      A list of :func:`jaxlab.report.claim` dicts (the best ReRoPE w < L is chosen on ``acc``).
    """
    nat = {n: a["natural"] for n, a in acc.items()}
    windows = [int(w) for w in rerope_windows if w < train_len]
    best = max((f"ReRoPE w={w}" for w in windows), key=lambda n: nat[n].mean())
    mixed = f"NTK-mixed b={mix_b}"

    def ci(diffs, i, reduce=None):  # diffs: (W,) or (W, M); reduce to a scalar
        return bootstrap_ci(diffs, key=jax.random.fold_in(key, i), reduce=reduce,
                            num_resamples=num_resamples, level=level)  # fmt: skip

    def above(name, diffs, i, threshold=0.0, reduce=None):
        point, lo, hi = ci(diffs, i, reduce)
        return report.interval_above(name, (lo, hi), threshold, source=source, measured=point)

    def close(name, diffs, i):
        point, lo, hi = ci(diffs, i)
        verdict = equivalence_verdict((lo, hi), same)
        return report.claim(name, source=source, expected=f"|difference| <= {same}",
                            measured=f"{point:.4g} [{lo:.4g}, {hi:.4g}]", agree=verdict,
                            tolerance="CI" + (" (not resolvable at this size)" if verdict is None
                                              else ""))  # fmt: skip

    full = nat[f"ReRoPE w={train_len}"][:, None]
    collapse = np.stack([nat["Baseline"], nat[best]], 1) - full  # both gaps, per window
    claims = [
        above("PI < Baseline (natural, difference)", nat["Baseline"] - nat["PI"], 0),
        above("Baseline < NTK-old (natural, difference)", nat["NTK-old"] - nat["Baseline"], 1),
        above("Baseline < NTK-fixed (natural, difference)", nat["NTK-fixed"] - nat["Baseline"], 2),
        close("NTK-old ≈ NTK-fixed (natural, difference)", nat["NTK-old"] - nat["NTK-fixed"], 3),
        above("NTK-fixed < NTK-mixed (natural, difference)", nat[mixed] - nat["NTK-fixed"], 4),
        above("NTK-mixed < best ReRoPE w < L (natural, difference)", nat[best] - nat[mixed], 5),
        close("best ReRoPE w < L ≈ accuracy at L on the same windows (natural, difference)",
              nat[best] - in_range, 6),
        above(f"ReRoPE w=L collapses: below Baseline and best ReRoPE by > {same} (natural)",
              collapse, 7, same, jnp.min),
    ]  # fmt: skip
    rows = ["NTK-fixed", mixed] + [f"ReRoPE w={w}" for w in windows]
    for j, kind in enumerate(("natural", "repeated")):
        a = lambda s: np.stack([acc[n + s][kind] for n in rows], 1)  # noqa: B023
        claims += [
            above(f"log n > log n† for NTK-fixed, NTK-mixed, ReRoPE ({kind}, smallest difference)",
                  a("-log n") - a("-log n†"), 10 + 2 * j, reduce=jnp.min),
            above(f"log n† > plain for NTK-fixed, NTK-mixed, ReRoPE ({kind}, smallest difference)",
                  a("-log n†") - a(""), 11 + 2 * j, reduce=jnp.min),
        ]  # fmt: skip
    return claims


def magnitude_rows(acc: dict, *, train_len: int, mix_b, source: str) -> list[dict]:
    """:data:`SU_NATURAL` next to our natural accuracy at 8L (reported, no verdict).

    ``acc`` is as in :func:`order_claims`; "ReRoPE L/2" is f"ReRoPE w={train_len // 2}".
    """
    ours = dict(zip(SU_NATURAL, ("Baseline", "NTK-fixed", f"NTK-mixed b={mix_b}",
                                 f"ReRoPE w={train_len // 2}"), strict=True))  # fmt: skip
    return [report.reported(f"{n} natural accuracy at 8L (Su's table)", float(acc[ours[n]][
            "natural"].mean()), source=source, expected=f"{v:.4f}", why="byte LM, not Su's "
            "~100M-parameter GAU on tokens") for n, v in SU_NATURAL.items()]  # fmt: skip


__all__ = [
    "repeated_windows",
    "frequency_multipliers",
    "MULTIPLIER_PAIRS",
    "MULTIPLIER_TABLE",
    "multipliers64",
    "scaling_identities",
    "bootstrap_ci",
    "equivalence_verdict",
    "SU_NATURAL",
    "order_claims",
    "magnitude_rows",
]
