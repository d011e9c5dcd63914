# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""Causal multi-head self-attention (Flax NNX) and :class:`AttentionConfig`, its one config.

Everything numeric comes from the pure modules; this module only wires them by config:

* ``cfg.rope``: a resolved ``jaxlab.rope.RopeScaling`` (``None``: no position encoding) with
  ``cfg.rotary_dim`` and ``cfg.rope_base``; it selects the frequencies and the cos/sin magnitude
  (``rope.rope_frequencies``). Dynamic kinds use the current length ``max(position) + 1``
  (traced: no recompilation).
* ``cfg.rerope_window > 0``: ReRoPE (``cfg.rerope_leaky_k == 0``) or Leaky ReRoPE with stretch
  ``k`` (Su, kexue.fm/archives/9708): relative positions beyond ``w`` are clipped/compressed.
* ``cfg.scale``: a ``jaxlab.attention_scale.ScaleRule`` (1/√d, μP, fixed α, log-n, gradient-max,
  cosine, YaRN, Llama 4); :func:`jaxlab.attention_scale.logit_scale` gives the float32
  multiplier of each query row from ``n`` = the number of keys the row attends to (causal and
  padding masks, or the cache prefix when decoding). Cosine rules normalise q and k first; a
  learned cosine temperature is a parameter of this module. YaRN's magnitude lives either in
  cos/sin (the RoPE scaling) or in the logits (the rule), never both: the config refuses that.

:func:`attention_config` maps the flat keys of config files and ``--config.model.*`` overrides
(``position``, ``rope_theta``, ``rope_scaling`` HF items, ``attention_scale``, ...) onto an
:class:`AttentionConfig`; :meth:`AttentionConfig.to_dict` / :meth:`AttentionConfig.from_dict`
round-trip it through JSON (checkpoint metadata).

