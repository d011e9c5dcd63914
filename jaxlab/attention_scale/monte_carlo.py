# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""The exact gradient objective and attention entropy under random scores (Monte Carlo).

Su's α* (kexue.fm/archives/9812) maximises a *mean-field* approximation of
``E[α (1 − Σ p²)]``. Simulating the exact objective tells a different story: with i.i.d.
normal scores the **mean** keeps rising in α and plateaus (as α → ∞, ``1 − Σp²`` vanishes
except when the top two scores are within ``O(1/α)``, an event of probability ``∝ 1/α`` set by
the density of the top gap at 0), so it has no interior maximum; the **median** over draws
peaks, but at α ≈ 5–8, far beyond the mean-field α* ≈ 1.5–2.5. Both are returned so that the
disagreement is visible rather than hidden.

Scores: ``normal`` draws ``s ~ N(0, 1)``; ``cosine`` draws the cosine of a uniformly random
direction in ``R^d`` as ``z_1/‖z‖``, ``z ~ N(0, I_d)`` (density ``∝ (1 − s²)^{(d−3)/2}``).

References: Su (2023), kexue.fm/archives/9812; Su (2021), kexue.fm/archives/8823.
"""

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Bool, Float
from jaxlab.attention_scale import theory

SCORE_KINDS = ("normal", "cosine")


def sample_scores(
    n: int, kind: str = "normal", d: int | None = None, *, key: jax.Array, dtype=jnp.float32
) -> Float[Array, " n"]:
    """``n`` i.i.d. scores of ``kind`` (``normal``, or ``cosine`` in ``R^d``)."""
    if kind == "normal":
        return jax.random.normal(key, (n,), dtype)
    if kind == "cosine":
        if d is None or d < 3:
            raise ValueError(f"cosine scores need d >= 3, got d={d}")
        z = jax.random.normal(key, (n, d), dtype)  # cos to a fixed axis of a random direction
        return z[:, 0] * jax.lax.rsqrt(jnp.sum(z * z, axis=-1))
    raise ValueError(f"kind must be one of {SCORE_KINDS}, got {kind!r}")


def exact_objective_mc(
    alphas: Float[ArrayLike, " A"],
    n: int,
    num_draws: int,
    kind: str = "normal",
    d: int | None = None,
    *,
    key: jax.Array,
    batch_size: int = 256,
) -> tuple[Float[Array, " A"], Float[Array, " A"]]:
    """Mean and median over draws of the exact ``α (1 − Σ p²)``, ``p = softmax(α s)``.

    Every α of the grid sees the same draws (common random numbers), so curves are smooth.

    Args:
      alphas: Grid of multipliers.
      n: Keys per draw (static).
      num_draws: Number of independent score vectors.
      kind: ``"normal"`` or ``"cosine"`` (then ``d`` is required).
      d: Dimension for cosine scores.
      key: PRNG key.
      batch_size: Draws per vectorised batch (bounds memory at large ``n``).

    Returns:
      ``(mean [A], median [A])``.
    """
    alphas = jnp.asarray(alphas)
    dtype = alphas.dtype if jnp.issubdtype(alphas.dtype, jnp.floating) else jnp.float32
    alphas = alphas.astype(dtype)

    def one(draw_key):
        s = sample_scores(n, kind, d, key=draw_key, dtype=dtype)
        return jax.vmap(theory.jacobian_objective, in_axes=(None, 0))(s, alphas)

    if kind == "cosine":  # each draw holds n·d normals: bound the batch to ~4M floats
        batch_size = max(1, min(batch_size, (1 << 22) // (n * d)))
    values_NA = jax.lax.map(one, jax.random.split(key, num_draws), batch_size=batch_size)
    return values_NA.mean(0), jnp.median(values_NA, axis=0)


def attention_entropy(
    logits: Float[Array, "*rows n"], mask: Bool[Array, "*rows n"] | None = None
) -> Float[Array, "*rows"]:
    """Shannon entropy (nats) of ``softmax`` over the unmasked entries of each row."""
    logits = jnp.asarray(logits)
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    logp = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(logp)
    return -jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)


def entropy_mc(
    t: Float[ArrayLike, ""], n: int, d: int, num_draws: int, *, key: jax.Array
) -> Float[Array, ""]:
    """Mean attention entropy of a row over ``n`` keys in the 8823 model, by simulation.

    Logits are ``λ q·k = t s`` with ``t = λ d`` (``‖q‖ = ‖k‖ = √d``) and ``s`` the cosine of
    a random direction in ``R^d``; compare with :func:`theory.meanfield_entropy`.
    """
    t = jnp.asarray(t, jnp.float32)

    def one(draw_key):
        return attention_entropy(t * sample_scores(n, "cosine", d, key=draw_key))

    batch_size = max(1, min(256, (1 << 22) // (n * d)))
    return jax.lax.map(one, jax.random.split(key, num_draws), batch_size=batch_size).mean()


def bootstrap_mean_ci(
    values: Float[ArrayLike, " N"],
    *,
    key: jax.Array,
    num_resamples: int = 2000,
    level: float = 0.95,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval.

    Used for paired per-window differences (e.g. accuracy of two scale rules on the same
    evaluation windows): resample windows with replacement, take the mean, read the
    ``(1 ± level)/2`` quantiles.

    Returns:
      ``(mean, lo, hi)``.
    """
    values = jnp.asarray(values, jnp.float32)
    idx = jax.random.randint(key, (num_resamples, values.shape[0]), 0, values.shape[0])
    means = values[idx].mean(-1)
    tail = (1.0 - level) / 2
    lo, hi = jnp.quantile(means, jnp.array([tail, 1.0 - tail], jnp.float32))
    return values.mean(), lo, hi
