# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""Rotary position embeddings as a base-β number and every context-extension scaling.

Pair ``i = 0..d/2-1`` of a rotary dimension ``d`` rotates by ``n·f_i`` with ``f_i = b^{-2i/d}``.
Writing ``β = b^{2/d}``, ``n·f_i = n/β^i``: the angle of pair ``i`` is the ``i``-th base-β digit
of ``n`` before the ``mod β`` (replaced by the periodic cos/sin), so RoPE is a ``d/2``-digit
base-β representation of the position (Su, kexue.fm/archives/9675). Every scaling below is a
per-pair multiplier ``g_i = f'_i / f_i`` plus, for YaRN/longrope, an ``attention_factor`` that
multiplies cos and sin (logits get its square).

Kinds and their Hugging Face names (``transformers.modeling_rope_utils``):

======================  =======================================================================
kind                    rule (``k``/``s`` = ``factor``, ``L0`` = training length)
======================  =======================================================================
``default``             ``f_i = b^{-2i/d}``
``linear`` (HF)         ``f_i / s`` (position interpolation, PI)
``ntk_aware``           base ``b·k^{d/(d-2)}`` (bloc97)
``ntk_old``             base ``b·k`` (Su 9675, "NTK-RoPE-old")
``ntk_fixed``           ``g_i = k^{-2(i+1)/d}`` (Su 9706)
``ntk_mixed``           ``g_i = exp(-a (i+1)^{mix_b})``, ``a (d/2)^{mix_b} = ln k`` (Su 9706)
``dynamic`` (HF)        ``ntk_aware`` with ``k = s ℓ/L0 - (s-1)`` for current length ``ℓ > L0``
``yarn`` (HF)           ramp between PI and unscaled pairs, ``attention_factor = 0.1 ln s + 1``
``ntk_by_parts``        ``yarn`` frequencies with attention factor 1
``ntk_by_parts_v0``     the original two-ramp NTK-by-parts (jquesnelle/yarn)
``dynamic_yarn``        ``yarn`` with ``s = max(1, ℓ/L0)`` at current length ``ℓ``
``llama3`` (HF)         wavelength bands: keep / smooth / divide by ``s``
``longrope`` (HF)       per-pair ``short_factor``/``long_factor`` lists (Phi-3)
``proportional`` (HF)   partial rotation with exponents over the full head dim, zeros after
======================  =======================================================================

ReRoPE (clipped relative positions) lives in ``jaxlab.rope.rerope``.

