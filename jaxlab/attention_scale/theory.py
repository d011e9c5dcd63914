# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""The softmax scale that maximises the attention gradient, and attention entropy (mean field).

**Gradient objective (Su, kexue.fm/archives/9812).** For standardised scores ``s_1..s_n`` and
``p = softmax(α s)``, ``∂p_i/∂s_j = α (p_i δ_ij − p_i p_j)`` and half the entrywise L1 norm of
the Jacobian is exactly

    ½ ‖∂p/∂s‖₁ = α (1 − Σ_i p_i²).

Su's mean-field step replaces sums by expectations over the score distribution,
``Σ p_i² ≈ E[e^{2αs}] / (n E[e^{αs}]²)``:

* normal scores ``s ~ N(0, 1)``: ``f(α) = α (1 − e^{α² − ln n})``; ``f'(α) = 0`` is
  ``α² + ln(1 + 2α²) = ln n`` (solved by Newton in ``x = α²``); Su's fit ``α* ≈ 0.84 √ln n``;
* cosine scores (q, k ℓ2-normalised in ``R^d``, α multiplies cos): ``s = cos θ`` has density
  ``∝ (1 − s²)^{(d−3)/2}`` and ``g(α) = E e^{αs} = Γ(ν+1) (2/α)^ν I_ν(α)``, ``ν = d/2 − 1``.
  Here ``ln g`` is computed in log space by the trapezoidal rule in ``θ`` (the integrand
  ``e^{α cos θ} sin^{d−2} θ`` is even and 2π-periodic for even ``d``, so the rule converges
  geometrically; no power-series Bessel function). Su's fit for ``d = 128``: ``α* ≈ 3.5 ln n``.

**Entropy invariance (Su, kexue.fm/archives/8823).** With ``‖q‖ = ‖k‖ = √d`` and uniform key
directions, ``λ q·k = t s`` with ``t = λ d``; the mean-field entropy of a row over ``n`` keys is
``H ≈ ln n + ln g(t) − t (ln g)'(t)``. For ``t = d`` (λ = 1) a Laplace approximation gives a
correction per dimension of ``½ ln(1 − c*²)`` where ``c* = cos θ*`` solves ``c² + c − 1 = 0``,
i.e. ``−½ ln φ ≈ −0.2406`` (kexue.fm/archives/7695): the "0.24" of ``H ≈ ln n − 0.24 λ d``.

Every function is pure, jit-able and vmappable over ``n``, ``α`` and ``d``-free arguments;
inputs decide the dtype (float64 under ``jax.enable_x64``). The mean field is an approximation:
``jaxlab.attention_scale.monte_carlo`` evaluates the exact objective, which behaves differently.

