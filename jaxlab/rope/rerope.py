# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""ReRoPE and Leaky ReRoPE: attention logits with clipped (or compressed) relative positions.

Within a window ``w`` the relative position ``n - m`` is used as is; beyond it ReRoPE clips it to
``w`` and Leaky ReRoPE continues with slope ``1/k``: ``w + (n - m - w)/k``. Because RoPE logits
depend only on relative positions, the prefill form builds two logit matrices (plain RoPE, and a
constant-shift form) and merges them with a mask; the decode form rotates pre-RoPE cached keys by
the per-key shift for one query. Both agree with a brute-force clipped-position reference.

References: Su (2023), kexue.fm/archives/9708 (ReRoPE).
"""

import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Int
from jaxlab.rope.rotate import apply_rope


def rerope_logits(
    q: Float[Array, "L K"],
    k: Float[Array, "L K"],
    *,
    inv_freq: Float[Array, " P"],
    window: int | Int[ArrayLike, ""],
    leaky_k: float | Float[ArrayLike, ""] | None = None,
    positions: Int[Array, " L"] | None = None,
    causal: bool = True,
    attention_factor: float | Float[ArrayLike, ""] = 1.0,
    layout: str = "half",
) -> Float[Array, "L L"]:
    """ReRoPE / Leaky ReRoPE prefill logits ``q_i·k_j`` (unscaled), one head, two matrices merged.

    Relative position ``r = i - j`` is kept for ``r < w`` and becomes ``w + (r - w)/k`` beyond
    (Leaky); ReRoPE is ``k → ∞``, i.e. ``min(r, w)``. With ``a¹_ij = (R^i q_i)·(R^j k_j)`` and
    ``a²_ij = (R^{w + (i-w)/k} q_i)·(R^{j/k} k_j)`` (``(R^w q_i)·k_j`` for ReRoPE), the logits are
    ``a¹`` where ``i - j < w`` and ``a²`` elsewhere. ``window`` and ``1/leaky_k`` may be traced.

    Args:
      q: Pre-RoPE queries.
      k: Pre-RoPE keys.
      inv_freq: Inverse frequencies.
      window: ``w``.
      leaky_k: Leaky stretch ``k`` (> 1); ``None`` for ReRoPE.
      positions: Absolute positions (default ``0..L-1``).
      causal: Set ``j > i`` to ``-inf``.
      attention_factor: cos/sin magnitude (logits scale by its square).
      layout: ``"half"`` or ``"interleaved"``.

    Returns:
      ``[L, L]`` logits in float32 (float64 for float64 inputs).

    References: Su (2023), kexue.fm/archives/9708; github.com/bojone/rerope.
    """
    pos = jnp.arange(q.shape[0], dtype=jnp.int32) if positions is None else positions
    cdtype = jnp.float64 if q.dtype == jnp.float64 else jnp.float32
    inv_k = 0.0 if leaky_k is None else 1.0 / jnp.asarray(leaky_k, cdtype)
    w = jnp.asarray(window, cdtype)
    posf = pos.astype(cdtype)

    def rot(x, p):
        return apply_rope(x, p, inv_freq, attention_factor=attention_factor, layout=layout)

    a1 = rot(q, pos).astype(cdtype) @ rot(k, pos).astype(cdtype).T
    a2 = rot(q, w + (posf - w) * inv_k).astype(cdtype) @ rot(k, posf * inv_k).astype(cdtype).T
    rel = posf[:, None] - posf[None, :]
    logits = jnp.where(rel < w, a1, a2)
    return jnp.where(rel < 0, -jnp.inf, logits) if causal else logits


def rerope_decode_logits(
    q: Float[Array, " K"],
    k_cache: Float[Array, "S K"],
    query_position: Int[ArrayLike, ""],
    *,
    inv_freq: Float[Array, " P"],
    window: int | Int[ArrayLike, ""],
    leaky_k: float | Float[ArrayLike, ""] | None = None,
    key_positions: Int[Array, " S"] | None = None,
    attention_factor: float | Float[ArrayLike, ""] = 1.0,
    layout: str = "half",
) -> Float[Array, " S"]:
    """ReRoPE / Leaky ReRoPE logits of one query against a cache of **pre-RoPE** keys.

    The query stays unrotated and key ``j`` rotates by ``max(j - i, -w)`` (ReRoPE) or
    ``max(j - i, (j - i + w)/k - w)`` (Leaky), so one matrix suffices. Keys with ``j > i``
    (future or unfilled cache slots) get ``-inf``. Equals row ``i`` of ``rerope_logits``.

    References: Su (2023), kexue.fm/archives/9708.
    """
    s = k_cache.shape[0]
    pos = jnp.arange(s, dtype=jnp.int32) if key_positions is None else key_positions
    cdtype = jnp.float64 if q.dtype == jnp.float64 else jnp.float32
    inv_k = 0.0 if leaky_k is None else 1.0 / jnp.asarray(leaky_k, cdtype)
    w = jnp.asarray(window, cdtype)
    rel = pos.astype(cdtype) - jnp.asarray(query_position).astype(cdtype)
    shift = jnp.maximum(rel, (rel + w) * inv_k - w)
    af = jnp.asarray(attention_factor, cdtype)
    keys = apply_rope(k_cache, shift, inv_freq, attention_factor=af, layout=layout)
    logits = keys.astype(cdtype) @ (q.astype(cdtype) * af)
    return jnp.where(rel > 0, -jnp.inf, logits)
