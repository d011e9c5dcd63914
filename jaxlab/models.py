"""The tiny byte-level causal LM (Flax NNX, pre-norm) shared by the LM experiments.

    x = embed(tokens);  x += attn(rmsnorm(x));  x += mlp(rmsnorm(x))  (× num_layers)
    logits = head(rmsnorm(x))

The LM head is untied (a separate ``V × D`` matrix) so that losses which use the head's
embeddings (EMO) have them. Position encoding and scale rule live in one
``jaxlab.attention.AttentionConfig`` held by :class:`LMConfig`; RoPE and most scale rules have no
parameters, so one trained state can be evaluated under another encoding with
:meth:`LMConfig.with_attention` and ``nnx.merge``. :func:`lm_config` builds an :class:`LMConfig`
from a flat config section (the keys config files and ``--config.model.*`` overrides use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax.numpy as jnp
from flax import nnx

from jaxlab.array_types import Array, Bool, Float, Int
from jaxlab.attention import AttentionConfig, CausalSelfAttention, attention_config

_LM_KEYS = ("vocab_size", "num_layers", "embed_dim", "mlp_dim", "dtype")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Architecture of :class:`TinyLM`. Frozen and hashable (safe as a static argument).

    Attributes:
      vocab_size: ``V`` (256 bytes).
      num_layers: Transformer blocks.
      embed_dim: ``D``; must equal ``attention.num_heads · attention.head_dim``.
      mlp_dim: Hidden width of the MLP.
      attention: Heads, RoPE, scale rule, ReRoPE window, training length.
      dtype: Activation dtype; parameters stay float32, logits are float32.
    """

    vocab_size: int = 256
    num_layers: int = 2
    embed_dim: int = 64
    mlp_dim: int = 256
    attention: AttentionConfig = AttentionConfig(num_heads=4, head_dim=16)
    dtype: str = "float32"

    def __post_init__(self):
        heads, head_dim = self.attention.num_heads, self.attention.head_dim
        if heads * head_dim != self.embed_dim:
            raise ValueError(
                f"embed_dim {self.embed_dim} must equal num_heads {heads} × head_dim {head_dim}"
            )

    @property
    def train_len(self) -> int:
        return self.attention.train_len

    def with_attention(self, **flat) -> LMConfig:
        """A copy with flat attention keys applied (see ``jaxlab.attention.attention_config``)."""
        return dataclasses.replace(self, attention=attention_config(self.attention, **flat))

    def to_dict(self) -> dict:
        """A JSON-ready dict (checkpoint metadata); :meth:`from_dict` re-creates it exactly."""
        return dataclasses.asdict(self) | {"attention": self.attention.to_dict()}

    @classmethod
    def from_dict(cls, items: Mapping) -> LMConfig:
        items = dict(items)
        items["attention"] = AttentionConfig.from_dict(items["attention"])
        return cls(**items)


def lm_config(section=None, **overrides) -> LMConfig:
    """Builds an :class:`LMConfig` from a flat config section (a ConfigDict or mapping).

    LM keys (``vocab_size``, ``num_layers``, ``embed_dim``, ``mlp_dim``, ``dtype``) go to
    :class:`LMConfig`; ``num_heads`` (head dim ``embed_dim / num_heads``) and the attention keys
    (``position``, ``rope_theta``, ``rope_scaling``, ``attention_scale``, ``rerope_window``,
    ``rerope_leaky_k``, ``train_len``) go to ``jaxlab.attention.attention_config``.

    Raises:
      ValueError: an unknown key, or ``embed_dim`` not divisible by ``num_heads``.
    """
    items = dict(section.to_dict() if hasattr(section, "to_dict") else (section or {}))
    items.update(overrides)
    lm = {k: items.pop(k) for k in _LM_KEYS if k in items}
    embed_dim = lm.get("embed_dim", LMConfig.embed_dim)
    heads = items.pop("num_heads", 4)
    if embed_dim % heads:
        raise ValueError(f"embed_dim {embed_dim} not divisible by num_heads {heads}")
    base = AttentionConfig(num_heads=heads, head_dim=embed_dim // heads)
    return LMConfig(**lm, attention=attention_config(base, **items))


class MLP(nnx.Module):
    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.up = nnx.Linear(cfg.embed_dim, cfg.mlp_dim, dtype=dtype, rngs=rngs)
        self.down = nnx.Linear(cfg.mlp_dim, cfg.embed_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x_BLD: Float[Array, "B L D"]) -> Float[Array, "B L D"]:
        return self.down(nnx.gelu(self.up(x_BLD)))


class Block(nnx.Module):
    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        self.norm1 = nnx.RMSNorm(cfg.embed_dim, dtype=jnp.float32, rngs=rngs)
        self.attn = CausalSelfAttention(cfg.attention, cfg.embed_dim, dtype=cfg.dtype, rngs=rngs)
        self.norm2 = nnx.RMSNorm(cfg.embed_dim, dtype=jnp.float32, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x_BLD, positions_BL, valid_BL=None):
        # The residual stream keeps the model dtype (bf16 configs): sub-layer outputs are cast
        # to it, so no silent promotion to float32 under the CLI's standard promotion.
        x_BLD = x_BLD + self.attn(self.norm1(x_BLD), positions_BL, valid_BL).astype(x_BLD.dtype)
        return x_BLD + self.mlp(self.norm2(x_BLD)).astype(x_BLD.dtype)


class TinyLM(nnx.Module):
    """Byte-level pre-norm Transformer LM; returns float32 logits."""

    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Embed(cfg.vocab_size, cfg.embed_dim, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.norm = nnx.RMSNorm(cfg.embed_dim, dtype=jnp.float32, rngs=rngs)
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