The decode path (:meth:`CausalSelfAttention.decode`) caches **pre-RoPE** keys and rotates them
by their offset to the query at every step, so ReRoPE and dynamic scalings decode exactly like
prefill of the same prefix (HF's dynamic-NTK cache drift, transformers #25104, cannot happen).
"""

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab import config_args, rope
from jaxlab.array_types import Array, Bool, Float, Int
from jaxlab.attention_scale import ScaleRule, logit_scale
from jaxlab.rope import RopeScaling, rerope

POSITIONS = ("none", "rope")
_MAGNITUDE_KINDS = ("yarn", "dynamic_yarn", "longrope")  # RoPE kinds with a cos/sin magnitude


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """Everything :class:`CausalSelfAttention` needs (frozen, hashable, resolved).

    Attributes:
      num_heads: ``H``.
      head_dim: ``K`` (even).
      rope: The resolved RoPE scaling; ``None`` for no position encoding (NoPE).
      rotary_dim: Rotated features per head (default ``head_dim``).
      rope_base: RoPE base ``b`` (``rope_theta``).
      scale: The softmax scale rule.
      rerope_window: ReRoPE window ``w`` (0: off).
      rerope_leaky_k: Leaky ReRoPE stretch ``k`` (0: plain ReRoPE).
      train_len: Training length ``L0`` (RoPE scalings' original length, legacy log-n base).

    Raises:
      ValueError: odd ``head_dim``, a bad ``rotary_dim``, negative window/stretch, or YaRN's
        magnitude enabled in both cos/sin (``rope``) and the logits (``scale``).
    """

    num_heads: int = 4
    head_dim: int = 16
    rope: RopeScaling | None = RopeScaling()
    rotary_dim: int | None = None
    rope_base: float | int = 10_000.0
    scale: ScaleRule = ScaleRule()
    rerope_window: int = 0
    rerope_leaky_k: float | int = 0.0
    train_len: int = 128

    def __post_init__(self):
        if self.head_dim % 2 or self.head_dim < 2:
            raise ValueError(f"head_dim must be a positive even integer, got {self.head_dim}")
        if self.rotary_dim is None:
            object.__setattr__(self, "rotary_dim", self.head_dim)
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim:
            raise ValueError(f"rotary_dim must be even in (0, head_dim], got {self.rotary_dim}")
        if self.rerope_window < 0 or self.rerope_leaky_k < 0:
            raise ValueError("rerope_window and rerope_leaky_k must be >= 0")
        if self.scale.kind == "yarn" and self.rope is not None:
            r = self.rope
            deepseek = bool(r.mscale and r.mscale_all_dim) and r.attention_factor is None
            allowed = deepseek and self.scale.mscale == r.mscale_all_dim  # MLA: by design
            if r.kind in _MAGNITUDE_KINDS and not allowed:
                raise ValueError(
                    f"scale rule 'yarn' and rope kind {r.kind!r} both apply YaRN's magnitude; "
                    "keep one (rope: cos/sin, or scale: logits)"
                )

    def to_dict(self) -> dict:
        """A JSON-ready dict; :meth:`from_dict` re-creates an equal config."""
        out = dataclasses.asdict(self)
        out["rope"] = None if self.rope is None else dataclasses.asdict(self.rope)
        out["scale"] = self.scale.to_dict()
        return out

    @classmethod
    def from_dict(cls, items: Mapping) -> "AttentionConfig":
        items = dict(items)
        if items.get("rope") is not None:
            rope_items = {
                k: tuple(v) if isinstance(v, list) else v for k, v in items["rope"].items()
            }
            items["rope"] = rope.RopeScaling(**rope_items)
        items["scale"] = ScaleRule.from_dict(items.get("scale") or {})
        return cls(**items)


def _scale_rule(value, train_len: int) -> ScaleRule:
    """``attention_scale`` of a config: a kind name (log-n kinds take ``L = train_len``, as the
    RoPE experiments always did), a mapping of :class:`ScaleRule` fields, or a rule."""
    if isinstance(value, ScaleRule):
        return value
    if isinstance(value, str):
        if value in ("logn", "logn_posthoc"):
            return ScaleRule(value, base_len=train_len)
        return ScaleRule(value)
    return config_args.to_dataclass(ScaleRule, value)


def attention_config(base: AttentionConfig | None = None, **flat) -> AttentionConfig:
    """Applies the flat config keys to ``base`` (default ``AttentionConfig()``).

    Keys: ``num_heads``, ``head_dim``, ``train_len``, ``position`` (``"none"``/``"rope"``),
    ``rope_theta``, ``rope_scaling`` (HF-style items or mapping, resolved with
    ``RopeScaling.from_hf(..., max_position_embeddings=train_len)``; ``partial_rotary_factor``
    and ``rope_theta`` items are honoured), ``attention_scale`` (see :func:`_scale_rule`),
    ``rerope_window``, ``rerope_leaky_k``.

    Raises:
      ValueError: an unknown key or position.
    """
    cfg = base or AttentionConfig()
    known = ("num_heads", "head_dim", "train_len", "position", "rope_theta", "rope_scaling",
             "attention_scale", "rerope_window", "rerope_leaky_k")  # fmt: skip
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise ValueError(f"unknown attention config keys {unknown}; known: {list(known)}")
    direct = {k: flat[k] for k in ("num_heads", "head_dim", "train_len", "rerope_window",
                                   "rerope_leaky_k") if k in flat}  # fmt: skip
    if "rerope_leaky_k" in direct:
        direct["rerope_leaky_k"] = float(direct["rerope_leaky_k"])
    updates = dict(direct)
    head_dim = direct.get("head_dim", cfg.head_dim)
    train_len = direct.get("train_len", cfg.train_len)
    if "rope_theta" in flat:
        updates["rope_base"] = float(flat["rope_theta"])
    if "rope_scaling" in flat:
        items = dict(flat["rope_scaling"] or ())
        scaling = rope.RopeScaling.from_hf(items, max_position_embeddings=train_len)
        prf = float(items.get("partial_rotary_factor", 1.0))
        updates["rope"] = scaling
        updates["rotary_dim"] = head_dim if scaling.kind == "proportional" else int(head_dim * prf)
        if "rope_theta" in items:
            updates["rope_base"] = float(items["rope_theta"])
    elif "head_dim" in direct:
        updates["rotary_dim"] = None
    position = flat.get("position")
    if position is not None and position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    if position == "none":
        updates["rope"] = None
    elif position == "rope" and updates.get("rope", cfg.rope) is None:
        updates["rope"] = rope.RopeScaling()
    if "attention_scale" in flat:
        updates["scale"] = _scale_rule(flat["attention_scale"], train_len)
    return dataclasses.replace(cfg, **updates)


def describe(cfg: AttentionConfig) -> dict:
    """The exact position encoding and scale rule a config uses (for config.json / reports)."""
    out = cfg.to_dict()
    if cfg.rope is not None and cfg.rope.kind not in rope.DYNAMIC_KINDS:
        out["rope_attention_factor"] = float(
            rope.rope_frequencies(cfg.rope, cfg.rotary_dim, cfg.rope_base)[1]
        )
    return out


def _frequencies(cfg: AttentionConfig, seq_len):
    return rope.rope_frequencies(cfg.rope, cfg.rotary_dim, cfg.rope_base, seq_len=seq_len)


def _softmax_attend(logits_BHLS, mask_BHLS, v_BSHK):
    """Masked softmax in float32, then the weighted sum; rows with no visible key give zero."""
    logits_BHLS = jnp.where(mask_BHLS, logits_BHLS, -jnp.inf)
    row_max = jnp.max(logits_BHLS, axis=-1, keepdims=True)
    row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    weights = jnp.exp(logits_BHLS - jax.lax.stop_gradient(row_max))
    weights = weights / jnp.maximum(weights.sum(-1, keepdims=True), 1e-30)
    return jnp.einsum("bhqs,bshk->bqhk", weights.astype(v_BSHK.dtype), v_BSHK)


def position_logits(
    cfg: AttentionConfig,
    q_BLHK: Float[Array, "B L H K"],
    k_BLHK: Float[Array, "B L H K"],
    positions_BL: Int[Array, "B L"],
) -> Float[Array, "B H L L"]:
    """Unscaled, unmasked float32 logits ``q_i·k_j`` under the configured position encoding."""
    if cfg.rope is None:
        return jnp.einsum("bqhk,bshk->bhqs", q_BLHK, k_BLHK).astype(jnp.float32)
    inv_freq, factor = _frequencies(cfg, jnp.max(positions_BL) + 1)
    if cfg.rerope_window > 0:
        if cfg.rotary_dim != q_BLHK.shape[-1]:
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
    kw = dict(attention_factor=factor, rotary_dim=cfg.rotary_dim)
    q_BLHK = rope.apply_rope(jnp.swapaxes(q_BLHK, 1, 2), pos_BL1.swapaxes(1, 2), inv_freq, **kw)
    k_BLHK = rope.apply_rope(jnp.swapaxes(k_BLHK, 1, 2), pos_BL1.swapaxes(1, 2), inv_freq, **kw)
    return jnp.einsum("bhqk,bhsk->bhqs", q_BLHK, k_BLHK).astype(jnp.float32)


def _unit(x):
    """ℓ2-normalises the last axis in float32 (cosine attention), back in ``x``'s dtype."""
    x32 = x.astype(jnp.float32)
    return (x32 * jax.lax.rsqrt(jnp.sum(x32 * x32, -1, keepdims=True) + 1e-12)).astype(x.dtype)


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention; positions are absolute token indices (0-based).

    Args:
      cfg: The attention config.
      embed_dim: Model width ``D`` (input and output features).
      dtype: Activation dtype of the projections (logits are float32 whatever it is).
      rngs: Parameter initialisation.
    """

    def __init__(
        self, cfg: AttentionConfig, embed_dim: int, *, dtype: str = "float32", rngs: nnx.Rngs
    ):
        self.cfg = cfg
        self.dtype = dtype
        heads, head_dim = cfg.num_heads, cfg.head_dim
        init = nnx.initializers.lecun_normal()
        self.qkv = nnx.LinearGeneral(
            embed_dim, (3, heads, head_dim), use_bias=False, dtype=jnp.dtype(dtype),
            kernel_init=init, rngs=rngs,
        )  # fmt: skip
        self.out = nnx.LinearGeneral(
            (heads, head_dim), embed_dim, axis=(-2, -1), use_bias=False, dtype=jnp.dtype(dtype),
            kernel_init=init, rngs=rngs,
        )  # fmt: skip
        if cfg.scale.kind == "cosine" and cfg.scale.learned:
            self.log_temperature = nnx.Param(jnp.zeros((), jnp.float32))  # offset of ln τ

    def _row_scale(self, n_keys, positions):
        scale = logit_scale(self.cfg.scale, self.cfg.head_dim, n_keys, positions)
        if self.cfg.scale.kind == "cosine" and self.cfg.scale.learned:
            scale = scale * jnp.exp(self.log_temperature[...])
        return scale

    def _project(self, x):
        qkv = self.qkv(x)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.cfg.scale.normalizes_qk:
            q, k = _unit(q), _unit(k)
        return q, k, v

    def __call__(
        self,
        x_BLD: Float[Array, "B L D"],
        positions_BL: Int[Array, "B L"],
        valid_BL: Bool[Array, "B L"] | None = None,
    ) -> Float[Array, "B L D"]:
        q_BLHK, k_BLHK, v_BLHK = self._project(x_BLD)
        logits_BHLL = position_logits(self.cfg, q_BLHK, k_BLHK, positions_BL)
        length = x_BLD.shape[1]
        mask_BHLL = jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]
        if valid_BL is not None:
            mask_BHLL = mask_BHLL & valid_BL[:, None, None, :]
        n_keys_BL = jnp.maximum(mask_BHLL[:, 0].sum(-1), 1)  # keys attended per row
        n_keys_BL = jnp.broadcast_to(n_keys_BL, positions_BL.shape)
        scale_BL = self._row_scale(n_keys_BL, positions_BL)
        logits_BHLL = logits_BHLL * scale_BL[:, None, :, None]
        return self.out(_softmax_attend(logits_BHLL, mask_BHLL, v_BLHK))

    def init_cache(self, batch_size: int, max_len: int) -> dict:
        """An empty KV cache of **pre-RoPE** keys and values, ``[B, S, H, K]`` each."""
        shape = (batch_size, max_len, self.cfg.num_heads, self.cfg.head_dim)
        dtype = jnp.dtype(self.dtype)
        return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}

    def decode(
        self, x_B1D: Float[Array, "B 1 D"], position: Int[Array, ""], cache: dict
    ) -> tuple[Float[Array, "B 1 D"], dict]:
        """One decoding step at ``position`` (0-based; slots ``0..position-1`` hold the prefix).

        Keys are cached before rotation; each step rotates key ``j`` by its offset to the query
        (``rerope.rerope_decode_logits``; a window of the cache length is plain RoPE). Dynamic
        scalings use the current length ``position + 1``, like a prefill of the prefix; the scale
        rule sees ``n = position + 1`` attended keys.

        Returns:
          ``(y_B1D, cache)`` with this step's key and value written at slot ``position``.
        """
        cfg = self.cfg
        q_B1HK, k_B1HK, v_B1HK = self._project(x_B1D)
        q_BHK = q_B1HK[:, 0]
        start = (0, position, 0, 0)
        cache = {
            "k": jax.lax.dynamic_update_slice(cache["k"], k_B1HK.astype(cache["k"].dtype), start),
            "v": jax.lax.dynamic_update_slice(cache["v"], v_B1HK.astype(cache["v"].dtype), start),
        }
        max_len = cache["k"].shape[1]
        key_pos_S = jnp.arange(max_len, dtype=jnp.int32)
        if cfg.rope is None:
            logits_BHS = jnp.einsum("bhk,bshk->bhs", q_BHK, cache["k"]).astype(jnp.float32)
        else:
            inv_freq, factor = _frequencies(cfg, position + 1)
            if cfg.rotary_dim != q_BHK.shape[-1]:
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
        scale = self._row_scale(position + 1, position)
        logits_BH1S = (logits_BHS * scale)[:, :, None, :]
        mask_11S = (key_pos_S <= position)[None, None, None, :]
        return self.out(_softmax_attend(logits_BH1S, mask_11S, cache["v"])), cache