References: Su (2023) kexue.fm/archives/9812; Su (2021) kexue.fm/archives/8823, /7695;
Chiang & Cholak (2022) arXiv:2202.12172.
"""

import math

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float

NUM_THETA = 1024  # trapezoid points in θ for the cosine MGF (exact to ~1e-12 for α <= 1000)
SU_GRID = tuple(40 * k for k in range(1, 501))  # Su's fit grid n = 40k, k = 1..500


def _float(x) -> Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def jacobian_objective(s: Float[Array, " n"], alpha: Float[ArrayLike, ""]) -> Float[Array, ""]:
    """The closed form ``α (1 − Σ p²)``, ``p = softmax(α s)`` (exact for any scores).

    Evaluated as ``α Σ p_i (1 − p_i)`` with ``1 − p_top = Σ_{j≠top} p_j`` for the largest
    probability, so a near one-hot softmax (large α) keeps full relative precision instead of
    cancelling in ``1 − Σp²``.

    References: Su (2023), kexue.fm/archives/9812.
    """
    s = _float(s)
    p = jax.nn.softmax(jnp.asarray(alpha, s.dtype) * s)
    is_top = jnp.arange(p.shape[0]) == jnp.argmax(p)
    complement = jnp.where(is_top, jnp.sum(jnp.where(is_top, 0.0, p)), 1.0 - p)
    return alpha * jnp.sum(p * complement)


def softmax_jacobian_half_l1(
    s: Float[Array, " n"], alpha: Float[ArrayLike, ""]
) -> Float[Array, ""]:
    """``½ Σ_ij |∂p_i/∂s_j|`` of ``p = softmax(α s)``, from ``jax.jacfwd`` (the identity's left)."""
    s = _float(s)
    jac = jax.jacfwd(lambda x: jax.nn.softmax(jnp.asarray(alpha, s.dtype) * x))(s)
    return 0.5 * jnp.sum(jnp.abs(jac))


def meanfield_objective_normal(
    alpha: Float[ArrayLike, "*a"], n: Float[ArrayLike, "*n"]
) -> Float[Array, "..."]:
    """Su's mean-field ``f(α) = α (1 − e^{α²}/n)`` for normal scores, as ``e^{α² − ln n}``.

    Elementwise (broadcasts ``alpha`` against ``n``)."""
    alpha, n = _float(alpha), _float(n)
    return alpha * (1.0 - jnp.exp(alpha * alpha - jnp.log(n)))


def alpha_star_normal(n: Float[ArrayLike, ""], num_iter: int = 40) -> Float[Array, ""]:
    """The maximiser of :func:`meanfield_objective_normal`: the root of ``α² + ln(1+2α²) = ln n``.

    Newton on ``G(x) = x + log1p(2x) − ln n`` in ``x = α²`` from ``x0 = max(0, ln n −
    log1p(2 ln n)) <= x*``: ``G`` is increasing and concave, so the iterates rise monotonically
    to the root (a fixed iteration count, so it jits and vmaps).

    Args:
      n: Number of keys (any float > 1).
      num_iter: Newton steps (quadratic convergence; 40 is far more than needed).

    Returns:
      ``α*(n)``; at the optimum the effective support ``1/Σp² = n e^{−α*²} = 1 + 2α*²``.
    """
    log_n = jnp.log(_float(n))

    def step(_, x):
        g = x + jnp.log1p(2 * x) - log_n
        return jnp.maximum(x - g / (1 + 2 / (1 + 2 * x)), 0.0)

    x0 = jnp.maximum(log_n - jnp.log1p(2 * log_n), 0.0)
    return jnp.sqrt(jax.lax.fori_loop(0, num_iter, step, x0))


def _theta_nodes(d: int, dtype):
    theta = jnp.arange(1, NUM_THETA, dtype=dtype) * (math.pi / NUM_THETA)
    log_w = (d - 2) * jnp.log(jnp.sin(theta))  # endpoints carry zero weight for d > 2
    return jnp.cos(theta), log_w


def log_mgf_cosine(alpha: Float[ArrayLike, ""], d: int) -> Float[Array, ""]:
    """``ln E[e^{α s}]`` for ``s`` the cosine of a uniformly random direction in ``R^d``.

    ``E e^{αs} = ∫ e^{α cos θ} sin^{d−2}θ dθ / ∫ sin^{d−2}θ dθ`` over ``[0, π]``, evaluated as a
    ``logsumexp`` over the trapezoid nodes (no overflow for α in the thousands). Equals
    ``ln[Γ(ν+1) (2/α)^ν I_ν(α)]``, ``ν = d/2 − 1``; ``≈ α²/(2d)`` for small α.

    Args:
      alpha: Multiplier of the cosine (any real).
      d: Dimension (static int >= 3).
    """
    if d < 3:
        raise ValueError(f"d must be >= 3, got {d}")
    alpha = _float(alpha)
    cos_t, log_w = _theta_nodes(d, alpha.dtype)
    return jax.nn.logsumexp(alpha * cos_t + log_w) - jax.nn.logsumexp(log_w)


def meanfield_objective_cosine(
    alpha: Float[ArrayLike, ""], n: Float[ArrayLike, ""], d: int
) -> Float[Array, ""]:
    """Su's mean-field ``f(α) = α (1 − g(2α) / (n g(α)²))`` for cosine scores in ``R^d``."""
    alpha, n = _float(alpha), _float(n)
    log_ratio = log_mgf_cosine(2 * alpha, d) - 2 * log_mgf_cosine(alpha, d) - jnp.log(n)
    return alpha * (1.0 - jnp.exp(log_ratio))


def alpha_star_cosine(
    n: Float[ArrayLike, ""],
    d: int,
    *,
    bracket: tuple[float, float] = (1.0, 200.0),
    num_iter: int = 64,
) -> Float[Array, ""]:
    """The maximiser of :func:`meanfield_objective_cosine` by bisection on ``f'`` (``jax.grad``).

    ``f`` is unimodal on the bracket (``f' > 0`` at 1 for ``n >= 2``, ``< 0`` at 200 for the
    ``n, d`` of Su's tables); 64 halvings resolve the bracket to float64 precision.
    """
    n = _float(n)
    grad = jax.grad(lambda a: meanfield_objective_cosine(a, n, d))

    def step(_, lo_hi):
        lo, hi = lo_hi
        mid = 0.5 * (lo + hi)
        rising = grad(mid) > 0
        return jnp.where(rising, mid, lo), jnp.where(rising, hi, mid)

    lo, hi = jax.lax.fori_loop(
        0, num_iter, step, (jnp.asarray(bracket[0], n.dtype), jnp.asarray(bracket[1], n.dtype))
    )
    return 0.5 * (lo + hi)


def fit_through_origin(x: Float[ArrayLike, " N"], y: Float[ArrayLike, " N"]) -> Float[Array, ""]:
    """Least squares ``y ≈ c x`` through the origin, ``c = Σxy / Σx²`` (Su's c √ln n, c ln n)."""
    x, y = _float(x), _float(y)
    return jnp.sum(x * y) / jnp.sum(x * x)


def meanfield_entropy(n: Float[ArrayLike, ""], t: Float[ArrayLike, ""], d: int) -> Float[Array, ""]:
    """Mean-field attention entropy ``ln n + ln g(t) − t (ln g)'(t)`` of the 8823 model.

    Args:
      n: Keys attended by the row.
      t: ``λ d``: the logit multiplier ``λ`` times ``d`` (``q·k = d cos θ``); the standard scale
        ``λ = 1/√d`` is ``t = √d``.
      d: Head dimension (static).

    References: Su (2021), kexue.fm/archives/8823.
    """
    t = _float(t)
    log_g, dlog_g = jax.value_and_grad(lambda a: log_mgf_cosine(a, d))(t)
    return jnp.log(_float(n)) + log_g - t * dlog_g


def entropy_correction_per_dim(d: int, lam: float = 1.0, dtype=jnp.float32) -> Float[Array, ""]:
    """``(H − ln n)/d`` of :func:`meanfield_entropy` at ``λ`` (``t = λ d``); → −0.2406 for λ = 1."""
    t = jnp.asarray(lam * d, dtype)
    return (meanfield_entropy(jnp.asarray(1.0, dtype), t, d)) / d


def laplace_entropy_constant(dtype=jnp.float32) -> Float[Array, ""]:
    """The 0.24 of 8823: the λ = 1 Laplace limit of the entropy correction per dimension.

    ``d (cos θ + ln sin θ)`` peaks where ``−sin θ + cos θ/sin θ = 0``, i.e. ``c = sin²θ = 1 − c²``,
    ``c* = (√5 − 1)/2``; ``ln E e^{d s} − d E_λ[s] → d (c* + ½ ln(1 − c*²)) − d c*``, so the
    correction per dimension is ``½ ln(1 − c*²) = ½ ln c* = −½ ln φ ≈ −0.2406``.

    References: Su (2020), kexue.fm/archives/7695; Su (2021), kexue.fm/archives/8823.
    """
    c = (jnp.sqrt(jnp.asarray(5.0, dtype)) - 1) / 2  # positive root of c² + c − 1 = 0
    return 0.5 * jnp.log1p(-c * c)
