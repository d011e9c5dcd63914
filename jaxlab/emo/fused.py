"""Fused LM-head MLE + EMO: the [N, V] logits are never materialised, with a custom VJP.

Two ways of cutting the work, same values and gradients as the unfused form (full logits, then
:func:`jaxlab.emo.cross_entropy_from_logits` and :func:`jaxlab.emo.emo_from_logits`):

**Token chunks (default).** The N tokens go through ``lax.scan`` in chunks of T (the last chunk is
padded with ignored tokens). Each chunk builds its ``[T, V]`` logit block once and takes everything
from it in one pass:

    z = h_c Wᵀ + b;   lse = logsumexp(z);   p = e^{z − lse};   MLE = lse − z_t
    cos = ê_t Êᵀ  [T, V];   EMO = 1 − Σ_i p_i cos_i  (= 1 − ⟨Σ_i p_i ê_i, ê_t⟩)
    ∂/∂z of  ḡ_mle·MLE + ḡ_emo·EMO:   g = p ⊙ (ḡ_mle + ḡ_emo (1 − EMO − cos)) − ḡ_mle 1_t
    ∂h_c = g W;   ∂W += gᵀ h_c;   ∂b += Σ_t g

The EMO value uses the cosine block the gradient needs anyway, so EMO adds one ``[T, C] × [C, V]``
product to CE's three ``[T, D] × [D, V]``-sized ones. For the *mean combined loss*
(:func:`lm_head_loss`) the per-token cotangents are known inside the pass: the reference's mixings
weight each token by stop-gradient ratios of its own MLE and EMO (:func:`jaxlab.emo.mix`), and the
masked mean divides by the number of kept tokens, which the labels give before the scan. So the
forward rule of its custom VJP computes ∂h, ∂W, ∂b in the same pass as the value, and the backward
rule only scales them by the incoming scalar cotangent: no chunk is ever recomputed. (Called
without differentiation, the loss runs the value pass alone.) The per-token form
(:func:`lm_head_losses`, arbitrary cotangents) stores lse and EMO per token and recomputes each
chunk's block in its backward rule. :func:`lm_head_cross_entropy` is CE alone on the same one-pass
path: the fair baseline for what EMO adds.

**Vocabulary chunks** (``vocab_chunk=C``, the earlier path, in :mod:`jaxlab.emo.fused_vocab`;
for vocabularies so large that even a few tokens' ``[T, V]`` block does not fit): an online
logsumexp over chunks of C vocabulary rows,

    m' = max(m, max_c z_c);  ℓ ← ℓ e^{m−m'} + Σ_c e^{z_c−m'};  a ← a e^{m−m'} + e^{z_c−m'} Ê_c
    lse = m + log ℓ;  ē = a/ℓ = Σ_i p_i ê_i;  EMO = 1 − ē·ê_t

with a backward rule that recomputes each chunk (p_c = e^{z_c − lse}, cos_c = ê_t Ê_cᵀ).

Either way the target's rows are gathered, never selected with a V-sized one-hot; Ê gets no
gradient; matmul inputs keep their dtype (bf16 allowed) with float32 accumulation, and softmax
statistics, losses and gradient accumulators are float32. Peak extra memory is O(T·V) (token
chunks) or O(N·C) (vocabulary chunks) instead of the reference's several [N, V] arrays.

References: Ren et al. (2023), arXiv:2310.04691; Su, https://kexue.fm/archives/9797; the online
softmax of Milakov & Gimelshein (2018), arXiv:1805.02867; computing the head's gradient inside the
loss's forward pass as in Hsu et al. (2024), "Liger Kernel", arXiv:2410.10989 (fused linear CE).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Integer
from jaxlab.emo import loss as emo_lib
from jaxlab.emo.fused_vocab import _vocab_losses

BLOCK_ELEMENTS = 1 << 22
"""Default size of one token chunk's ``[T, V]`` block: T = max(8, 2²² // V) tokens (16 MiB f32)."""


