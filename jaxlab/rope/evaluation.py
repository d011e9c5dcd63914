"""Evaluating context extension: repeated-text windows, frequency multipliers, bootstrap verdicts.

Su's protocol (kexue.fm/archives/9706, /9708) compares methods by next-token accuracy at k·L on
natural text and on a passage repeated to fill k·L. Orderings between methods are decided here by
a percentile bootstrap over evaluation windows (the windows are the independent units; methods are
compared on the same windows, so differences are paired), never by comparing two means alone.

* :func:`repeated_windows`: held-out passages tiled to a window length.
* :func:`frequency_multipliers`: ``g_i = f'_i / f_i`` of a scaling against the unscaled RoPE.
* :func:`bootstrap_ci`: percentile interval of a statistic of per-window values.
* :func:`equivalence_verdict`: "≈ within a margin" from such an interval.

References: Su (2023), https://kexue.fm/archives/9706, https://kexue.fm/archives/9708;
Efron & Tibshirani, "An Introduction to the Bootstrap" (1993), ch. 13 (percentile intervals).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

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


__all__ = ["repeated_windows", "frequency_multipliers", "bootstrap_ci", "equivalence_verdict"]
