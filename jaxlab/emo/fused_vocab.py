"""The vocabulary-chunked fused MLE + EMO path (``vocab_chunk=C`` of :mod:`jaxlab.emo.fused`).

For vocabularies so large that even a few tokens' ``[T, V]`` logit block does not fit: an online
logsumexp over chunks of C vocabulary rows (Milakov & Gimelshein 2018, arXiv:1805.02867),

    m' = max(m, max_c z_c);  ℓ ← ℓ e^{m−m'} + Σ_c e^{z_c−m'};  a ← a e^{m−m'} + e^{z_c−m'} Ê_c
    lse = m + log ℓ;  ē = a/ℓ = Σ_i p_i ê_i;  EMO = 1 − ē·ê_t

with a custom VJP whose backward rule recomputes each chunk (p_c = e^{z_c − lse},
cos_c = ê_t Ê_cᵀ). Values and gradients equal the unfused form; Ê gets no gradient. The public
entry points are :func:`jaxlab.emo.fused.lm_head_losses` / ``lm_head_loss`` with ``vocab_chunk``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _vocab_chunks(w, cost, bias, chunk_size):
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


def _vocab_forward(h, w, bias, cost, labels, chunk_size, ignore_index):
    n = h.shape[0]
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    w_ch, e_ch, b_ch, valid_ch = _vocab_chunks(w, cost, bias, chunk_size)

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
def _vocab_losses(h, w, bias, cost, labels, chunk_size, value, ignore_index):
    return _vocab_losses_fwd(h, w, bias, cost, labels, chunk_size, value, ignore_index)[0]


def _vocab_losses_fwd(h, w, bias, cost, labels, chunk_size, value, ignore_index):
    mle, emo, lse, z_t, mask, safe = _vocab_forward(
        h, w, bias, cost, labels, chunk_size, ignore_index
    )
    out_emo = emo
    if value == "reference_offset":
        e_t = cost[safe]
        out_emo = emo + jnp.exp(z_t - lse) * jnp.sum(e_t * e_t, axis=-1)
    out = (jnp.where(mask, mle, 0.0), jnp.where(mask, out_emo, 0.0))
    return out, (h, w, bias, cost, labels, lse, emo)


def _vocab_losses_bwd(chunk_size, value, ignore_index, res, cts):
    del value  # the offset carries no gradient
    h, w, bias, cost, labels, lse, emo = res
    g_mle, g_emo = cts
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    g_mle = jnp.where(mask, g_mle, 0.0).astype(jnp.float32)
    g_emo = jnp.where(mask, g_emo, 0.0).astype(jnp.float32)
    e_t = cost[safe]
    w_ch, e_ch, b_ch, valid_ch = _vocab_chunks(w, cost, bias, chunk_size)
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


_vocab_losses.defvjp(_vocab_losses_fwd, _vocab_losses_bwd)
