"""The quantization model of neural scaling: Zipf-used quanta, L(N), L(D), L(S), power-law fits.

A task is solved by discrete "quanta" of ability; quantum k is needed by a fraction

    p_k = k^{-(γ+1)} / ζ(γ+1),   k = 1, 2, ...,   γ > 0,

of the samples, and quanta are learned most-frequent first. A model holding the top n quanta has
loss L(n) = a + (b - a) T_γ(n) with the tail mass T_γ(n) = Σ_{k>n} p_k = ζ(γ+1, n+1) / ζ(γ+1)
(ζ(s, q) the Hurwitz zeta function), so L - a ∝ n^{-γ}. With n ∝ N (parameters) this gives
α_N = γ; with "quantum k is learned iff it was seen at least τ times" and D samples (or S steps of
batch B, D = S·B) it gives α_D = α_S = γ/(γ+1).

**Notation.** Su's γ = the paper's α = the reference code's ``alpha`` − 1. This module only uses
``gamma``; the sparse-parity generator's Zipf exponent is ``alpha_code = gamma + 1``.

Losses are in the units of the floors ``a`` (loss of a learned quantum) and ``b`` (unlearned);
pass nats and convert with :func:`to_bits` (chance on a binary task is b = ln 2 nats = 1 bit).
Every function is written for one configuration, jit-able and vmappable over γ, n, N, D, τ and
keys; ``jaxlab.quanta.simulate_grid`` vmaps a whole grid into one program. Run theory
code in float64 (``jax.enable_x64``): for small γ the tail varies slowly and float32 loses digits.

References:
  Michaud, Liu, Girit, Tegmark, "The Quantization Model of Neural Scaling", NeurIPS 2023,
  https://arxiv.org/abs/2303.13506.
  Su Jianlin, "A quantization-model view of LLM scaling laws" (2023-05-18),
  https://kexue.fm/archives/9607.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import zeta
from jaxtyping import Real

from jaxlab.array_types import Array, ArrayLike, Float, Int

NATS_PER_BIT = math.log(2.0)


def _float(x, dtype=None) -> Array:
    return jnp.asarray(x, dtype=jnp.result_type(float) if dtype is None else dtype)


def to_bits(loss_nats: Real[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
    """Converts a loss in nats to bits (divides by ln 2)."""
    return _float(loss_nats) / NATS_PER_BIT


def zipf_probs(gamma: Real[ArrayLike, ""], num_quanta: int, *, dtype=None) -> Float[Array, " K"]:
    """Use frequencies p_k = k^{-(γ+1)} / Σ_{j≤K} j^{-(γ+1)} of K quanta (finite, normalised).

    Args:
      gamma: Zipf exponent γ > 0 (the paper's α; ``alpha_code - 1``).
      num_quanta: K, static.
      dtype: Float dtype; default float64 under ``jax_enable_x64``, else float32.
    """
    k = jnp.arange(1, num_quanta + 1, dtype=dtype or jnp.result_type(float))
    w = k ** -(_float(gamma, k.dtype) + 1)
    return w / jnp.sum(w)


def tail_mass(
    n: Real[ArrayLike, ""], gamma: Real[ArrayLike, ""], *, dtype=None
) -> Float[Array, ""]:
    """Exact tail T_γ(n) = Σ_{k>n} p_k = ζ(γ+1, n+1) / ζ(γ+1) over infinitely many quanta.

    Args:
      n: Number of learned (most frequent) quanta, n ≥ 0 (real n gives the smooth extension).
      gamma: γ > 0.
      dtype: Float dtype (default: float64 under x64, else float32).
    """
    s = _float(gamma, dtype) + 1
    return zeta(s, _float(n, s.dtype) + 1) / zeta(s, jnp.ones_like(s))


def tail_mass_asymptotic(
    n: Real[ArrayLike, ""], gamma: Real[ArrayLike, ""], *, half_shift: bool = True, dtype=None
) -> Float[Array, ""]:
    """Large-n tail T_γ(n) ≈ (n + ½)^{-γ} / (γ ζ(γ+1)) (or n^{-γ}/(γ ζ(γ+1)) without the shift).

    The half shift is the midpoint rule Σ_{k>n} k^{-s} ≈ ∫_{n+½}^∞ x^{-s} dx; its relative error
    is below 1e-3 at n = 10 for γ ≤ 1.
    """
    g = _float(gamma, dtype)
    m = _float(n, g.dtype) + (0.5 if half_shift else 0.0)
    return m**-g / (g * zeta(g + 1, jnp.ones_like(g)))


def tail_mass_finite(
    n: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    num_quanta: Real[ArrayLike, ""],
    *,
    dtype=None,
) -> Float[Array, ""]:
    """Tail Σ_{n<k≤K} p_k with p normalised over K quanta only (the biased finite-K model).

    Equals (ζ(s, n+1) − ζ(s, K+1)) / (ζ(s) − ζ(s, K+1)), s = γ+1, and 0 for n ≥ K. It behaves like
    n^{-γ} − K^{-γ}, which bends the log–log curve: K = 1e7, γ = 0.2 fits a slope ≈ −0.23 over
    n ∈ [10, 1e4] instead of −0.2. Shown for comparison; use :func:`tail_mass` for the law.
    """
    s = _float(gamma, dtype) + 1
    n, k_max = _float(n, s.dtype), _float(num_quanta, s.dtype)
    rest = zeta(s, k_max + 1)
    tail = (zeta(s, jnp.minimum(n, k_max) + 1) - rest) / (zeta(s, jnp.ones_like(s)) - rest)
    return jnp.where(n >= k_max, jnp.zeros_like(tail), tail)


def loss_of_quanta(
    n: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    a: Real[ArrayLike, ""] = 0.0,
    b: Real[ArrayLike, ""] = 1.0,
    *,
    num_quanta: Real[ArrayLike, ""] | None = None,
    dtype=None,
) -> Float[Array, ""]:
    """L(n) = a + (b − a) T_γ(n): loss of a model holding the n most frequent quanta.

    Args:
      n: Quanta held, n ≥ 0.
      gamma: γ > 0.
      a: Loss on samples whose quantum is learned (floor).
      b: Loss on samples whose quantum is not learned (e.g. ln 2 nats on a binary task).
      num_quanta: None for the exact infinite tail; K for the finite-K normalisation.
      dtype: Float dtype.
    """
    if num_quanta is None:
        t = tail_mass(n, gamma, dtype=dtype)
    else:
        t = tail_mass_finite(n, gamma, num_quanta, dtype=dtype)
    return _float(a, t.dtype) + (_float(b, t.dtype) - _float(a, t.dtype)) * t


def quanta_of_parameters(
    num_params: Real[ArrayLike, ""], params_per_quantum: Real[ArrayLike, ""] = 1.0, *, dtype=None
) -> Float[Array, ""]:
    """Parameter law n(N) = ⌊N / C⌋: every quantum costs C parameters."""
    return jnp.floor(_float(num_params, dtype) / _float(params_per_quantum, dtype))


def loss_of_parameters(
    num_params: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    a: Real[ArrayLike, ""] = 0.0,
    b: Real[ArrayLike, ""] = 1.0,
    *,
    params_per_quantum: Real[ArrayLike, ""] = 1.0,
    num_quanta: Real[ArrayLike, ""] | None = None,
    dtype=None,
) -> Float[Array, ""]:
    """L(N) = L(n = ⌊N/C⌋) with unlimited data: L − a ∝ N^{-γ}, so α_N = γ."""
    n = quanta_of_parameters(num_params, params_per_quantum, dtype=dtype)
    return loss_of_quanta(n, gamma, a, b, num_quanta=num_quanta, dtype=dtype)


def learned_from_data(
    data: Real[ArrayLike, ""], gamma: Real[ArrayLike, ""], tau: Real[ArrayLike, ""], *, dtype=None
) -> Float[Array, ""]:
    """Floor rule n(D) = #{k : D p_k ≥ τ} = ⌊(D / (τ ζ(γ+1)))^{1/(γ+1)}⌋.

    Quantum k has D p_k training samples and is learned iff that is at least τ. The power is
    followed by a ±1 correction so that n(D) agrees with the rule itself at exact integers.
    """
    s = _float(gamma, dtype) + 1
    ratio = _float(data, s.dtype) / (_float(tau, s.dtype) * zeta(s, jnp.ones_like(s)))
    n = jnp.floor(ratio ** (1 / s))
    n = jnp.where((n + 1) ** s <= ratio, n + 1, n)
    n = jnp.where((n > 0) & (n**s > ratio), n - 1, n)
    return jnp.maximum(n, 0)


def data_for_quanta(
    n: Real[ArrayLike, ""], gamma: Real[ArrayLike, ""], tau: Real[ArrayLike, ""], *, dtype=None
) -> Float[Array, ""]:
    """Inverse of the floor rule: D = τ ζ(γ+1) n^{γ+1}, the data at which quantum n is learned."""
    s = _float(gamma, dtype) + 1
    return _float(tau, s.dtype) * zeta(s, jnp.ones_like(s)) * _float(n, s.dtype) ** s


def loss_of_data(
    data: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    tau: Real[ArrayLike, ""],
    a: Real[ArrayLike, ""] = 0.0,
    b: Real[ArrayLike, ""] = 1.0,
    *,
    dtype=None,
) -> Float[Array, ""]:
    """L(D) = L(n(D)) with the floor rule and unlimited parameters: α_D = γ/(γ+1)."""
    return loss_of_quanta(
        learned_from_data(data, gamma, tau, dtype=dtype), gamma, a, b, dtype=dtype
    )


def loss_of_data_asymptotic(
    data: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    tau: Real[ArrayLike, ""],
    a: Real[ArrayLike, ""] = 0.0,
    b: Real[ArrayLike, ""] = 1.0,
    *,
    dtype=None,
) -> Float[Array, ""]:
    """Explicit data law L(D) ≈ a + (b − a) / (γ ζ(γ+1)) · (τ ζ(γ+1) / D)^{γ/(γ+1)}."""
    g = _float(gamma, dtype)
    z = zeta(g + 1, jnp.ones_like(g))
    a, b = _float(a, g.dtype), _float(b, g.dtype)
    return a + (b - a) / (g * z) * (_float(tau, g.dtype) * z / _float(data, g.dtype)) ** (
        g / (g + 1)
    )


def loss_of_steps(
    steps: Real[ArrayLike, ""],
    batch: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    tau: Real[ArrayLike, ""],
    a: Real[ArrayLike, ""] = 0.0,
    b: Real[ArrayLike, ""] = 1.0,
    *,
    dtype=None,
) -> Float[Array, ""]:
    """L(S) for one epoch of S steps at batch B: the data law at D = S·B, so α_S = γ/(γ+1)."""
    return loss_of_data(_float(steps, dtype) * _float(batch, dtype), gamma, tau, a, b, dtype=dtype)


def poisson_truncation_bound(
    data: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    tau: Real[ArrayLike, ""],
    num_quanta: Real[ArrayLike, ""],
    *,
    dtype=None,
) -> Float[Array, ""]:
    """Upper bound on the expected probability mass of learned quanta beyond K (Poisson counts).

    With c_k ~ Poisson(λ_k), λ_k = D p_k and t = ⌈τ⌉ ≥ 1, Chernoff gives P(c_k ≥ t) ≤ (e λ_k/t)^t,
    so E Σ_{k>K} p_k 1[c_k ≥ τ] ≤ (e D/t)^t ζ(s(t+1), K+1) / ζ(s)^{t+1}, s = γ+1.
    """
    s = _float(gamma, dtype) + 1
    t = jnp.maximum(jnp.ceil(_float(tau, s.dtype)), 1)
    log_bound = (
        t * (1 + jnp.log(_float(data, s.dtype)) - jnp.log(t))
        + jnp.log(zeta(s * (t + 1), _float(num_quanta, s.dtype) + 1))
        - (t + 1) * jnp.log(zeta(s, jnp.ones_like(s)))
    )
    return jnp.exp(log_bound)


def loss_of_data_poisson(
    data: Real[ArrayLike, ""],
    gamma: Real[ArrayLike, ""],
    tau: Real[ArrayLike, ""],
    a: Real[ArrayLike, ""] = 0.0,
    b: Real[ArrayLike, ""] = 1.0,
    *,
    num_quanta: int,
    capacity: Real[ArrayLike, ""] | None = None,
    max_truncation: float = 1e-3,
    dtype=None,
    key: Array,
) -> Float[Array, ""]:
    """L(D) when quantum k is learned iff its Poisson(D p_k) sample count reaches τ.

    Counts are sampled for k ≤ K; quanta beyond K count as unlearned and contribute the exact
    remainder T_γ(K). The unlearned mass is Σ_{k≤m} p_k 1[c_k < τ] + T_γ(m), m = min(n_cap, K),
    where n_cap is the parameter capacity (quanta past it are never learned).

    Args:
      data: Number of training samples D.
      gamma: γ > 0.
      tau: Learning threshold τ ≥ 1 (samples needed to learn a quantum).
      a: Loss floor of a learned quantum.
      b: Loss of an unlearned quantum.
      num_quanta: K, static: quanta whose counts are sampled.
      capacity: Quanta the parameters can hold (⌊N/C⌋); None for unlimited.
      max_truncation: Largest allowed :func:`poisson_truncation_bound` relative to the
        unlearned mass when the capacity exceeds K.
      dtype: Float dtype.
      key: PRNG key for the counts.

    Returns:
      The loss, or NaN if K is too small for D (the truncation bound exceeds ``max_truncation``
      times the unlearned mass): this stands in for an assertion that also works under jit/vmap.
    """
    s = _float(gamma, dtype) + 1
    k = jnp.arange(1, num_quanta + 1, dtype=s.dtype)
    p_K = k**-s / zeta(s, jnp.ones_like(s))
    counts_K = jax.random.poisson(key, _float(data, s.dtype) * p_K, dtype=jnp.int32)
    cap = _float(jnp.inf if capacity is None else capacity, s.dtype)
    losses = poisson_losses_for_capacities(
        counts_K, p_K, data, gamma, tau, cap[None], a, b, max_truncation
    )
    return losses[0]


def poisson_losses_for_capacities(
    counts_K, p_K, data, gamma, tau, caps_C, a, b, max_truncation
) -> Array:
    """Losses for several capacities ``caps_C`` from one vector of sampled counts.

    One cumulative sum of the missed quanta's frequencies, then a gather per capacity; NaN where
    ``num_quanta`` is too small for the truncation bound (see :func:`loss_of_data_poisson`).
    """
    dtype = p_K.dtype
    num_quanta = p_K.shape[0]
    missed_K = counts_K.astype(dtype) < _float(tau, dtype)
    cum = jnp.concatenate([jnp.zeros(1, dtype), jnp.cumsum(jnp.where(missed_K, p_K, 0))])
    m_C = jnp.minimum(caps_C, num_quanta)
    tail_C = jax.vmap(lambda m: tail_mass(m, gamma, dtype=dtype))(m_C)
    unlearned_C = cum[m_C.astype(jnp.int32)] + tail_C
    bound = poisson_truncation_bound(data, gamma, tau, num_quanta, dtype=dtype)
    ok_C = (caps_C <= num_quanta) | (bound <= max_truncation * unlearned_C)
    a, b = _float(a, dtype), _float(b, dtype)
    return jnp.where(ok_C, a + (b - a) * unlearned_C, jnp.nan)


class PowerLawFit(NamedTuple):
    """Result of :func:`fit_power_law`: y ≈ prefactor · x^exponent."""

    exponent: Float[Array, ""]  # signed log–log slope (negative for a decaying loss)
    prefactor: Float[Array, ""]
    ci_low: Float[Array, ""]  # bootstrap percentile interval of the exponent (NaN if no bootstrap)
    ci_high: Float[Array, ""]
    r_squared: Float[Array, ""]
    num_points: Int[Array, ""]  # points inside the window that entered the fit


def _weighted_line(u, v, w):
    sw = jnp.sum(w)
    mu, mv = jnp.sum(w * u) / sw, jnp.sum(w * v) / sw
    suu = jnp.sum(w * (u - mu) ** 2)
    slope = jnp.sum(w * (u - mu) * (v - mv)) / suu
    return slope, mv - slope * mu


def fit_power_law(
    x: Real[ArrayLike, " N"],
    y: Real[ArrayLike, " N"],
    *,
    window: tuple[float | Array, float | Array] | None = None,
    num_bootstrap: int = 0,
    ci: float = 0.95,
    key: Array | None = None,
) -> PowerLawFit:
    """Least-squares fit of log y = log prefactor + exponent · log x over a window of x.

    Points with x outside ``[lo, hi]``, x ≤ 0, y ≤ 0 or non-finite values are left out by a mask,
    so shapes stay static and the fit is jit-able and vmappable (e.g. over seeds). The confidence
    interval is the nonparametric bootstrap: resample the in-window points with replacement
    ``num_bootstrap`` times, refit, and take the (1 ± ci)/2 percentiles of the exponents.

    Args:
      x: Scale variable (N, D, S, n), shape (N,).
      y: Loss (minus its floor, if any), shape (N,).
      window: Inclusive (lo, hi) range of x to fit; None for all points.
      num_bootstrap: Bootstrap resamples (static); 0 gives ci_low = ci_high = NaN.
      ci: Confidence level of the interval.
      key: PRNG key, required when ``num_bootstrap > 0``.

    Returns:
      A :class:`PowerLawFit`; ``exponent`` is signed, e.g. ≈ −0.4 for L ∝ N^{-0.4}.

    Examples:
      >>> x = jnp.array([1.0, 10.0, 100.0])
      >>> round(float(fit_power_law(x, 3.0 * x**-0.5).exponent), 6)
      -0.5
    """
    y = jnp.asarray(y)
    dtype = y.dtype if jnp.issubdtype(y.dtype, jnp.floating) else jnp.result_type(float)
    x, y = jnp.asarray(x).astype(dtype), y.astype(dtype)
    mask = (x > 0) & (y > 0) & jnp.isfinite(x) & jnp.isfinite(y)
    if window is not None:
        mask = mask & (x >= window[0]) & (x <= window[1])
    u = jnp.log(jnp.where(mask, x, 1))
    v = jnp.log(jnp.where(mask, y, 1))
    w = mask.astype(dtype)
    slope, intercept = _weighted_line(u, v, w)
    resid = jnp.sum(w * (v - intercept - slope * u) ** 2)
    total = jnp.sum(w * (v - jnp.sum(w * v) / jnp.sum(w)) ** 2)
    num_points = jnp.sum(mask.astype(jnp.int32))
    nan = jnp.full((), jnp.nan, dtype)
    lo = hi = nan
    if num_bootstrap > 0:
        if key is None:
            raise ValueError("fit_power_law: num_bootstrap > 0 needs a key")
        lo, hi = _bootstrap_ci(u, v, mask, num_points, num_bootstrap, ci, key)
    return PowerLawFit(slope, jnp.exp(intercept), lo, hi, 1 - resid / total, num_points)


def _bootstrap_ci(u, v, mask, num_points, num_bootstrap, ci, key):
    # Draw indices among the in-window points; keep the first num_points draws of each resample.
    n = u.shape[0]
    logits = jnp.where(mask, 0.0, -jnp.inf).astype(u.dtype)
    idx_RN = jax.random.categorical(key, logits, shape=(num_bootstrap, n))
    used_N = jnp.arange(n) < num_points
    w_RN = jnp.sum(
        jax.nn.one_hot(idx_RN, n, dtype=u.dtype) * used_N[None, :, None].astype(u.dtype), axis=1
    )
    slopes_R = jax.vmap(lambda w: _weighted_line(u, v, w)[0])(w_RN)
    q = jnp.array([(1 - ci) / 2, (1 + ci) / 2], dtype=u.dtype) * 100
    lo, hi = jnp.nanpercentile(slopes_R, q)
    return lo, hi


__all__ = [
    "NATS_PER_BIT",
    "PowerLawFit",
    "fit_power_law",
    "data_for_quanta",
    "learned_from_data",
    "loss_of_data",
    "loss_of_data_asymptotic",
    "loss_of_data_poisson",
    "loss_of_parameters",
    "loss_of_quanta",
    "loss_of_steps",
    "poisson_losses_for_capacities",
    "poisson_truncation_bound",
    "quanta_of_parameters",
    "tail_mass",
    "tail_mass_asymptotic",
    "tail_mass_finite",
    "to_bits",
    "zipf_probs",
]
