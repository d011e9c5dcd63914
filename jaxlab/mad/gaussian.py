"""The Gaussian generative model of a self-consuming loop: fit, sample with bias λ, exact 1-D laws.

Generation t refits G_t = N(μ_t, Σ_t) with the unbiased estimators

    μ_t = (1/n) Σ_i x_i,  Σ_t = 1/(n − 1) Σ_i (x_i − μ_t)(x_i − μ_t)ᵀ,  x_i ~ N(μ_{t−1}, λΣ_{t−1}),

so in the fully synthetic loop μ_t | · ~ N(μ_{t−1}, λΣ_{t−1}/n) and
Σ_t | · ~ W_d(λΣ_{t−1}/(n − 1), n − 1). Convention used throughout the package: G_1 is fit to n
real samples without bias, λ applies from t = 2. Then E Σ_t = λ^{t−1} Σ_0,
Cov μ_t = (Σ_0/n)(1 − λ^t)/(1 − λ) (= tΣ_0/n at λ = 1), and in 1-D the median of σ_t² is
≈ σ_0² λ^{t−1} exp{t[ψ((n−1)/2) − ln((n−1)/2)]} while its mean stays λ^{t−1}σ_0².

Rank-deficient covariances are normal here (n ≤ d gives rank ≤ n − 1): sampling factors Σ by a
symmetric eigendecomposition with eigenvalues clipped at 0, never by Cholesky.

References: Su Jianlin (2023), https://kexue.fm/archives/9687; Alemohammad et al. (2023),
"Self-Consuming Generative Models Go MAD", arXiv:2307.01850, §3.1 and Appendix A.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma

from jaxlab.array_types import Array, ArrayLike, Float

ESTIMATORS = ("unbiased", "mle")


class Gaussian(NamedTuple):
    """Parameters of N(mean, cov)."""

    mean: Float[Array, " D"]
    cov: Float[Array, "D D"]


class GaussianStats(NamedTuple):
    """Sufficient statistics (count, Σ x, Σ x xᵀ) of a sample; merging is addition."""

    count: Float[Array, ""]
    total: Float[Array, " D"]
    outer: Float[Array, "D D"]


def _ddof(estimator: str) -> int:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    return 1 if estimator == "unbiased" else 0


def fit_gaussian(
    x: Float[ArrayLike, "N D"], weights: Float[ArrayLike, " N"] | None = None, ddof: int = 1
) -> Gaussian:
    """Mean and covariance Σ w_i (x_i − μ)(x_i − μ)ᵀ / (Σ w_i − ddof) of 0/1-weighted samples.

    Args:
      x: Samples.
      weights: Per-sample weights (1 keeps a row, 0 drops it; default all ones). Integer
        counts are the intended use: with 0/1 weights the result equals a fit to the kept rows.
      ddof: 1 for the unbiased covariance, 0 for the MLE.

    Returns:
      The fitted :class:`Gaussian`.
    """
    x = jnp.asarray(x)
    w = jnp.ones(x.shape[:1], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    count = jnp.sum(w)
    mean = jnp.sum(w[:, None] * x, axis=0) / count
    xc = x - mean[None, :]
    cov = (w[:, None] * xc).T @ xc / (count - ddof)
    return Gaussian(mean, cov)


def gaussian_stats(
    x: Float[ArrayLike, "N D"], weights: Float[ArrayLike, " N"] | None = None
) -> GaussianStats:
    """Sufficient statistics of (weighted) samples, for pools that accumulate in O(d²) memory."""
    x = jnp.asarray(x)
    w = jnp.ones(x.shape[:1], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    return GaussianStats(jnp.sum(w), jnp.sum(w[:, None] * x, axis=0), (w[:, None] * x).T @ x)


def merge_stats(a: GaussianStats, b: GaussianStats) -> GaussianStats:
    """Statistics of the union of two samples."""
    return GaussianStats(a.count + b.count, a.total + b.total, a.outer + b.outer)


def stats_to_gaussian(stats: GaussianStats, ddof: int = 1) -> Gaussian:
    """The fit of :func:`fit_gaussian` on the pooled samples, from their statistics."""
    mean = stats.total / stats.count
    cov = (stats.outer - stats.count * jnp.outer(mean, mean)) / (stats.count - ddof)
    return Gaussian(mean, cov)


def sqrt_factor(cov: Float[ArrayLike, "D D"]) -> Float[Array, "D D"]:
    """A factor F with F Fᵀ = Σ from ``eigh`` with eigenvalues clipped at 0 (PSD, any rank)."""
    cov = jnp.asarray(cov)
    if cov.shape == (1, 1):  # 1-D: skip the eigensolver (a batched LAPACK call per chain)
        return jnp.sqrt(jnp.clip(cov, 0.0))
    w, v = jnp.linalg.eigh(0.5 * (cov + cov.T))
    return v * jnp.sqrt(jnp.clip(w, 0.0))[None, :]


def sample_gaussian(
    mean: Float[ArrayLike, " D"],
    cov: Float[ArrayLike, "D D"],
    num: int,
    lam: Float[ArrayLike, ""] = 1.0,
    *,
    key: Array,
) -> Float[Array, "N D"]:
    """Draws ``num`` samples x = μ + √λ · V diag(√w) z of N(μ, λΣ) (rank-deficient Σ allowed).

    Args:
      mean: μ.
      cov: Σ, symmetric positive semi-definite (negative round-off eigenvalues are clipped).
      num: Number of samples (static).
      lam: Sampling bias λ ∈ [0, 1]; scales the covariance.
      key: PRNG key.
    """
    mean = jnp.asarray(mean)
    factor = sqrt_factor(cov)
    z = jax.random.normal(key, (num, mean.shape[0]), mean.dtype)
    return mean[None, :] + jnp.sqrt(jnp.asarray(lam, mean.dtype)) * z @ factor.T


@dataclasses.dataclass(frozen=True)
class GaussianModel:
    """The Gaussian generative model for :func:`jaxlab.mad.run_loop` (hashable, static).

    Attributes:
      estimator: ``"unbiased"`` (1/(n − 1), the paper's) or ``"mle"`` (1/n, collapses faster).
    """

    estimator: str = "unbiased"

    def __post_init__(self):
        _ddof(self.estimator)

    def fit(self, x: Float[Array, "N D"], weights: Float[Array, " N"], *, key: Array) -> Gaussian:
        del key  # a closed-form fit
        return fit_gaussian(x, weights, ddof=_ddof(self.estimator))

    def sample(self, params: Gaussian, num: int, lam, *, key: Array) -> Float[Array, "N D"]:
        return sample_gaussian(params.mean, params.cov, num, lam, key=key)


def exact_chain_1d(
    n: int, lam: Float[ArrayLike, ""], generations: int, *, key: Array, dtype=None
) -> tuple[Float[Array, " G"], Float[Array, " G"]]:
    """One 1-D fully synthetic chain drawn from the exact conditional laws (truth N(0, 1)).

    μ_t = μ_{t−1} + √(λ_t σ²_{t−1}/n)·z and σ²_t = λ_t σ²_{t−1} · χ²_{n−1}/(n − 1), with λ_1 = 1
    (G_1 is fit to real data) and λ_t = λ for t ≥ 2. Equal in law to refitting
    :class:`GaussianModel` on n samples per generation, at O(1) cost per generation.

    Args:
      n: Samples per generation (n ≥ 2).
      lam: Sampling bias λ.
      generations: G, number of fitted generations t = 1..G (static).
      key: PRNG key (generation t uses ``fold_in(key, t)``).
      dtype: Float dtype (default: float64 under x64, else float32).

    Returns:
      (μ_t, σ_t²) for t = 1..G.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 for the unbiased variance, got {n}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    lam = jnp.asarray(lam, dtype)
    half = jnp.asarray((n - 1) / 2, dtype)

    def step(carry, t):
        mu, var = carry
        k_mu, k_var = jax.random.split(jax.random.fold_in(key, t))
        scale = jnp.where(t == 1, jnp.ones((), dtype), lam) * var
        mu = mu + jnp.sqrt(scale / n) * jax.random.normal(k_mu, (), dtype)
        var = scale * jax.random.gamma(k_var, half, (), dtype) / half  # χ²_{n−1}/(n−1)
        return (mu, var), (mu, var)

    init = (jnp.zeros((), dtype), jnp.ones((), dtype))
    _, (mus, vars_) = jax.lax.scan(step, init, jnp.arange(1, generations + 1))
    return mus, vars_


def expected_var(t: ArrayLike, lam: ArrayLike) -> Array:
    """E σ_t² / σ_0² = λ^{t−1} (G_1 real-fit convention)."""
    f = jnp.result_type(float)
    return jnp.power(jnp.asarray(lam, f), jnp.asarray(t, f) - 1)


def mean_cov_factor(t: ArrayLike, n: int, lam: ArrayLike) -> Array:
    """Cov μ_t / Σ_0 = (1/n)(1 − λ^t)/(1 − λ), equal to t/n at λ = 1."""
    f = jnp.result_type(float)
    t, lam = jnp.asarray(t, f), jnp.asarray(lam, f)
    safe = jnp.where(lam == 1, 0.5, lam)
    geometric = (1 - jnp.power(safe, t)) / (1 - safe)
    return jnp.where(lam == 1, t * jnp.ones_like(geometric), geometric) / n


def log_var_drift(n: int, lam: ArrayLike) -> Array:
    """E[ln σ_t² − ln σ_{t−1}²] = ln λ + ψ((n−1)/2) − ln((n−1)/2) ≈ ln λ − 1/(n − 1)."""
    half = jnp.asarray((n - 1) / 2, jnp.result_type(float))
    return jnp.log(jnp.asarray(lam, half.dtype)) + digamma(half) - jnp.log(half)


def median_var(t: ArrayLike, n: int, lam: ArrayLike) -> Array:
    """Median σ_t²/σ_0² ≈ λ^{t−1} exp{t[ψ((n−1)/2) − ln((n−1)/2)]} (ln σ_t² is a sum of i.i.d.)."""
    t = jnp.asarray(t, jnp.result_type(float))
    return expected_var(t, lam) * jnp.exp(t * log_var_drift(n, 1.0))


def standard_normal(dim: int, dtype=None):
    """``sample_real(num, key)`` for the truth N(0, I_dim), as :func:`jaxlab.mad.run_loop` takes."""
    return lambda num, key: jax.random.normal(
        key, (num, dim), jnp.result_type(float) if dtype is None else dtype
    )
