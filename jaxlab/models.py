"""The tiny byte-level causal LM (Flax NNX, pre-norm) shared by the LM experiments.

    x = embed(tokens);  x += attn(rmsnorm(x));  x += mlp(rmsnorm(x))  (× num_layers)
    logits = head(rmsnorm(x))

The LM head is untied (a separate ``V × D`` matrix) so that losses which use the head's
embeddings (EMO) have them. Position encoding, attention-scale rule and dtype come from
:class:`LMConfig`; RoPE and the scale rule have no parameters, so one trained state can be
evaluated under another encoding with ``dataclasses.replace(cfg, ...)`` and ``nnx.merge``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxlab.array_types import Array, Bool, Float, Int
from jaxlab.attention import CausalSelfAttention


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Architecture of :class:`TinyLM`. Frozen and hashable (safe as a static argument)."""

    vocab_size: int = 256  # bytes
    num_layers: int = 2
    embed_dim: int = 64  # D
    num_heads: int = 4  # H; head dim K = D / H
    mlp_dim: int = 256
    position: str = "rope"  # "none" | "rope"
    rope_theta: float = 10_000.0  # RoPE base
    rope_scaling: tuple[tuple[str, Any], ...] = ()  # HF-style rope_scaling items; () = plain
    attention_scale: str = "inverse_sqrt"  # "inverse_sqrt" | "logn" | "logn_posthoc"
    rerope_window: int = 0  # ReRoPE window w (0: off); relative positions >= w are clipped
    rerope_leaky_k: float = 0.0  # Leaky ReRoPE stretch k (0: plain ReRoPE)
    train_len: int = 128  # L_train: the log-n rule and context-extension scalings refer to it
    dtype: str = "float32"  # activation dtype; parameters stay float32

    def __post_init__(self):
        if self.position not in ("none", "rope"):
            raise ValueError(f"position must be 'none' or 'rope', got {self.position!r}")
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 2:
            raise ValueError("embed_dim / num_heads must be an even integer (RoPE pairs)")


class MLP(nnx.Module):
    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.up = nnx.Linear(cfg.embed_dim, cfg.mlp_dim, dtype=dtype, rngs=rngs)
        self.down = nnx.Linear(cfg.mlp_dim, cfg.embed_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x_BLD: Float[Array, "B L D"]) -> Float[Array, "B L D"]:
        return self.down(nnx.gelu(self.up(x_BLD)))


class Block(nnx.Module):
    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        self.norm1 = nnx.RMSNorm(cfg.embed_dim, rngs=rngs)
        self.attn = CausalSelfAttention(cfg, rngs=rngs)
        self.norm2 = nnx.RMSNorm(cfg.embed_dim, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x_BLD, positions_BL, valid_BL=None):
        x_BLD = x_BLD + self.attn(self.norm1(x_BLD), positions_BL, valid_BL)
        return x_BLD + self.mlp(self.norm2(x_BLD))


class TinyLM(nnx.Module):
    """Byte-level pre-norm Transformer LM; returns float32 logits."""

    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Embed(cfg.vocab_size, cfg.embed_dim, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.norm = nnx.RMSNorm(cfg.embed_dim, rngs=rngs)
        self.head = nnx.Linear(cfg.embed_dim, cfg.vocab_size, use_bias=False, rngs=rngs)

    def __call__(
        self,
        tokens_BL: Int[Array, "B L"],
        positions_BL: Int[Array, "B L"] | None = None,
        valid_BL: Bool[Array, "B L"] | None = None,
    ) -> Float[Array, "B L V"]:
        if positions_BL is None:
            positions_BL = jnp.broadcast_to(jnp.arange(tokens_BL.shape[1]), tokens_BL.shape)
        x_BLD = self.embed(tokens_BL).astype(jnp.dtype(self.cfg.dtype))
        for block in self.blocks:
            x_BLD = block(x_BLD, positions_BL, valid_BL)
        return self.head(self.norm(x_BLD).astype(jnp.float32)).astype(jnp.float32)

    def head_embeddings(self) -> Float[Array, "V D"]:
        """The LM head's output embeddings (one row per token), e.g. for EMO's cost matrix."""
        return self.head.kernel[...].T
