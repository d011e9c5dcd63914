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
import math
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


def sqrt_factor(cov: Float[ArrayLike, "D D"]) -> Array:
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
) -> Array:
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

    def sample(self, params: Gaussian, num: int, lam, *, key: Array) -> Array:
        return sample_gaussian(params.mean, params.cov, num, lam, key=key)


def gamma_marsaglia_tsang(key: Array, alpha: float, shape: tuple[int, ...], dtype=None) -> Array:
    """Exact Gamma(α, 1) draws by Marsaglia–Tsang rejection, every proposal of a round at once.

    With d = α − 1/3 and c = 1/√(9d): x ~ N(0, 1), v = (1 + cx)³, u ~ U(0, 1); accept d·v when
    v > 0 and ln u < x²/2 + d − dv + d ln v. All entries get a proposal in one vectorised draw;
    a ``while_loop`` redraws (``fold_in(key, round)``) until every entry has accepted (acceptance
    > 95 % for α ≥ 1, ~99.8 % at α = 49.5). For α < 1: Gamma(α + 1)·U^{1/α}. Cheaper under
    ``vmap`` than :func:`jax.random.gamma`, which draws each entry in its own rejection loop.

    Args:
      key: PRNG key.
      alpha: Shape α > 0 (static).
      shape: Output shape.
      dtype: Float dtype (default: float64 under x64, else float32).

    References: G. Marsaglia and W. W. Tsang (2000), "A simple method for generating gamma
    variables", ACM TOMS 26(3), 363–372.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    if alpha < 1:
        k_g, k_u = jax.random.split(key)
        u = jax.random.uniform(k_u, shape, dtype, minval=jnp.finfo(dtype).tiny)
        return gamma_marsaglia_tsang(k_g, alpha + 1, shape, dtype) * u ** (1 / alpha)
    d = alpha - 1 / 3
    c = 1 / math.sqrt(9 * d)

    def propose(k):
        k_x, k_u = jax.random.split(k)
        x = jax.random.normal(k_x, shape, dtype)
        u = jax.random.uniform(k_u, shape, dtype)
        v = (1 + c * x) ** 3
        log_v = jnp.log(jnp.where(v > 0, v, 1.0))
        ok = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * v + d * log_v)
        return ok, d * v

    def round_(state):
        ok, g, i = state
        ok_new, g_new = propose(jax.random.fold_in(key, i))
        return ok | ok_new, jnp.where(ok, g, g_new), i + 1

    ok, g = propose(jax.random.fold_in(key, 0))
    _, g, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[0]), round_, (ok, g, 1))
    return g


DRAWS = ("scan", "bulk")


def exact_chain_1d(
    n: int,
    lam: Float[ArrayLike, ""],
    generations: int,
    *,
    key: Array,
    dtype=None,
    draws: str = "scan",
) -> tuple[Float[Array, " G"], Float[Array, " G"]]:
    """One 1-D fully synthetic chain drawn from the exact conditional laws (truth N(0, 1)).

    μ_t = μ_{t−1} + √(λ_t σ²_{t−1}/n)·z and σ²_t = λ_t σ²_{t−1} · χ²_{n−1}/(n − 1), with λ_1 = 1
    (G_1 is fit to real data) and λ_t = λ for t ≥ 2. Equal in law to refitting
    :class:`GaussianModel` on n samples per generation, at O(1) cost per generation.

    Args:
      n: Samples per generation (n ≥ 2).
      lam: Sampling bias λ.
      generations: G, number of fitted generations t = 1..G (static).
      key: PRNG key (``"scan"``: generation t uses ``fold_in(key, t)``).
      dtype: Float dtype (default: float64 under x64, else float32).
      draws: ``"scan"`` (a ``lax.scan`` drawing z and χ² per generation with
        :func:`jax.random.gamma`) or ``"bulk"`` (all G normals and χ² at once, the χ² by
        :func:`gamma_marsaglia_tsang`, then σ²_t as a cumulative product and μ_t as a cumulative
        sum). Same law, different random streams.

    Returns:
      (μ_t, σ_t²) for t = 1..G.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 for the unbiased variance, got {n}")
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {DRAWS}, got {draws!r}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    lam = jnp.asarray(lam, dtype)
    half = jnp.asarray((n - 1) / 2, dtype)
    if draws == "bulk":
        k_mu, k_var = jax.random.split(key)
        lam_t = jnp.where(jnp.arange(generations) == 0, jnp.ones((), dtype), lam)
        z = jax.random.normal(k_mu, (generations,), dtype)
        chi = gamma_marsaglia_tsang(k_var, (n - 1) / 2, (generations,), dtype) / half
        var = jnp.cumprod(lam_t * chi)
        prev = jnp.concatenate([jnp.ones((1,), dtype), var[:-1]])
        return jnp.cumsum(jnp.sqrt(lam_t * prev / n) * z), var

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
