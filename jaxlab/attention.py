# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""Causal multi-head self-attention (Flax NNX): RoPE scalings, ReRoPE, log-n, and a KV cache.

Everything numeric comes from the pure modules; this module only wires them by config:

* ``cfg.position``: ``"none"`` or ``"rope"``. With RoPE, ``cfg.rope_scaling`` (HF-style items,
  plus jaxlab kinds such as ``ntk_old``/``ntk_fixed``/``ntk_mixed``, see ``jaxlab.rope``) selects
  the frequencies and the cos/sin magnitude via :func:`rope_setup`; ``L0 = cfg.train_len``.
  Dynamic kinds use the current length ``max(position) + 1`` (traced: no recompilation).
* ``cfg.rerope_window > 0``: ReRoPE (``cfg.rerope_leaky_k == 0``) or Leaky ReRoPE with stretch
  ``k`` (Su, kexue.fm/archives/9708): relative positions beyond ``w`` are clipped/compressed.
* ``cfg.attention_scale``: ``"inverse_sqrt"`` (q·k/√d_h), ``"logn"`` (Su's pre-training
  log-n, ``log_{L}(n)·q·k/√d_h``, ``L = cfg.train_len``, ``n`` = query position + 1) or
  ``"logn_posthoc"`` (log n†: ``max(1, log_L n)``, for models trained without it). See
  ``jaxlab.attention_scale``.

