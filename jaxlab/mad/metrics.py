"""Distances and sample-quality metrics for self-consuming loops.

* :func:`w2_squared`: squared 2-Wasserstein distance between Gaussians in closed form,
  W_2² = ‖μ_1 − μ_2‖² + tr Σ_1 + tr Σ_2 − 2 tr (Σ_2^{1/2} Σ_1 Σ_2^{1/2})^{1/2}, with eigh-based,
  clipped square roots (rank-deficient Σ allowed); :func:`w2_squared_to_standard` is the fast path
  to N(0, I): ‖μ‖² + Σ_i (√w_i − 1)² with w_i the eigenvalues of Σ.
* :func:`frechet_distance`: the same distance between Gaussians fitted to two samples (FID without
  a feature network).
* :func:`knn_precision_recall`: the k-nearest-neighbour manifold estimator (k = 5 in the paper).
* :func:`modes_covered`: how many mixture modes receive enough nearby samples.

References: Alemohammad et al. (2023), arXiv:2307.01850; Kynkäänniemi et al. (2019), "Improved
Precision and Recall Metric for Assessing Generative Models", arXiv:1904.06991; Su Jianlin
(2023), https://kexue.fm/archives/9687.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float
from jaxlab.mad.gaussian import fit_gaussian


def _psd_sqrt(a: Float[Array, "D D"]) -> Float[Array, "D D"]:
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    return (v * jnp.sqrt(jnp.clip(w, 0.0))[None, :]) @ v.T


def w2_squared(
    mean1: Float[ArrayLike, " D"],
    cov1: Float[ArrayLike, "D D"],
    mean2: Float[ArrayLike, " D"],
    cov2: Float[ArrayLike, "D D"],
) -> Float[Array, ""]:
    """W_2²(N(μ_1, Σ_1), N(μ_2, Σ_2)) in closed form (eigenvalues clipped at 0 before roots)."""
    mean1, cov1, mean2, cov2 = map(jnp.asarray, (mean1, cov1, mean2, cov2))
    root2 = _psd_sqrt(cov2)
    cross = jnp.linalg.eigvalsh(root2 @ cov1 @ root2)
    diff = mean1 - mean2
    return diff @ diff + jnp.trace(cov1) + jnp.trace(cov2) - 2 * jnp.sum(jnp.sqrt(cross.clip(0.0)))


def w2_squared_to_standard(
    mean: Float[ArrayLike, " D"], cov: Float[ArrayLike, "D D"]
) -> Float[Array, ""]:
    """W_2²(N(μ, Σ), N(0, I)) = ‖μ‖² + Σ_i (√w_i − 1)², w_i the eigenvalues of Σ.

    Eigenvalues below the eigensolver's round-off, D·ε·max|w|, count as exact zeros: a
    rank-deficient Σ has them at ±1e-16-ish, and √ would turn that round-off into ~1e-8 errors.
    """
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)
    w = jnp.linalg.eigvalsh(0.5 * (cov + cov.T))
    floor = w.shape[0] * jnp.finfo(w.dtype).eps * jnp.max(jnp.abs(w))
    w = jnp.where(w > floor, w, 0.0)
    return mean @ mean + jnp.sum(jnp.square(jnp.sqrt(w) - 1))


def frechet_distance(x: Float[ArrayLike, "N D"], y: Float[ArrayLike, "M D"]) -> Float[Array, ""]:
    """W_2² between the Gaussians fitted (unbiased covariance) to two samples."""
    a, b = fit_gaussian(x), fit_gaussian(y)
    return w2_squared(a.mean, a.cov, b.mean, b.cov)


def _sq_dists(a: Float[Array, "N D"], b: Float[Array, "M D"]) -> Float[Array, "N M"]:
    return jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)


def knn_radii(x: Float[ArrayLike, "N D"], k: int = 5) -> Float[Array, " N"]:
    """Squared distance from each point to its k-th nearest neighbour in ``x`` (itself excluded)."""
    x = jnp.asarray(x)
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be in [1, {x.shape[0] - 1}] for {x.shape[0]} points, got {k}")
    neg, _ = jax.lax.top_k(-_sq_dists(x, x), k + 1)  # the nearest is the point itself
    return -neg[:, k]


def knn_precision_recall(
    real: Float[ArrayLike, "N D"], fake: Float[ArrayLike, "M D"], k: int = 5
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifold estimates.

    The real manifold is the union of balls around each real point with radius its k-th
    nearest-neighbour distance among the real points; precision is the fraction of fake points
    inside it. Recall swaps the roles: the fraction of real points inside the fake manifold.

    Returns:
      (precision, recall), each in [0, 1].
    """
    real, fake = jnp.asarray(real), jnp.asarray(fake)
    d_rf = _sq_dists(real, fake)
    precision = jnp.mean(jnp.any(d_rf <= knn_radii(real, k)[:, None], axis=0), dtype=real.dtype)
    recall = jnp.mean(jnp.any(d_rf <= knn_radii(fake, k)[None, :], axis=1), dtype=real.dtype)
    return precision, recall


def modes_covered(
    x: Float[ArrayLike, "N D"],
    centers: Float[ArrayLike, "K D"],
    radius: float,
    min_count: int = 1,
) -> Array:
    """Number of modes with at least ``min_count`` samples within ``radius`` of their center."""
    x, centers = jnp.asarray(x), jnp.asarray(centers)
    near = _sq_dists(centers, x) <= radius**2
    return jnp.sum(jnp.sum(near, axis=1) >= min_count)


def gaussian_summary(params, lam, key) -> dict:
    """Per-generation metrics of a Gaussian fit against N(0, I), for :func:`jaxlab.mad.run_loop`:
    ``w2`` (W_2²), ``trace`` (tr Σ) and ``mean_sq`` (‖μ‖²). ``lam`` and ``key`` are unused."""
    del lam, key
    return dict(
        w2=w2_squared_to_standard(params.mean, params.cov),
        trace=jnp.trace(params.cov),
        mean_sq=params.mean @ params.mean,
    )


def sample_quality(
    model,
    reference: Float[ArrayLike, "N D"],
    centers: Float[ArrayLike, "K D"],
    *,
    radius: float,
    min_count: int = 1,
    num: int | None = None,
    k: int = 5,
):
    """A :func:`jaxlab.mad.run_loop` metric: draws ``num`` samples of G_t with bias λ and returns
    ``precision``, ``recall`` (k-NN, against the fixed real ``reference`` sample), ``modes``
    (:func:`modes_covered` around ``centers``) and the ``samples`` themselves (for scatter plots).
    """
    reference, centers = jnp.asarray(reference), jnp.asarray(centers)
    num = reference.shape[0] if num is None else num

    def metric(params, lam, key):
        x = model.sample(params, num, lam, key=key)
        precision, recall = knn_precision_recall(reference, x, k)
        modes = modes_covered(x, centers, radius, min_count)
        return dict(precision=precision, recall=recall, modes=modes, samples=x)

    return metric
