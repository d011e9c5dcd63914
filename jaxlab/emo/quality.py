"""Sample quality for the EMO fine-tuning experiment: MAUVE, distinct-n, repetition, sampling.

**MAUVE** compares a model's text distribution P with human text Q through features φ(x): both
feature sets are L2-normalised, reduced by PCA to the components that explain 90% of the variance,
quantised together by k-means into k buckets, and the two bucket histograms p, q compared along the
divergence frontier

    R_λ = λ p + (1 − λ) q,   C(λ) = (exp(−c KL(q ‖ R_λ)), exp(−c KL(p ‖ R_λ))),

MAUVE = the area under C (c = 5, λ on a 25-point grid in (0, 1), closed by (0, 1) and (1, 0)),
averaged over both orientations as the reference implementation does. 1 means indistinguishable.

**distinct-n** (Li et al. 2016): unique n-grams / all n-grams over a set of samples.
**repetition rate** (rep-n, Welleck et al. 2019): per sample, the fraction of its n-grams that
repeat an earlier one in the same sample, averaged over samples.

References: K. Pillutla et al., "MAUVE: Measuring the Gap Between Neural Text and Human Text using
Divergence Frontiers", NeurIPS 2021, arXiv:2102.01454 (package ``mauve-text``); J. Li et al.,
arXiv:1510.03055; S. Welleck et al., arXiv:1908.04319.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.array_types import Array, ArrayLike, Float, Int


def mauve_from_histograms(
    p_hist: np.ndarray, q_hist: np.ndarray, *, scaling: float = 5.0, num_points: int = 25
) -> float:
    """MAUVE of two histograms over the same buckets (the area under the divergence frontier)."""
    p = np.asarray(p_hist, np.float64)
    q = np.asarray(q_hist, np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"p_hist and q_hist must be 1-D of equal length, got {p.shape}, {q.shape}")

    def kl(a, b):
        keep = a > 0
        return float(np.sum(a[keep] * np.log(a[keep] / b[keep])))

    xs, ys = [1.0], [0.0]  # λ → 0 and λ → 1 close the curve
    for lam in np.linspace(1e-6, 1 - 1e-6, num_points):
        r = lam * p + (1 - lam) * q
        xs.append(np.exp(-scaling * kl(q, r)))
        ys.append(np.exp(-scaling * kl(p, r)))
    xs.append(0.0)
    ys.append(1.0)
    x, y = np.asarray(xs), np.asarray(ys)
    ix, iy = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")
    return float(0.5 * (np.trapezoid(y[ix], x[ix]) + np.trapezoid(x[iy], y[iy])))


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int) -> tuple:
    """Lloyd's algorithm from a k-means++ start; returns (labels, inertia)."""
    n = x.shape[0]
    centers = [x[rng.integers(n)]]
    d2 = np.sum((x - centers[0]) ** 2, axis=1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centers.append(x[rng.choice(n, p=probs)])
        d2 = np.minimum(d2, np.sum((x - centers[-1]) ** 2, axis=1))
    c = np.stack(centers)
    labels = np.full(n, -1)
    for _ in range(max_iter):
        dist = np.sum(x**2, 1)[:, None] - 2 * x @ c.T + np.sum(c**2, 1)[None, :]
        new = np.argmin(dist, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    inertia = float(np.sum((x - c[labels]) ** 2))
    return labels, inertia


def quantize(
    p_features: np.ndarray,
    q_features: np.ndarray,
    *,
    num_buckets: int,
    explained_variance: float = 0.9,
    num_redo: int = 5,
    max_iter: int = 500,
    key: Array,
) -> tuple[np.ndarray, np.ndarray]:
    """Joint PCA + k-means quantisation of two feature sets; returns their bucket histograms.

    Rows are L2-normalised, projected on the principal components explaining
    ``explained_variance`` of the variance, and clustered by k-means (best of ``num_redo``
    k-means++ starts, by inertia).
    """
    if not 0 < explained_variance < 1:
        raise ValueError(f"explained_variance must be in (0, 1), got {explained_variance}")
    data = np.vstack([np.asarray(q_features, np.float64), np.asarray(p_features, np.float64)])
    data = data / np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)
    centred = data - data.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    dims = int(np.argmax(ratio >= explained_variance)) + 1
    x = centred @ vt[:dims].T
    seed = int(np.asarray(jax.random.randint(key, (), 0, 2**31 - 1)))
    rng = np.random.default_rng(seed)
    best = min(
        (_kmeans(x, num_buckets, rng, max_iter) for _ in range(num_redo)), key=lambda t: t[1]
    )
    labels = best[0]
    n_q = len(q_features)
    q_hist = np.bincount(labels[:n_q], minlength=num_buckets) / n_q
    p_hist = np.bincount(labels[n_q:], minlength=num_buckets) / (len(labels) - n_q)
    return p_hist, q_hist


def mauve(
    p_features: Float[ArrayLike, "N D"],
    q_features: Float[ArrayLike, "M D"],
    *,
    num_buckets: int = 0,
    scaling: float = 5.0,
    explained_variance: float = 0.9,
    num_redo: int = 5,
    key: Array,
) -> dict:
    """MAUVE between model features ``p_features`` and human-text features ``q_features``.

    Args:
      p_features: One feature vector per model sample.
      q_features: One feature vector per human text.
      num_buckets: k-means buckets; 0 = max(2, round(min(N, M) / 10)) as the reference does.
      scaling: The constant c of the frontier.
      explained_variance: PCA variance kept before clustering.
      num_redo: k-means restarts.
      key: Seeds k-means.

    Returns:
      dict(mauve, p_hist, q_hist, num_buckets).
    """
    p_features, q_features = np.asarray(p_features), np.asarray(q_features)
    k = num_buckets or max(2, int(round(min(len(p_features), len(q_features)) / 10)))
    p_hist, q_hist = quantize(
        p_features,
        q_features,
        num_buckets=k,
        explained_variance=explained_variance,
        num_redo=num_redo,
        key=key,
    )
    value = mauve_from_histograms(p_hist, q_hist, scaling=scaling)
    return dict(mauve=value, p_hist=p_hist, q_hist=q_hist, num_buckets=k)


def _ngrams(seq: np.ndarray, n: int) -> list[tuple]:
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def distinct_n(samples: Int[ArrayLike, "N L"], n: int) -> float:
    """Unique n-grams / total n-grams, pooled over all samples (Li et al. 2016)."""
    grams = [g for s in np.asarray(samples) for g in _ngrams(s, n)]
    if not grams:
        raise ValueError(f"samples are shorter than n={n}")
    return len(set(grams)) / len(grams)


def repetition_rate(samples: Int[ArrayLike, "N L"], n: int) -> float:
    """Mean over samples of 1 − unique n-grams / n-grams within the sample (rep-n)."""
    rates = []
    for s in np.asarray(samples):
        grams = _ngrams(s, n)
        if not grams:
            raise ValueError(f"samples are shorter than n={n}")
        rates.append(1.0 - len(set(grams)) / len(grams))
    return float(np.mean(rates))


def sample(
    logits_fn: Callable[[Array], Array],
    prefix_BP: Int[ArrayLike, "B P"],
    num_new: int,
    *,
    key: Array,
) -> Int[Array, "B T"]:
    """Unbiased ancestral sampling (top-k 0, top-p 1, temperature 1) of ``num_new`` tokens.

    ``logits_fn(tokens_BL) -> logits_BLV`` must be causal; the whole buffer is re-run each step
    (no cache: fine for the tiny models this serves). Token ``t`` uses ``fold_in(key, t)``.
    """
    prefix_BP = jnp.asarray(prefix_BP, jnp.int32)
    b, p = prefix_BP.shape
    buf = jnp.concatenate([prefix_BP, jnp.zeros((b, num_new), jnp.int32)], axis=1)

    def body(t, buf):
        logits_BV = jax.lax.dynamic_index_in_dim(logits_fn(buf), p + t - 1, 1, keepdims=False)
        tok = jax.random.categorical(jax.random.fold_in(key, t), logits_BV.astype(jnp.float32))
        return jax.lax.dynamic_update_index_in_dim(buf, tok.astype(jnp.int32)[:, None], p + t, 1)

    return jax.lax.fori_loop(0, num_new, body, buf)[:, p:]


def paired_difference_ci(
    a: ArrayLike | Sequence[float], b: ArrayLike | Sequence[float], *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``a − b`` over paired runs (seeds) with its Student-t confidence interval.

    Returns:
      ``(mean, lo, hi)``; with a single pair the interval is infinite (unresolvable).
    """
    import scipy.stats

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if d.ndim != 1 or d.size < 1:
        raise ValueError(f"a and b must be 1-D and non-empty, got shape {d.shape}")
    mean = float(d.mean())
    if d.size < 2:
        return mean, -np.inf, np.inf
    half = float(
        scipy.stats.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    )
    return mean, mean - half, mean + half