def default_token_chunk(num_tokens: int, vocab: int) -> int:
    """Tokens per chunk when none is given: about :data:`BLOCK_ELEMENTS` logits per block."""
    return max(1, min(num_tokens, max(8, BLOCK_ELEMENTS // max(vocab, 1))))


# ---- token chunks -----------------------------------------------------------------------------


def _token_chunks(h, labels, t, ignore_index):
    """Pads N to a multiple of T with ignored tokens and reshapes to [N/T, T, ...]."""
    n = h.shape[0]
    k = -(-n // t)
    pad = k * t - n
    h_k = jnp.pad(h, ((0, pad), (0, 0))).reshape(k, t, h.shape[1])
    l_k = jnp.pad(labels, (0, pad), constant_values=ignore_index).reshape(k, t)
    return h_k, l_k


def _block(h_c, w, bias, cost, labels_c, ignore_index, with_emo):
    """One token chunk's statistics from its logit block, built once.

    Returns ``(mask, safe, lse, z_t, p, cos, emo)`` (``cos``/``emo`` None without EMO).
    """
    mask = labels_c != ignore_index
    safe = jnp.where(mask, labels_c, 0)
    z = jnp.dot(h_c, w.T, preferred_element_type=jnp.float32)
    if bias is not None:
        z = z + bias[None, :]
    m = jnp.max(z, axis=-1, keepdims=True)
    s = jnp.exp(z - m)
    ell = jnp.sum(s, axis=-1, keepdims=True)
    lse = (m + jnp.log(ell))[:, 0]
    p = s / ell
    z_t = jnp.take_along_axis(z, safe[:, None], axis=-1)[:, 0]
    if not with_emo:
        return mask, safe, lse, z_t, p, None, None
    cos = jnp.dot(cost[safe], cost.T, preferred_element_type=jnp.float32)
    emo = 1.0 - jnp.sum(p * cos, axis=-1)
    return mask, safe, lse, z_t, p, cos, emo


def _emo_value(emo, z_t, lse, cost, safe, value):
    """The reported EMO: exact, or plus the reference's p_t‖ê_t‖² offset (no gradient)."""
    if value != "reference_offset":
        return emo
    e_t = cost[safe]
    return emo + jnp.exp(z_t - lse) * jnp.sum(e_t * e_t, axis=-1)


def _logit_cotangent(p, cos, emo, safe, g_mle, g_emo):
    """g = ∂(ḡ_mle·MLE + ḡ_emo·EMO)/∂z for one chunk, [T, V] float32 (see module docstring)."""
    if cos is None:
        g = p * g_mle[:, None]
    else:
        g = p * (g_mle[:, None] + g_emo[:, None] * (1.0 - emo[:, None] - cos))
    return g.at[jnp.arange(g.shape[0]), safe].add(-g_mle)


def _chunk_backprop(g, h_c, w):
    """(∂h_c, ∂W, ∂b) of one chunk from its logit cotangent ``g``."""
    dh_c = jnp.dot(g.astype(w.dtype), w, preferred_element_type=jnp.float32)
    dw = jax.lax.dot_general(
        g.astype(h_c.dtype), h_c, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32
    )
    return dh_c, dw, jnp.sum(g, axis=0)


def _token_values(h, w, bias, cost, labels, t, value, ignore_index, with_emo):
    """Per-token (MLE, reported EMO, exact EMO, lse), each [N] float32, masked tokens 0."""
    n = h.shape[0]
    h_k, l_k = _token_chunks(h, labels, t, ignore_index)

    def body(_, xs):
        h_c, labels_c = xs
        mask, safe, lse, z_t, _, _, emo = _block(
            h_c, w, bias, cost, labels_c, ignore_index, with_emo
        )
        mle = jnp.where(mask, lse - z_t, 0.0)
        if not with_emo:
            return None, (mle, mle, mle, lse)
        val = jnp.where(mask, _emo_value(emo, z_t, lse, cost, safe, value), 0.0)
        return None, (mle, val, jnp.where(mask, emo, 0.0), lse)

    _, outs = jax.lax.scan(body, None, (h_k, l_k))
    return tuple(o.reshape(-1)[:n] for o in outs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _token_losses(h, w, bias, cost, labels, t, value, ignore_index):
    mle, val, _, _ = _token_values(h, w, bias, cost, labels, t, value, ignore_index, True)
    return mle, val


def _token_losses_fwd(h, w, bias, cost, labels, t, value, ignore_index):
    mle, val, emo, lse = _token_values(h, w, bias, cost, labels, t, value, ignore_index, True)
    return (mle, val), (h, w, bias, cost, labels, lse, emo)


def _token_losses_bwd(t, value, ignore_index, res, cts):
    del value  # the offset carries no gradient
    h, w, bias, cost, labels, lse, emo = res
    n = h.shape[0]
    mask = labels != ignore_index
    g_mle = jnp.where(mask, cts[0], 0.0).astype(jnp.float32)
    g_emo = jnp.where(mask, cts[1], 0.0).astype(jnp.float32)
    h_k, l_k = _token_chunks(h, labels, t, ignore_index)
    pad = h_k.shape[0] * t - n
    per_token = [jnp.pad(x, (0, pad)).reshape(-1, t) for x in (lse, emo, g_mle, g_emo)]

    def body(carry, xs):
        dw, db = carry
        h_c, labels_c, lse_c, emo_c, gm, ge = xs
        safe = jnp.where(labels_c != ignore_index, labels_c, 0)
        z = jnp.dot(h_c, w.T, preferred_element_type=jnp.float32) + bias[None, :]
        p = jnp.exp(z - lse_c[:, None])
        cos = jnp.dot(cost[safe], cost.T, preferred_element_type=jnp.float32)
        g = _logit_cotangent(p, cos, emo_c, safe, gm, ge)
        dh_c, dw_c, db_c = _chunk_backprop(g, h_c, w)
        return (dw + dw_c, db + db_c), dh_c

    init = (jnp.zeros(w.shape, jnp.float32), jnp.zeros(bias.shape, jnp.float32))
    (dw, db), dh = jax.lax.scan(body, init, (h_k, l_k, *per_token))
    dh = dh.reshape(-1, h.shape[1])[:n]
    return dh.astype(h.dtype), dw.astype(w.dtype), db.astype(bias.dtype), jnp.zeros_like(cost), None


_token_losses.defvjp(_token_losses_fwd, _token_losses_bwd)


def _weights(mle, val, mask, count, preset):
    """Per-token cotangents (ḡ_mle, ḡ_emo) of the masked mean of ``preset``'s mixing."""
    scale = mask.astype(jnp.float32) / (1e-15 + count)
    if preset is None:
        return scale, None
    mixed = emo_lib.mix(mle, val, mode=preset.mode, clip=preset.clip)
    return mixed.weight_mle * scale, mixed.weight_emo * scale


def _mean_and_metrics(mle, val, mask, preset):
    if preset is None:
        return emo_lib.masked_mean(mle, mask), {"mle": emo_lib.masked_mean(mle, mask)}
    return emo_lib.combine(mle, val, mask, preset)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _token_mean(h, w, bias, cost, labels, t, preset, ignore_index, use_bias):
    value = "exact" if preset is None else preset.value
    b = bias if use_bias else None
    mle, val, _, _ = _token_values(
        h, w, b, cost, labels, t, value, ignore_index, preset is not None
    )
    return _mean_and_metrics(mle, val, labels != ignore_index, preset)


def _token_mean_fwd(h, w, bias, cost, labels, t, preset, ignore_index, use_bias):
    """Value and (∂h, ∂W, ∂b) of the mean loss in one pass over the token chunks."""
    n = h.shape[0]
    with_emo = preset is not None
    value = "exact" if preset is None else preset.value
    b = bias if use_bias else None
    count = jnp.sum(labels != ignore_index).astype(jnp.float32)
    h_k, l_k = _token_chunks(h, labels, t, ignore_index)

    def body(carry, xs):
        dw, db = carry
        h_c, labels_c = xs
        mask, safe, lse, z_t, p, cos, emo = _block(
            h_c, w, b, cost, labels_c, ignore_index, with_emo
        )
        mle = jnp.where(mask, lse - z_t, 0.0)
        val = None
        if with_emo:
            val = jnp.where(mask, _emo_value(emo, z_t, lse, cost, safe, value), 0.0)
        g_mle, g_emo = _weights(mle, val, mask, count, preset)
        g = _logit_cotangent(p, cos, emo, safe, g_mle, g_emo)
        dh_c, dw_c, db_c = _chunk_backprop(g, h_c, w)
        val = mle if val is None else val
        return (dw + dw_c, db + db_c), (dh_c, mle, val)

    init = (jnp.zeros(w.shape, jnp.float32), jnp.zeros(bias.shape, jnp.float32))
    (dw, db), (dh, mle, val) = jax.lax.scan(body, init, (h_k, l_k))
    dh = dh.reshape(-1, h.shape[1])[:n]
    mle, val = mle.reshape(-1)[:n], val.reshape(-1)[:n]
    out = _mean_and_metrics(mle, val, labels != ignore_index, preset)
    dtypes = tuple(jnp.zeros((0,), x.dtype) for x in (h, w, bias))  # dtype tokens
    return out, (dh, dw, db, jnp.zeros_like(cost), dtypes)


def _token_mean_bwd(t, preset, ignore_index, use_bias, res, cts):
    """Scales the stored gradients by the loss cotangent; the metrics carry no gradient."""
    del t, preset, ignore_index
    dh, dw, db, dcost, (h_tok, w_tok, b_tok) = res
    h_dtype, w_dtype, b_dtype = h_tok.dtype, w_tok.dtype, b_tok.dtype
    ct = cts[0].astype(jnp.float32)
    db = (ct * db).astype(b_dtype) if use_bias else jnp.zeros_like(db, b_dtype)
    return (ct * dh).astype(h_dtype), (ct * dw).astype(w_dtype), db, dcost, None


_token_mean.defvjp(_token_mean_fwd, _token_mean_bwd)


def _validate(h, w_head, labels, cost, token_chunk, vocab_chunk):
    if h.ndim != 2 or w_head.ndim != 2 or h.shape[1] != w_head.shape[1]:
        raise ValueError(f"h [N, D] and w_head [V, D] must share D, got {h.shape}, {w_head.shape}")
    if labels.shape != h.shape[:1]:
        raise ValueError(f"labels must have shape {h.shape[:1]}, got {labels.shape}")
    if cost is not None and (cost.ndim != 2 or cost.shape[0] != w_head.shape[0]):
        raise ValueError(f"cost_emb must be [V={w_head.shape[0]}, C], got {cost.shape}")
    if token_chunk is not None and token_chunk < 1:
        raise ValueError(f"token_chunk must be >= 1, got {token_chunk}")
    if vocab_chunk is not None and vocab_chunk < 1:
        raise ValueError(f"vocab_chunk must be >= 1, got {vocab_chunk}")
    t = default_token_chunk(h.shape[0], w_head.shape[0]) if token_chunk is None else token_chunk
    return int(min(t, max(h.shape[0], 1)))


def _bias(bias, v):
    b = jnp.zeros((v,), jnp.float32) if bias is None else jnp.asarray(bias)
    return b.astype(jnp.float32)


def lm_head_losses(
    h: Float[ArrayLike, "N D"],
    w_head: Float[ArrayLike, "V D"],
    labels: Integer[ArrayLike, " N"],
    cost_emb: Float[ArrayLike, "V C"],
    *,
    bias: Float[ArrayLike, " V"] | None = None,
    token_chunk: int | None = None,
    vocab_chunk: int | None = None,
    value: str = "exact",
    ignore_index: int = -100,
) -> tuple[Float[Array, " N"], Float[Array, " N"]]:
    """Per-token (MLE, EMO) of the logits ``h W_headᵀ + bias``, fused, never holding [N, V].

    Same values and gradients (for any per-token cotangents) as
    :func:`jaxlab.emo.cross_entropy_from_logits` and :func:`jaxlab.emo.emo_from_logits` on the
    full logits; the module docstring has the equations. For the mean combined loss prefer
    :func:`lm_head_loss`, whose gradient needs no second pass.

    Args:
      h: Final hidden states, one row per token.
      w_head: LM-head matrix, one row per vocabulary entry.
      labels: Target ids; ``ignore_index`` tokens give 0 and no gradient.
      cost_emb: Row-normalised cost embeddings ``[V, C]`` (:func:`jaxlab.emo.cost_embedding`);
        never differentiated.
      bias: Optional head bias.
      token_chunk: Tokens per chunk (N need not be a multiple); default
        :func:`default_token_chunk`.
      vocab_chunk: If given, use the vocabulary-chunked path with this many rows per chunk
        (V need not be a multiple) instead of token chunks.
      value: ``"exact"`` or ``"reference_offset"`` (adds p_t‖ê_t‖², no gradient).
      ignore_index: Label of ignored tokens.

    Returns:
      ``(mle, emo)``, float32 per token.

    Raises:
      ValueError: mismatched shapes, a non-positive chunk or an unknown ``value``.
    """
    emo_lib._check_value(value)  # noqa: SLF001  (one shared validator)
    h, w_head, labels = jnp.asarray(h), jnp.asarray(w_head), jnp.asarray(labels)
    cost = jax.lax.stop_gradient(jnp.asarray(cost_emb).astype(jnp.float32))
    t = _validate(h, w_head, labels, cost, token_chunk, vocab_chunk)
    b = _bias(bias, w_head.shape[0])
    if vocab_chunk is not None:
        return _vocab_losses(h, w_head, b, cost, labels, int(vocab_chunk), value, int(ignore_index))
    return _token_losses(h, w_head, b, cost, labels, t, value, int(ignore_index))


def lm_head_loss(
    h: Float[ArrayLike, "N D"],
    w_head: Float[ArrayLike, "V D"],
    labels: Integer[ArrayLike, " N"],
    cost_emb: Float[ArrayLike, "V C"],
    *,
    preset: emo_lib.Preset = emo_lib.PRESETS["paper_emo"],
    bias: Float[ArrayLike, " V"] | None = None,
    token_chunk: int | None = None,
    vocab_chunk: int | None = None,
    ignore_index: int = -100,
) -> tuple[Array, dict]:
    """Mean combined loss of ``preset`` on the fused path; returns ``(loss, metrics)``.

    The default path for training with EMO (:func:`jaxlab.emo.emo_loss` is the unfused twin, with
    the same value, metrics and gradients). On token chunks (the default) value and gradient come
    from one pass over the chunks (module docstring); ``vocab_chunk`` selects the vocabulary-
    chunked per-token path plus :func:`jaxlab.emo.combine`. The metrics carry no gradient.

    Args: as :func:`lm_head_losses`, with ``preset`` (a :class:`jaxlab.emo.Preset`) in place of
      ``value``.
    """
    h, w_head, labels = jnp.asarray(h), jnp.asarray(w_head), jnp.asarray(labels)
    cost = jax.lax.stop_gradient(jnp.asarray(cost_emb).astype(jnp.float32))
    t = _validate(h, w_head, labels, cost, token_chunk, vocab_chunk)
    if vocab_chunk is not None:
        mle, val = lm_head_losses(
            h,
            w_head,
            labels,
            cost,
            bias=bias,
            vocab_chunk=vocab_chunk,
            value=preset.value,
            ignore_index=ignore_index,
        )
        return emo_lib.combine(mle, val, labels != ignore_index, preset)
    b = _bias(bias, w_head.shape[0])
    return _token_mean(h, w_head, b, cost, labels, t, preset, int(ignore_index), bias is not None)


def lm_head_cross_entropy(
    h: Float[ArrayLike, "N D"],
    w_head: Float[ArrayLike, "V D"],
    labels: Integer[ArrayLike, " N"],
    *,
    bias: Float[ArrayLike, " V"] | None = None,
    token_chunk: int | None = None,
    ignore_index: int = -100,
) -> tuple[Array, dict]:
    """Mean cross-entropy of ``h W_headᵀ + bias`` on the same one-pass token-chunked path.

    :func:`lm_head_loss` with the EMO parts removed: the fair baseline for what EMO costs on top
    of CE (same chunking, same gradient-in-the-forward-pass). Returns ``(loss, {"mle": loss})``;
    same value and gradients as the masked mean of :func:`jaxlab.emo.cross_entropy_from_logits`.
    """
    h, w_head, labels = jnp.asarray(h), jnp.asarray(w_head), jnp.asarray(labels)
    t = _validate(h, w_head, labels, None, token_chunk, None)
    b = _bias(bias, w_head.shape[0])
    dummy_cost = jnp.zeros((w_head.shape[0], 1), jnp.float32)
    return _token_mean(
        h, w_head, b, dummy_cost, labels, t, None, int(ignore_index), bias is not None
    )