The decode path (:meth:`CausalSelfAttention.decode`) caches **pre-RoPE** keys and rotates them
by their offset to the query at every step, so ReRoPE and dynamic scalings decode exactly like
prefill of the same prefix (HF's dynamic-NTK cache drift, transformers #25104, cannot happen).
"""

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab import attention_scale, rope
from jaxlab.array_types import Array, Bool, Float, Int
from jaxlab.rope import rerope

if TYPE_CHECKING:
    from jaxlab.models import LMConfig

SCALE_RULES = {"inverse_sqrt": "none", "logn": "pretrain", "logn_posthoc": "posthoc"}


@dataclasses.dataclass(frozen=True)
class RopeSetup:
    """What the attention module rotates with: scaling, rotary dim and base."""

    scaling: rope.RopeScaling
    rotary_dim: int
    base: float


def rope_setup(cfg: "LMConfig") -> RopeSetup:
    """Builds the RoPE setup from ``cfg.rope_scaling`` items (``L0 = cfg.train_len``)."""
    head_dim = cfg.embed_dim // cfg.num_heads
    items = dict(cfg.rope_scaling)
    prf = float(items.get("partial_rotary_factor", 1.0))
    scaling = rope.RopeScaling.from_hf(items, max_position_embeddings=cfg.train_len)
    rotary_dim = head_dim if scaling.kind == "proportional" else int(head_dim * prf)
    return RopeSetup(scaling, rotary_dim, float(items.get("rope_theta", cfg.rope_theta)))


def describe(cfg: "LMConfig") -> dict:
    """The exact position encoding and scale rule a config uses (for config.json / reports)."""
    out = {"position": cfg.position, "attention_scale": cfg.attention_scale}
    out["head_dim"] = cfg.embed_dim // cfg.num_heads
    out["train_len"] = cfg.train_len
    if cfg.position == "rope":
        setup = rope_setup(cfg)
        out["rope"] = dataclasses.asdict(setup.scaling) | {
            "rotary_dim": setup.rotary_dim,
            "base": setup.base,
        }
        if setup.scaling.kind not in rope.DYNAMIC_KINDS:
            out["rope"]["attention_factor_used"] = float(
                rope.rope_frequencies(setup.scaling, setup.rotary_dim, setup.base)[1]
            )
        out["rerope_window"], out["rerope_leaky_k"] = cfg.rerope_window, cfg.rerope_leaky_k
    return out


def _frequencies(cfg: "LMConfig", seq_len):
    setup = rope_setup(cfg)
    return rope.rope_frequencies(setup.scaling, setup.rotary_dim, setup.base, seq_len=seq_len)


def logit_scale(cfg: "LMConfig", positions_BL: Int[Array, "B L"]) -> Float[Array, "B L"]:
    """Per-query multiplier of q·k: ``1/√d_h`` times the log-n factor of the scale rule."""
    if cfg.attention_scale not in SCALE_RULES:
        raise ValueError(f"attention_scale must be one of {list(SCALE_RULES)}")
    head_dim = cfg.embed_dim // cfg.num_heads
    factor = attention_scale.logn_factor(
        positions_BL, cfg.train_len, SCALE_RULES[cfg.attention_scale]
    )
    return factor * jnp.float32(head_dim**-0.5)


def _softmax_attend(logits_BHLS, mask_BHLS, v_BSHK):
    """Masked softmax in float32, then the weighted sum; rows with no visible key give zero."""
    logits_BHLS = jnp.where(mask_BHLS, logits_BHLS, -jnp.inf)
    row_max = jnp.max(logits_BHLS, axis=-1, keepdims=True)
    row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    weights = jnp.exp(logits_BHLS - jax.lax.stop_gradient(row_max))
    weights = weights / jnp.maximum(weights.sum(-1, keepdims=True), 1e-30)
    return jnp.einsum("bhqs,bshk->bqhk", weights.astype(v_BSHK.dtype), v_BSHK)


def position_logits(
    cfg: "LMConfig",
    q_BLHK: Float[Array, "B L H K"],
    k_BLHK: Float[Array, "B L H K"],
    positions_BL: Int[Array, "B L"],
) -> Float[Array, "B H L L"]:
    """Unscaled, unmasked float32 logits ``q_i·k_j`` under the configured position encoding."""
    if cfg.position == "none":
        return jnp.einsum("bqhk,bshk->bhqs", q_BLHK, k_BLHK).astype(jnp.float32)
    if cfg.position != "rope":
        raise ValueError(f"unknown position encoding {cfg.position!r}")
    inv_freq, factor = _frequencies(cfg, jnp.max(positions_BL) + 1)
    rotary_dim = 2 * inv_freq.shape[0]
    if cfg.rerope_window > 0:
        if rotary_dim != q_BLHK.shape[-1]:
            raise ValueError("ReRoPE needs a full rotary dimension")
        leaky_k = cfg.rerope_leaky_k or None

        def one(q_LK, k_LK, pos_L):
            return rerope.rerope_logits(
                q_LK, k_LK, inv_freq=inv_freq, window=cfg.rerope_window, leaky_k=leaky_k,
                positions=pos_L, causal=False, attention_factor=factor,
            )  # fmt: skip

        per_head = jax.vmap(one, in_axes=(1, 1, None))  # over H of [L, H, K]
        return jax.vmap(per_head)(q_BLHK, k_BLHK, positions_BL)
    pos_BL1 = positions_BL[:, :, None]
    kw = dict(attention_factor=factor, rotary_dim=rotary_dim)
    q_BLHK = rope.apply_rope(jnp.swapaxes(q_BLHK, 1, 2), pos_BL1.swapaxes(1, 2), inv_freq, **kw)
    k_BLHK = rope.apply_rope(jnp.swapaxes(k_BLHK, 1, 2), pos_BL1.swapaxes(1, 2), inv_freq, **kw)
    return jnp.einsum("bhqk,bhsk->bhqs", q_BLHK, k_BLHK).astype(jnp.float32)


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention; positions are absolute token indices (0-based)."""

    def __init__(self, cfg: "LMConfig", *, rngs: nnx.Rngs):
        if cfg.embed_dim % cfg.num_heads:
            raise ValueError(
                f"embed_dim {cfg.embed_dim} not divisible by num_heads {cfg.num_heads}"
            )
        self.cfg = cfg
        head_dim = cfg.embed_dim // cfg.num_heads
        dtype = jnp.dtype(cfg.dtype)
        init = nnx.initializers.lecun_normal()
        self.qkv = nnx.LinearGeneral(
            cfg.embed_dim, (3, cfg.num_heads, head_dim), use_bias=False, dtype=dtype,
            kernel_init=init, rngs=rngs,
        )  # fmt: skip
        self.out = nnx.LinearGeneral(
            (cfg.num_heads, head_dim), cfg.embed_dim, axis=(-2, -1), use_bias=False,
            dtype=dtype, kernel_init=init, rngs=rngs,
        )  # fmt: skip

    def __call__(
        self,
        x_BLD: Float[Array, "B L D"],
        positions_BL: Int[Array, "B L"],
        valid_BL: Bool[Array, "B L"] | None = None,
    ) -> Float[Array, "B L D"]:
        cfg = self.cfg
        qkv = self.qkv(x_BLD)
        q_BLHK, k_BLHK, v_BLHK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        logits_BHLL = position_logits(cfg, q_BLHK, k_BLHK, positions_BL)
        logits_BHLL = logits_BHLL * logit_scale(cfg, positions_BL)[:, None, :, None]
        length = x_BLD.shape[1]
        mask_BHLL = jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]
        if valid_BL is not None:
            mask_BHLL = mask_BHLL & valid_BL[:, None, None, :]
        return self.out(_softmax_attend(logits_BHLL, mask_BHLL, v_BLHK))

    def init_cache(self, batch_size: int, max_len: int) -> dict:
        """An empty KV cache of **pre-RoPE** keys and values, ``[B, S, H, K]`` each."""
        head_dim = self.cfg.embed_dim // self.cfg.num_heads
        shape = (batch_size, max_len, self.cfg.num_heads, head_dim)
        dtype = jnp.dtype(self.cfg.dtype)
        return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}

    def decode(
        self, x_B1D: Float[Array, "B 1 D"], position: Int[Array, ""], cache: dict
    ) -> tuple[Float[Array, "B 1 D"], dict]:
        """One decoding step at ``position`` (0-based; slots ``0..position-1`` hold the prefix).

        Keys are cached before rotation; each step rotates key ``j`` by its offset to the query
        (``rerope.rerope_decode_logits``; a window of the cache length is plain RoPE). Dynamic
        scalings use the current length ``position + 1``, like a prefill of the prefix.

        Returns:
          ``(y_B1D, cache)`` with this step's key and value written at slot ``position``.
        """
        cfg = self.cfg
        qkv = self.qkv(x_B1D)
        q_BHK, k_B1HK, v_B1HK = qkv[:, 0, 0], qkv[:, :, 1], qkv[:, :, 2]
        start = (0, position, 0, 0)
        cache = {
            "k": jax.lax.dynamic_update_slice(cache["k"], k_B1HK.astype(cache["k"].dtype), start),
            "v": jax.lax.dynamic_update_slice(cache["v"], v_B1HK.astype(cache["v"].dtype), start),
        }
        max_len = cache["k"].shape[1]
        key_pos_S = jnp.arange(max_len, dtype=jnp.int32)
        if cfg.position == "none":
            logits_BHS = jnp.einsum("bhk,bshk->bhs", q_BHK, cache["k"]).astype(jnp.float32)
        else:
            inv_freq, factor = _frequencies(cfg, position + 1)
            if 2 * inv_freq.shape[0] != q_BHK.shape[-1]:
                raise ValueError("decode needs a full rotary dimension")
            window = cfg.rerope_window if cfg.rerope_window > 0 else max_len
            leaky_k = (cfg.rerope_leaky_k or None) if cfg.rerope_window > 0 else None

            def one(q_K, k_SK):
                return rerope.rerope_decode_logits(
                    q_K, k_SK, position, inv_freq=inv_freq, window=window, leaky_k=leaky_k,
                    key_positions=key_pos_S, attention_factor=factor,
                )  # fmt: skip

            per_head = jax.vmap(one, in_axes=(0, 1))  # q [H, K], cache [S, H, K]
            logits_BHS = jax.vmap(per_head)(q_BHK, cache["k"])
        scale = logit_scale(cfg, jnp.reshape(position, (1, 1)))[0, 0]
        logits_BH1S = (logits_BHS * scale)[:, :, None, :]
        mask_11S = (key_pos_S <= position)[None, None, None, :]
        return self.out(_softmax_attend(logits_BH1S, mask_11S, cache["v"])), cache
