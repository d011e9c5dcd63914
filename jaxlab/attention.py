"""Causal multi-head self-attention (Flax NNX) with pluggable position encoding and scale rule.

Position encoding ``cfg.position``: ``"none"`` or ``"rope"`` (rotary, rotate-half layout, base
``cfg.rope_theta``). Scale rule ``cfg.attention_scale``: ``"inverse_sqrt"`` (logits = q·k/√d_h) or
``"logn"`` (logits = max(1, log_{L_train} n) · q·k/√d_h with n = query position + 1, Su 2021,
kexue.fm/archives/8823). The frequencies used by RoPE come from :func:`rope_tables`, the hook
through which scaled frequencies are plugged in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.array_types import Array, Bool, Float, Int

if TYPE_CHECKING:
    from jaxlab.models import LMConfig


def rope_tables(
    cfg: LMConfig, positions_BL: Int[Array, "B L"]
) -> tuple[Float[Array, "B L K2"], Float[Array, "B L K2"]]:
    """cos and sin tables for rotary embedding at ``positions`` (plain RoPE, θ_i = base^{-2i/d})."""
    head_dim = cfg.embed_dim // cfg.num_heads
    exponent = jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim
    inv_freq_K2 = 1.0 / (cfg.rope_theta**exponent)
    angles_BLK2 = positions_BL.astype(jnp.float32)[..., None] * inv_freq_K2[None, None, :]
    return jnp.cos(angles_BLK2), jnp.sin(angles_BLK2)


def rotate(
    x_BLHK: Float[Array, "B L H K"],
    cos_BLK2: Float[Array, "B L K2"],
    sin_BLK2: Float[Array, "B L K2"],
) -> Float[Array, "B L H K"]:
    """Rotate-half RoPE: pairs (x_i, x_{i+d/2}) rotated by the angle of frequency i."""
    half = x_BLHK.shape[-1] // 2
    x1, x2 = x_BLHK[..., :half], x_BLHK[..., half:]
    cos, sin = cos_BLK2[:, :, None, :], sin_BLK2[:, :, None, :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BLHK.dtype)


def logit_scale(cfg: LMConfig, positions_BL: Int[Array, "B L"]) -> Float[Array, "B L"]:
    """Per-query multiplier of q·k: 1/√d_h, times max(1, log_{L_train}(n)) for the log-n rule."""
    head_dim = cfg.embed_dim // cfg.num_heads
    base = jnp.full(positions_BL.shape, head_dim**-0.5, jnp.float32)
    if cfg.attention_scale == "inverse_sqrt":
        return base
    if cfg.attention_scale == "logn":
        n = positions_BL.astype(jnp.float32) + 1.0
        return base * jnp.maximum(1.0, jnp.log(n) / jnp.log(float(cfg.train_len)))
    raise ValueError(f"unknown attention_scale {cfg.attention_scale!r}")


def causal_attention(
    q_BLHK: Float[Array, "B L H K"],
    k_BLHK: Float[Array, "B L H K"],
    v_BLHK: Float[Array, "B L H K"],
    scale_BL: Float[Array, "B L"],
    valid_BL: Bool[Array, "B L"] | None = None,
) -> Float[Array, "B L H K"]:
    """softmax(scale · q kᵀ + causal mask) v, computed in float32; invalid keys get zero weight."""
    logits_BHLL = jnp.einsum("bqhk,bshk->bhqs", q_BLHK, k_BLHK).astype(jnp.float32)
    logits_BHLL = logits_BHLL * scale_BL[:, None, :, None]
    length = q_BLHK.shape[1]
    mask_BHLL = jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]
    if valid_BL is not None:
        mask_BHLL = mask_BHLL & valid_BL[:, None, None, :]
    logits_BHLL = jnp.where(mask_BHLL, logits_BHLL, -jnp.inf)
    # A query with no visible key (fully padded row) gets zero output instead of NaN.
    row_max = jnp.max(logits_BHLL, axis=-1, keepdims=True)
    row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    weights_BHLL = jnp.exp(logits_BHLL - jax.lax.stop_gradient(row_max))
    weights_BHLL = weights_BHLL / jnp.maximum(weights_BHLL.sum(-1, keepdims=True), 1e-30)
    out = jnp.einsum("bhqs,bshk->bqhk", weights_BHLL.astype(v_BLHK.dtype), v_BLHK)
    return out


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention; positions are absolute token indices (0-based)."""

    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        if cfg.embed_dim % cfg.num_heads:
            raise ValueError(
                f"embed_dim {cfg.embed_dim} not divisible by num_heads {cfg.num_heads}"
            )
        self.cfg = cfg
        head_dim = cfg.embed_dim // cfg.num_heads
        dtype = jnp.dtype(cfg.dtype)
        init = nnx.initializers.lecun_normal()
        self.qkv = nnx.LinearGeneral(
            cfg.embed_dim,
            (3, cfg.num_heads, head_dim),
            use_bias=False,
            dtype=dtype,
            kernel_init=init,
            rngs=rngs,
        )
        self.out = nnx.LinearGeneral(
            (cfg.num_heads, head_dim),
            cfg.embed_dim,
            axis=(-2, -1),
            use_bias=False,
            dtype=dtype,
            kernel_init=init,
            rngs=rngs,
        )

    def __call__(
        self,
        x_BLD: Float[Array, "B L D"],
        positions_BL: Int[Array, "B L"],
        valid_BL: Bool[Array, "B L"] | None = None,
    ) -> Float[Array, "B L D"]:
        cfg = self.cfg
        qkv = self.qkv(x_BLD)
        q_BLHK, k_BLHK, v_BLHK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if cfg.position == "rope":
            cos_BLK2, sin_BLK2 = rope_tables(cfg, positions_BL)
            q_BLHK = rotate(q_BLHK, cos_BLK2, sin_BLK2)
            k_BLHK = rotate(k_BLHK, cos_BLK2, sin_BLK2)
        elif cfg.position != "none":
            raise ValueError(f"unknown position encoding {cfg.position!r}")
        scale_BL = logit_scale(cfg, positions_BL)
        y_BLHK = causal_attention(q_BLHK, k_BLHK, v_BLHK, scale_BL, valid_BL)
        return self.out(y_BLHK)