References: Su (2023), kexue.fm/archives/9675, /9706, /9708; Chen et al. (2023) arXiv:2306.15595;
Peng et al. (2023) arXiv:2309.00071 (YaRN); bloc97 and emozilla (Reddit, 2023).
"""

import dataclasses
import math
from collections.abc import Mapping

import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Int

KINDS = (
    "default", "linear", "ntk_aware", "ntk_old", "ntk_fixed", "ntk_mixed", "dynamic",
    "ntk_by_parts", "ntk_by_parts_v0", "yarn", "dynamic_yarn", "llama3", "longrope",
    "proportional",
)  # fmt: skip
DYNAMIC_KINDS = ("dynamic", "dynamic_yarn", "longrope")

# Keys accepted from an HF ``rope_scaling`` / ``rope_parameters`` block.
_HF_KEYS = {
    "rope_type", "type", "rope_theta", "partial_rotary_factor", "factor", "scaling_factor",
    "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "mscale",
    "mscale_all_dim", "truncate", "low_freq_factor", "high_freq_factor", "short_factor",
    "long_factor",
    "mix_b", "ntk_factor", "extrapolation_factor",  # jaxlab extensions (ntk_mixed, v0)
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """A context-extension scaling (hashable, so usable as a static jit argument).

    Field names and defaults follow Hugging Face's ``rope_parameters``; ``mix_b``,
    ``ntk_factor`` and ``extrapolation_factor`` are jaxlab/jquesnelle extras.

    Attributes:
      kind: One of ``KINDS``.
      factor: Scale ``s`` (or ``k``). ``None`` means ``max_position_embeddings / original``
        (HF's rule for yarn/longrope), else 1.
      max_position_embeddings: The model's (extended) maximum length; ``L0`` for ``dynamic``.
      original_max_position_embeddings: Pre-training length ``L0`` for yarn, llama3, longrope.
      attention_factor: Explicit cos/sin magnitude (yarn, longrope); overrides the default.
      beta_fast: YaRN rotation count where the ramp starts (pairs faster than this extrapolate).
      beta_slow: YaRN rotation count where the ramp ends (slower pairs are interpolated).
      mscale: YaRN/DeepSeek numerator coefficient of ``0.1·m·ln s + 1``.
      mscale_all_dim: YaRN/DeepSeek denominator coefficient.
      truncate: YaRN: floor/ceil the ramp bounds to integers.
      low_freq_factor: llama3.
      high_freq_factor: llama3.
      short_factor: longrope per-pair extension factors for lengths ``<= L0``.
      long_factor: longrope per-pair extension factors for lengths ``> L0``.
      mix_b: NTK-mixed exponent ``b_mix`` (1 = NTK-fixed, 0 = PI).
      ntk_factor: ``ntk_by_parts_v0`` weight of the NTK blend.
      extrapolation_factor: ``ntk_by_parts_v0`` weight of the extrapolation blend.
      partial_rotary_factor: ``proportional`` only: fraction of pairs that rotate.
    """

    kind: str = "default"
    factor: float | int | None = 1.0
    max_position_embeddings: int | None = None
    original_max_position_embeddings: int | None = None
    attention_factor: float | int | None = None
    beta_fast: float | int = 32.0
    beta_slow: float | int = 1.0
    mscale: float | int | None = None
    mscale_all_dim: float | int | None = None
    truncate: bool = True
    low_freq_factor: float | int = 1.0
    high_freq_factor: float | int = 4.0
    short_factor: tuple[float, ...] | None = None
    long_factor: tuple[float, ...] | None = None
    mix_b: float | int = 0.625
    ntk_factor: float | int = 1.0
    extrapolation_factor: float | int = 1.0
    partial_rotary_factor: float | int = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"RopeScaling.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("short_factor", "long_factor"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(float(v) for v in value))

    @property
    def scale(self) -> float:
        """The factor ``s`` after HF's fallback ``max_position_embeddings / original``."""
        if self.factor is not None:
            return float(self.factor)
        if self.max_position_embeddings and self.original_max_position_embeddings:
            return self.max_position_embeddings / self.original_max_position_embeddings
        return 1.0

    @property
    def train_len(self) -> int:
        """``L0``: the original length if given, else ``max_position_embeddings``."""
        length = self.original_max_position_embeddings or self.max_position_embeddings
        if length is None:
            raise ValueError(f"rope kind {self.kind!r} needs max_position_embeddings or original")
        return int(length)

    @classmethod
    def from_hf(
        cls,
        block: Mapping | None,
        *,
        max_position_embeddings: int | None = None,
        original_max_position_embeddings: int | None = None,
    ) -> "RopeScaling":
        """Builds a scaling from an HF ``rope_scaling`` or ``rope_parameters`` block.

        Accepts legacy ``type``, the alias ``scaling_factor``, every jaxlab kind as
        ``rope_type`` and the jaxlab keys ``mix_b``, ``ntk_factor``, ``extrapolation_factor``;
        ``rope_theta`` and ``partial_rotary_factor`` are allowed (``from_hf_config`` reads them).

        Raises:
          ValueError: On an unknown key or rope type.
        """
        block = dict(block or {})
        unknown = sorted(set(block) - _HF_KEYS)
        if unknown:
            raise ValueError(f"unknown rope_scaling keys {unknown}; allowed: {sorted(_HF_KEYS)}")
        kind = block.pop("rope_type", None) or block.pop("type", None) or "default"
        block.pop("type", None)
        block.pop("rope_theta", None)
        prf = block.pop("partial_rotary_factor", 1.0)
        if "scaling_factor" in block:
            block.setdefault("factor", block.pop("scaling_factor"))
        if kind not in KINDS:
            raise ValueError(f"unknown rope type {kind!r}; known: {KINDS}")
        if kind in ("yarn", "llama3", "longrope"):
            block.setdefault(
                "original_max_position_embeddings",
                original_max_position_embeddings or max_position_embeddings,
            )
            if original_max_position_embeddings is not None:  # HF: the model attribute wins
                block["original_max_position_embeddings"] = original_max_position_embeddings
        if kind in ("yarn", "longrope"):
            block.setdefault("factor", None)
        for name in ("beta_fast", "beta_slow"):  # HF: `or` defaults (0 and None mean default)
            if name in block and not block[name]:
                del block[name]
        if block.get("truncate") is None:
            block.pop("truncate", None)
        for name, value in block.items():  # HF configs hold ints and lists; coerce to the fields
            if name in ("short_factor", "long_factor"):
                block[name] = tuple(float(v) for v in value)
            elif name == "original_max_position_embeddings" and value is not None:
                block[name] = int(value)
            elif name != "truncate" and isinstance(value, int | float):
                block[name] = float(value)
        return cls(
            kind=kind,
            max_position_embeddings=max_position_embeddings,
            partial_rotary_factor=prf if kind == "proportional" else 1.0,
            **block,
        )


def from_hf_config(config: Mapping) -> tuple[RopeScaling, int, float]:
    """Reads ``(scaling, rotary_dim, base)`` from an HF model-config dict (config.json keys).

    ``rotary_dim = int(head_dim · partial_rotary_factor)``, with ``head_dim`` falling back to
    ``hidden_size // num_attention_heads``; for ``proportional`` it is the full head dim.
    """
    block = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    base = float(block.get("rope_theta", config.get("rope_theta", 10000.0)))
    prf = block.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    block["partial_rotary_factor"] = prf
    scaling = RopeScaling.from_hf(
        block,
        max_position_embeddings=config.get("max_position_embeddings"),
        original_max_position_embeddings=config.get("original_max_position_embeddings"),
    )
    rotary_dim = head_dim if scaling.kind == "proportional" else int(head_dim * prf)
    return scaling, rotary_dim, base


def base_inv_freq(rotary_dim: int, base: float | int, *, dtype=jnp.float32) -> Float[Array, " P"]:
    """Unscaled inverse frequencies ``f_i = 1 / b^{2i/d}``, computed like HF (in ``dtype``)."""
    exponent = jnp.arange(0, rotary_dim, 2, dtype=dtype) / rotary_dim
    return 1.0 / (jnp.asarray(base, dtype) ** exponent)


def yarn_mscale(scale: float | int, mscale: float | int = 1.0) -> float:
    """YaRN's ``0.1·m·ln s + 1`` for ``s > 1``, else 1 (HF ``get_mscale``)."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn_correction_range(
    beta_fast: float | int,
    beta_slow: float | int,
    rotary_dim: int,
    base: float | int,
    train_len: int,
    truncate: bool = True,
) -> tuple[float, float]:
    """YaRN ramp bounds ``(c(beta_fast), c(beta_slow))``, ``c(r) = d·ln(L0/(2πr)) / (2 ln b)``.

    ``c(r)`` is the pair index that makes ``r`` rotations over ``L0``. Bounds are floored/ceiled
    if ``truncate`` and clamped to ``[0, d-1]`` (HF clamps to ``d-1``, not ``d/2-1``).
    """

    def dim_of(rotations):
        return rotary_dim * math.log(train_len / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dim_of(beta_fast), dim_of(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return float(max(low, 0)), float(min(high, rotary_dim - 1))


def _ramp(low: float, high: float, num: int, dtype) -> Array:
    if low == high:
        high += 0.001  # HF's guard against a zero-width ramp
    return jnp.clip((jnp.arange(num, dtype=dtype) - low) / (high - low), 0.0, 1.0)


def _yarn_inv_freq(s: RopeScaling, rotary_dim, base, factor, dtype) -> Array:
    pos_freqs = jnp.asarray(base, dtype) ** (jnp.arange(0, rotary_dim, 2, dtype=dtype) / rotary_dim)
    low, high = yarn_correction_range(
        s.beta_fast, s.beta_slow, rotary_dim, base, s.train_len, s.truncate
    )
    extrapolate = 1.0 - _ramp(low, high, rotary_dim // 2, dtype)
    interpolated = 1.0 / (factor * pos_freqs)
    return interpolated * (1.0 - extrapolate) + (1.0 / pos_freqs) * extrapolate


def _yarn_attention_factor(s: RopeScaling, scale: float | int) -> float:
    if s.attention_factor is not None:
        return float(s.attention_factor)
    if s.mscale and s.mscale_all_dim:
        return float(yarn_mscale(scale, s.mscale) / yarn_mscale(scale, s.mscale_all_dim))
    return yarn_mscale(scale)


def rope_frequencies(
    scaling: RopeScaling,
    rotary_dim: int,
    base: float | int,
    *,
    seq_len: int | Int[ArrayLike, ""] | None = None,
    dtype=jnp.float32,
) -> tuple[Float[Array, " P"], float | Float[Array, ""]]:
    """Inverse frequencies and cos/sin magnitude for ``scaling`` (``P = rotary_dim / 2``).

    See the module table for every rule. Static kinds ignore ``seq_len``; dynamic kinds
    (``dynamic``, ``dynamic_yarn``, ``longrope``) accept a traced ``seq_len`` and select with
    ``jnp.where``, so one compilation serves every length. HF's convention is followed: for
    ``dynamic`` the effective scale is ``s·ℓ/L0 - (s-1)`` for ``ℓ > L0`` and the base is unchanged
    for ``ℓ <= L0``; ``longrope`` uses ``long_factor`` only for ``ℓ > L0`` (strict).

    Dynamic kinds are for full-sequence evaluation: HF recomputes frequencies when the length
    grows, but keys already in a KV cache keep their old rotation (transformers #25104). Either
    freeze ``seq_len`` for a whole generation or cache pre-RoPE keys and re-rotate.

    Args:
      scaling: The scaling.
      rotary_dim: ``d``, the number of rotated features (even).
      base: RoPE base ``b`` (``rope_theta``).
      seq_len: Current sequence length ``ℓ`` (Python int for HF-exact doubles, or traced).
      dtype: float32 (HF parity) or float64 (analysis, under ``jax.enable_x64``).

    Returns:
      ``(inv_freq [P], attention_factor)``; the factor is a Python float for static kinds and
      for dynamic kinds with a Python ``seq_len``, else a traced scalar.

    References: HF ``modeling_rope_utils.ROPE_INIT_FUNCTIONS``; Su 9675/9706; arXiv:2309.00071.
    """
    s, d, kind = scaling, rotary_dim, scaling.kind
    if d % 2:
        raise ValueError(f"rotary_dim must be even, got {d}")
    f = base_inv_freq(d, base, dtype=dtype)
    k = s.scale
    i = jnp.arange(d // 2, dtype=dtype)
    traced = seq_len is not None and not isinstance(seq_len, int)
    if kind == "default":
        return f, 1.0
    if kind == "linear":
        return f / k, 1.0
    if kind == "ntk_aware":
        return base_inv_freq(d, base * k ** (d / (d - 2)), dtype=dtype), 1.0
    if kind == "ntk_old":
        return base_inv_freq(d, base * k, dtype=dtype), 1.0
    if kind == "ntk_fixed":
        return f * jnp.asarray(k, dtype) ** (-2.0 * (i + 1.0) / d), 1.0
    if kind == "ntk_mixed":
        a = math.log(k) / (d / 2) ** s.mix_b
        return f * jnp.exp(-a * (i + 1.0) ** s.mix_b), 1.0
    if kind == "dynamic":
        length = s.max_position_embeddings
        if length is None:
            raise ValueError("dynamic rope needs max_position_embeddings")
        if not traced:
            ell = length if seq_len is None else max(seq_len, length)
            new_base = base * ((k * ell / length) - (k - 1)) ** (d / (d - 2))
            return base_inv_freq(d, new_base, dtype=dtype), 1.0
        ell = jnp.maximum(jnp.asarray(seq_len).astype(dtype), length)
        new_base = base * ((k * ell / length) - (k - 1)) ** (d / (d - 2))
        exponent = jnp.arange(0, d, 2, dtype=dtype) / d
        return 1.0 / (new_base**exponent), 1.0
    if kind in ("yarn", "ntk_by_parts"):
        factor = _yarn_attention_factor(s, k) if kind == "yarn" else 1.0
        return _yarn_inv_freq(s, d, base, k, dtype), factor
    if kind == "dynamic_yarn":
        if not traced:
            ell = s.train_len if seq_len is None else seq_len
            scale = max(1.0, ell / s.train_len)
            return _yarn_inv_freq(s, d, base, scale, dtype), _yarn_attention_factor(s, scale)
        scale = jnp.maximum(jnp.asarray(seq_len).astype(dtype) / s.train_len, 1.0)
        ramp = 1.0 - _ramp(*yarn_correction_range(
            s.beta_fast, s.beta_slow, d, base, s.train_len, s.truncate), d // 2, dtype)  # fmt: skip
        inv = f / scale * (1.0 - ramp) + f * ramp
        return inv, jnp.where(scale > 1.0, 0.1 * jnp.log(scale) + 1.0, 1.0)
    if kind == "ntk_by_parts_v0":
        linear = f / k
        ntk = base_inv_freq(d, base * k ** (d / (d - 2)), dtype=dtype)
        low, high = yarn_correction_range(1.25, 0.75, d, base, s.train_len)
        mask = (1.0 - _ramp(low, high, d // 2, dtype)) * s.ntk_factor
        inv = linear * (1.0 - mask) + ntk * mask
        low, high = yarn_correction_range(16, 2, d, base, s.train_len)
        mask = (1.0 - _ramp(low, high, d // 2, dtype)) * s.extrapolation_factor
        return inv * (1.0 - mask) + f * mask, 1.0
    if kind == "llama3":
        length = s.train_len
        low_wavelen, high_wavelen = length / s.low_freq_factor, length / s.high_freq_factor
        wavelen = 2 * math.pi / f
        inv = jnp.where(wavelen > low_wavelen, f / k, f)
        smooth = (length / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
        smoothed = (1.0 - smooth) * inv / k + smooth * inv
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return jnp.where(medium, smoothed, inv), 1.0
    if kind == "longrope":
        length = s.train_len
        if s.attention_factor is not None:
            factor = float(s.attention_factor)
        elif k <= 1.0:
            factor = 1.0
        else:
            factor = math.sqrt(1 + math.log(k) / math.log(length))
        short, long_ = (jnp.asarray(v, dtype) for v in (s.short_factor, s.long_factor))
        shape = jnp.arange(0, d, 2, dtype=dtype) / d
        if traced:
            ext = jnp.where(jnp.asarray(seq_len) > length, long_, short)
        else:
            ext = long_ if seq_len and seq_len > length else short
        return 1.0 / (ext * jnp.asarray(base, dtype) ** shape), factor
    if kind == "proportional":
        pairs = int(s.partial_rotary_factor * d // 2)
        rotated = 1.0 / (jnp.asarray(base, dtype) ** (jnp.arange(0, 2 * pairs, 2, dtype=dtype) / d))
        return jnp.concatenate([rotated, jnp.zeros(d // 2 - pairs, dtype)]) / k, 1.0
    raise AssertionError(kind)
