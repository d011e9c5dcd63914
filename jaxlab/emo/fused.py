"""Fused LM-head MLE + EMO in vocabulary chunks: the [N, V] logits are never materialised.

Forward, over chunks c of C vocabulary rows (``lax.scan``; the last chunk is padded and masked):

    z_c = h W_cᵀ + b_c                               [N, C]
    m' = max(m, max_c z_c);  ℓ ← ℓ e^{m−m'} + Σ_c e^{z_c−m'}            (online logsumexp)
    a ← a e^{m−m'} + e^{z_c−m'} Ê_c                  [N, C_e]
    lse = m + log ℓ;  ē = a/ℓ = Σ_i p_i ê_i;  EMO = 1 − ē·ê_t;  MLE = lse − (h·w_t + b_t)

Backward (``jax.custom_vjp``) recomputes each chunk: p_c = e^{z_c − lse}, cos_c = ê_t Ê_cᵀ and the
logit cotangent g_c = ḡ_mle p_c + ḡ_emo p_c ⊙ (1 − cos_c − EMO); it accumulates ∂h += g_c W_c and
emits ∂W_c = g_cᵀ h, then adds the −ḡ_mle δ_jt term by gathering w_t and scatter-adding into the
target rows. The target's rows are gathered, never selected with a V-sized one-hot. Peak extra
memory is O(N·C + N·C_e) instead of the reference's several [N, V] arrays; Ê gets no gradient.

References: Ren et al. (2023), arXiv:2310.04691; Su, https://kexue.fm/archives/9797; the online
softmax of Milakov & Gimelshein (2018), arXiv:1805.02867.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Integer
from jaxlab.emo import loss as emo_lib


def _chunks(w, cost, bias, chunk_size):
    """Pads the vocabulary to a multiple of the chunk and reshapes to [num_chunks, C, ...]."""
    v = w.shape[0]
    c = min(chunk_size, v)
    n = -(-v // c)
    pad = n * c - v
    w_p = jnp.pad(w, ((0, pad), (0, 0)))
    e_p = jnp.pad(cost, ((0, pad), (0, 0)))
    b_p = jnp.pad(bias, (0, pad))
    valid = jnp.arange(n * c) < v
    return (
        w_p.reshape(n, c, w.shape[1]),
        e_p.reshape(n, c, cost.shape[1]),
        b_p.reshape(n, c),
        valid.reshape(n, c),
    )


def _chunk_logits(h, w_c, b_c, valid_c):
    z = jnp.dot(h, w_c.T, preferred_element_type=jnp.float32) + b_c[None, :]
    return jnp.where(valid_c[None, :], z, -jnp.inf)


def _forward(h, w, bias, cost, labels, chunk_size, ignore_index):
    n = h.shape[0]
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    w_ch, e_ch, b_ch, valid_ch = _chunks(w, cost, bias, chunk_size)

    def body(carry, xs):
        m, ell, a = carry
        w_c, e_c, b_c, valid_c = xs
        z = _chunk_logits(h, w_c, b_c, valid_c)
        m_new = jnp.maximum(m, jnp.max(z, axis=-1))
        scale = jnp.exp(m - m_new)
        s = jnp.exp(z - m_new[:, None])
        return (m_new, ell * scale + jnp.sum(s, -1), a * scale[:, None] + s @ e_c), None

    init = (
        jnp.full((n,), -jnp.inf, jnp.float32),
        jnp.zeros((n,), jnp.float32),
        jnp.zeros((n, cost.shape[1]), jnp.float32),
    )
    (m, ell, a), _ = jax.lax.scan(body, init, (w_ch, e_ch, b_ch, valid_ch))
    lse = m + jnp.log(ell)
    e_t = cost[safe]
    emo = 1.0 - jnp.sum((a / ell[:, None]) * e_t, axis=-1)
    z_t = jnp.sum(h.astype(jnp.float32) * w[safe].astype(jnp.float32), axis=-1) + bias[safe]
    mle = lse - z_t
    return mle, emo, lse, z_t, mask, safe


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _losses(h, w, bias, cost, labels, chunk_size, value, ignore_index):
    return _losses_fwd(h, w, bias, cost, labels, chunk_size, value, ignore_index)[0]


def _losses_fwd(h, w, bias, cost, labels, chunk_size, value, ignore_index):
    mle, emo, lse, z_t, mask, safe = _forward(h, w, bias, cost, labels, chunk_size, ignore_index)
    out_emo = emo
    if value == "reference_offset":
        e_t = cost[safe]
        out_emo = emo + jnp.exp(z_t - lse) * jnp.sum(e_t * e_t, axis=-1)
    out = (jnp.where(mask, mle, 0.0), jnp.where(mask, out_emo, 0.0))
    return out, (h, w, bias, cost, labels, lse, emo)


def _losses_bwd(chunk_size, value, ignore_index, res, cts):
    del value  # the offset carries no gradient
    h, w, bias, cost, labels, lse, emo = res
    g_mle, g_emo = cts
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    g_mle = jnp.where(mask, g_mle, 0.0).astype(jnp.float32)
    g_emo = jnp.where(mask, g_emo, 0.0).astype(jnp.float32)
    e_t = cost[safe]
    w_ch, e_ch, b_ch, valid_ch = _chunks(w, cost, bias, chunk_size)
    h32 = h.astype(jnp.float32)

    def body(dh, xs):
        w_c, e_c, b_c, valid_c = xs
        p = jnp.exp(_chunk_logits(h, w_c, b_c, valid_c) - lse[:, None])
        cos = e_t @ e_c.T
        g = g_mle[:, None] * p + g_emo[:, None] * p * (1.0 - cos - emo[:, None])
        dh = dh + jnp.dot(g, w_c.astype(jnp.float32))
        return dh, (g.T @ h32, jnp.sum(g, axis=0))

    dh, (dw_ch, db_ch) = jax.lax.scan(
        body, jnp.zeros(h32.shape, jnp.float32), (w_ch, e_ch, b_ch, valid_ch)
    )
    v = w.shape[0]
    dw = dw_ch.reshape(-1, w.shape[1])[:v]
    db = db_ch.reshape(-1)[:v]
    # The −ḡ_mle δ_jt part of the MLE logit cotangent, by gather and scatter-add.
    dh = dh - g_mle[:, None] * w[safe].astype(jnp.float32)
    dw = dw.at[safe].add(-g_mle[:, None] * h32)
    db = db.at[safe].add(-g_mle)
    return (
        dh.astype(h.dtype),
        dw.astype(w.dtype),
        db.astype(bias.dtype),
        jnp.zeros_like(cost),
        None,
    )


_losses.defvjp(_losses_fwd, _losses_bwd)


def lm_head_losses(
    h: Float[ArrayLike, "N D"],
    w_head: Float[ArrayLike, "V D"],
    labels: Integer[ArrayLike, " N"],
    cost_emb: Float[ArrayLike, "V C"],
    *,
    bias: Float[ArrayLike, " V"] | None = None,
    chunk_size: int = 8192,
    value: str = "exact",
    ignore_index: int = -100,
) -> tuple[Float[Array, " N"], Float[Array, " N"]]:
    """Per-token (MLE, EMO) of the logits ``h W_headᵀ + bias``, fused and chunked over V.

    Same values and gradients as :func:`jaxlab.emo.cross_entropy_from_logits` and
    :func:`jaxlab.emo.emo_from_logits` applied to the full logits, without ever holding them: see
    the module docstring for the equations. Matmul inputs keep their dtype (bf16 allowed) with
    float32 accumulation; softmax statistics, the EMO accumulator and both outputs are float32.

    Args:
      h: Final hidden states, one row per token.
      w_head: LM-head matrix, one row per vocabulary entry.
      labels: Target ids; ``ignore_index`` tokens give 0 and no gradient.
      cost_emb: Row-normalised cost embeddings ``[V, C]`` (:func:`jaxlab.emo.cost_embedding`);
        never differentiated.
      bias: Optional head bias.
      chunk_size: Vocabulary rows per chunk; V need not be a multiple.
      value: ``"exact"`` or ``"reference_offset"`` (adds p_t‖ê_t‖², no gradient).
      ignore_index: Label of ignored tokens.

    Returns:
      ``(mle, emo)``, float32 per token.

    Raises:
      ValueError: mismatched shapes, a non-positive chunk size or an unknown ``value``.
    """
    emo_lib._check_value(value)  # noqa: SLF001  (one shared validator)
    h = jnp.asarray(h)
    w_head = jnp.asarray(w_head)
    labels = jnp.asarray(labels)
    cost = jax.lax.stop_gradient(jnp.asarray(cost_emb).astype(jnp.float32))
    if h.ndim != 2 or w_head.ndim != 2 or h.shape[1] != w_head.shape[1]:
        raise ValueError(f"h [N, D] and w_head [V, D] must share D, got {h.shape}, {w_head.shape}")
    if labels.shape != h.shape[:1]:
        raise ValueError(f"labels must have shape {h.shape[:1]}, got {labels.shape}")
    if cost.ndim != 2 or cost.shape[0] != w_head.shape[0]:
        raise ValueError(f"cost_emb must be [V={w_head.shape[0]}, C], got {cost.shape}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    b = jnp.zeros((w_head.shape[0],), jnp.float32) if bias is None else jnp.asarray(bias)
    b = b.astype(jnp.float32)
    return _losses(h, w_head, b, cost, labels, int(chunk_size), value, int(ignore_index))


def lm_head_loss(
    h: Float[ArrayLike, "N D"],
    w_head: Float[ArrayLike, "V D"],
    labels: Integer[ArrayLike, " N"],
    cost_emb: Float[ArrayLike, "V C"],
    *,
    preset: emo_lib.Preset = emo_lib.PRESETS["paper_emo"],
    bias: Float[ArrayLike, " V"] | None = None,
    chunk_size: int = 8192,
    ignore_index: int = -100,
) -> tuple[Array, dict]:
    """Mean combined loss of ``preset`` on the fused path; returns ``(loss, metrics)``.

    The default path for training with EMO (:func:`jaxlab.emo.emo_loss` is the unfused twin).
    """
    mle, emo = lm_head_losses(
        h,
        w_head,
        labels,
        cost_emb,
        bias=bias,
        chunk_size=chunk_size,
        value=preset.value,
        ignore_index=ignore_index,
    )
    return emo_lib.combine(mle, emo, jnp.asarray(labels) != ignore_index, preset)
