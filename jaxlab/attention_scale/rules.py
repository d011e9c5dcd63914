# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""Softmax scale rules: one frozen, hashable :class:`ScaleRule` value per rule, one table.

A rule gives the multiplier of ``q·k`` for every query row, from the head dimension ``d``, the
number ``n`` of keys the row attends to (``i + 1`` under a causal mask; with a KV cache or a
sliding window, the keys actually attended) and the query position (Llama 4):

==================  =====================================================  =======================
kind                multiplier of ``q·k``                                  source
==================  =====================================================  =======================
``inverse_sqrt``    ``1/√d``                                               Vaswani et al. 2017
``mup``             ``1/d``                                                Yang et al. 2022 (μP)
``fixed``           ``α/√d`` (``alpha``, 2.5 recommended)                  kexue.fm/archives/9812
``logn``            ``log_L(n)/√d``, ``L = base_len`` (entropy-invariant)  kexue.fm/archives/8823
``logn_posthoc``    ``max(1, log_L n)/√d`` (log n†, for a model trained    kexue.fm/archives/9706
                    without it)
``chiang_cholak``   ``ln(n)/√d``                                           arXiv:2202.12172
``gradmax``         ``α*(n₀)/√d``, ``n₀ = n`` or ``max_len/2``             kexue.fm/archives/9812
``cosine``          ``τ`` on ``cos(q, k)`` (q, k ℓ2-normalised); ``τ =     9812; AM-Softmax, SimCSE
                    temperature`` or ``α*_cos(n₀, d)``; ``learned``: the
                    module multiplies by a trained ``exp(offset)``
``yarn``            ``m²/√d``, ``m = attention_factor`` or ``0.1·mscale·   arXiv:2309.00071;
                    ln s + 1`` (``s = factor``); DeepSeek's MLA factor     DeepSeek-V2 (MLA)
                    with ``mscale = mscale_all_dim``
``llama4``          ``[ln(⌊(pos+1)/floor_scale⌋ + 1)·attn_scale + 1]/√d``  HF Llama4TextAttention
                    (query temperature tuning; ``pos`` 0-based)
==================  =====================================================  =======================

Adding a rule is one entry in ``_RULES`` (its parameters and its multiplier), plus a field for
a new parameter. YaRN's ``m`` has one source, ``jaxlab.rope.yarn_mscale``; the RoPE path puts
``m`` into cos/sin instead (``rope.rope_frequencies``), and ``jaxlab.attention`` refuses a
config that enables both. ``logn_factor`` is the query-side log-n multiplier used by the RoPE
extrapolation experiment; it shares :func:`logn_ratio` with the ``logn`` rules.

References: Su (2021) kexue.fm/archives/8823; Su (2023) kexue.fm/archives/9706, /9812;
Peng et al. (2023) arXiv:2309.00071; Chiang & Cholak (2022) arXiv:2202.12172.
"""

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jaxlab import rope
from jaxlab.array_types import Array, ArrayLike, Float, Int, Shaped
from jaxlab.attention_scale import theory

LOGN_MODES = ("none", "pretrain", "posthoc")


@dataclasses.dataclass(frozen=True)
class ScaleRule:
    """A softmax scale rule (frozen and hashable: a static jit argument, a config field).

    Attributes:
      kind: One of ``KINDS`` (see the module table).
      alpha: ``fixed``: the multiplier α of the standardised scores.
      base_len: ``logn``, ``logn_posthoc``: the length ``L`` where the factor is 1 (Su: 512;
        the RoPE experiment uses the training length).
      n: ``gradmax``, ``cosine`` without ``temperature``: the fixed key count ``n₀``.
      max_len: ``gradmax``, ``cosine``: ``L_max``; ``n₀ = L_max/2`` when ``n`` is None
        (Su's compromise for decoders).
      temperature: ``cosine``: a fixed ``τ`` (None: ``α*_cos(n₀, d)``).
      learned: ``cosine``: the attention module learns a multiplicative offset of ``τ``.
      factor: ``yarn``: the context extension ``s``.
      mscale: ``yarn``: ``μ`` in ``0.1·μ·ln s + 1`` (DeepSeek: ``mscale_all_dim``).
      attention_factor: ``yarn``: an explicit ``m`` (replaces the formula, as in HF).
      floor_scale: ``llama4``: 8192 in Llama 4.
      attn_scale: ``llama4``: 0.1 in Llama 4.
    """

    kind: str = "inverse_sqrt"
    alpha: float | int = 2.5
    base_len: int = 512
    n: float | int | None = None
    max_len: int | None = None
    temperature: float | int | None = None
    learned: bool = False
    factor: float | int = 1.0
    mscale: float | int = 1.0
    attention_factor: float | int | None = None
    floor_scale: float | int = 8192.0
    attn_scale: float | int = 0.1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"ScaleRule.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind in ("logn", "logn_posthoc") and self.base_len < 2:
            raise ValueError(f"ScaleRule.base_len must be >= 2, got {self.base_len}")
        needs_n = self.kind == "gradmax" or (self.kind == "cosine" and self.temperature is None)
        if needs_n and self.n is None and self.max_len is None:
            raise ValueError(f"ScaleRule({self.kind!r}) needs n or max_len (n = max_len / 2)")
        if self.n is not None and self.n <= 1:
            raise ValueError(f"ScaleRule.n must be > 1, got {self.n}")
        unused = [f.name for f in dataclasses.fields(self)[1:]
                  if f.name not in self.params and getattr(self, f.name) != f.default]  # fmt: skip
        if unused:  # would be silently ignored and lost by to_dict
            raise ValueError(
                f"ScaleRule({self.kind!r}) does not use {unused}; it reads {self.params}"
            )

    @property
    def params(self) -> tuple[str, ...]:
        """The fields this kind reads (what ``to_dict`` exports besides ``kind``)."""
        return _RULES[self.kind][0]

    @property
    def normalizes_qk(self) -> bool:
        """Whether q and k are ℓ2-normalised before the product (cosine attention)."""
        return self.kind == "cosine"

    @property
    def fixed_n(self) -> float:
        """``n₀`` of ``gradmax``/``cosine``: ``n`` if given, else ``max_len / 2``."""
        return float(self.n) if self.n is not None else self.max_len / 2

    def to_dict(self) -> dict:
        """``{"kind": ..., <every parameter of this kind>}`` (JSON-ready)."""
        return {"kind": self.kind} | {name: getattr(self, name) for name in self.params}

    @classmethod
    def from_dict(cls, items: Mapping) -> "ScaleRule":
        """Inverse of :meth:`to_dict` (unknown keys raise ``TypeError``)."""
        return cls(**dict(items))


def logn_ratio(
    n: Shaped[ArrayLike, "*rows"], base_len: int, mode: str = "pretrain"
) -> Float[Array, "*rows"]:
    """``log_L(n)`` (``pretrain``), ``max(1, log_L n)`` (``posthoc``) or 1 (``none``), float32.

    The one implementation of the log-n factor (Su, kexue.fm/archives/8823 and /9706).
    """
    if mode not in LOGN_MODES:
        raise ValueError(f"logn mode must be one of {LOGN_MODES}, got {mode!r}")
    if base_len < 2:
        raise ValueError(f"train_len must be >= 2, got {base_len}")
    # Both logs by the same float32 op, so the factor is exactly 1 at n = base_len.
    ratio = jnp.log(jnp.asarray(n, jnp.float32)) / jnp.log(jnp.float32(base_len))
    if mode == "pretrain":
        return ratio
    if mode == "posthoc":
        return jnp.maximum(ratio, 1.0)
    return jnp.ones_like(ratio)


def logn_factor(
    positions: Int[Array, "*batch L"], train_len: int, mode: str = "pretrain"
) -> Float[Array, "*batch L"]:
    """The query multiplier of log-n attention scaling at each (0-based) causal position.

    ``pretrain``: ``ln(p + 1) / ln(L)``; ``posthoc``: ``max(1, ln(p + 1) / ln(L))``; ``none``:
    1. A causal query at position ``p`` attends to ``n = p + 1`` keys.

    Args:
      positions: 0-based query positions ``p``.
      train_len: Training length ``L`` (>= 2).
      mode: ``"pretrain"``, ``"posthoc"`` or ``"none"``.

    Returns:
      float32 factors, same shape as ``positions``.

    References: Su (2021), kexue.fm/archives/8823; Su (2023), kexue.fm/archives/9706.
    """
    return logn_ratio(jnp.asarray(positions).astype(jnp.float32) + 1.0, train_len, mode)


def query_scale(rule: ScaleRule, positions: Shaped[ArrayLike, "*rows"]) -> Float[Array, "*rows"]:
    """Llama 4's query temperature ``ln(⌊(pos + 1)/floor_scale⌋ + 1)·attn_scale + 1``.

    Natural log and a floor of the float division, as in HF ``Llama4TextAttention``; 1 for every
    ``pos + 1 < floor_scale``. Other kinds return ones.
    """
    pos = jnp.asarray(positions).astype(jnp.float32)
    if rule.kind != "llama4":
        return jnp.ones_like(pos)
    blocks = jnp.floor((pos + 1.0) / jnp.float32(rule.floor_scale))
    return jnp.log(blocks + 1.0) * jnp.float32(rule.attn_scale) + 1.0


def yarn_factor(rule: ScaleRule) -> float:
    """YaRN's ``m`` of a ``yarn`` rule: its ``attention_factor``, else ``rope.yarn_mscale``."""
    if rule.attention_factor is not None:
        return float(rule.attention_factor)
    return rope.yarn_mscale(rule.factor, rule.mscale)


@functools.lru_cache(maxsize=256)
def cosine_temperature(rule: ScaleRule, head_dim: int) -> float:
    """``τ`` of a ``cosine`` rule: ``temperature`` or the mean-field ``α*_cos(n₀, d)``."""
    if rule.temperature is not None:
        return float(rule.temperature)
    with jax.ensure_compile_time_eval():  # a Python constant, also while a caller traces
        return float(theory.alpha_star_cosine(jnp.float32(rule.fixed_n), head_dim))


@functools.lru_cache(maxsize=256)
def gradmax_alpha(rule: ScaleRule) -> float:
    """``α*(n₀)`` of a ``gradmax`` rule (mean-field normal scores, Newton)."""
    with jax.ensure_compile_time_eval():
        return float(theory.alpha_star_normal(jnp.float32(rule.fixed_n)))


def _inverse_sqrt(d):
    return jnp.float32(1.0 / math.sqrt(d))


# kind -> (parameter fields, multiplier(rule, d, n_rows, positions) of q·k per row).
_RULES: dict[str, tuple[tuple[str, ...], Callable]] = {
    "inverse_sqrt": ((), lambda r, d, n, p: _inverse_sqrt(d)),
    "mup": ((), lambda r, d, n, p: jnp.float32(1.0 / d)),
    "fixed": (("alpha",), lambda r, d, n, p: jnp.float32(r.alpha) * _inverse_sqrt(d)),
    "logn": (("base_len",), lambda r, d, n, p: logn_ratio(n, r.base_len) * _inverse_sqrt(d)),
    "logn_posthoc": (
        ("base_len",),
        lambda r, d, n, p: logn_ratio(n, r.base_len, "posthoc") * _inverse_sqrt(d),
    ),
    "chiang_cholak": ((), lambda r, d, n, p: jnp.log(n) * _inverse_sqrt(d)),
    "gradmax": (
        ("n", "max_len"),
        lambda r, d, n, p: jnp.float32(gradmax_alpha(r)) * _inverse_sqrt(d),
    ),
    "cosine": (
        ("n", "max_len", "temperature", "learned"),
        lambda r, d, n, p: jnp.float32(cosine_temperature(r, d)),
    ),
    "yarn": (
        ("factor", "mscale", "attention_factor"),
        lambda r, d, n, p: jnp.float32(yarn_factor(r) ** 2) * _inverse_sqrt(d),
    ),
    "llama4": (
        ("floor_scale", "attn_scale"),
        lambda r, d, n, p: query_scale(r, p) * _inverse_sqrt(d),
    ),
}
KINDS = tuple(_RULES)


def logit_scale(
    rule: ScaleRule,
    head_dim: int,
    n_keys: Shaped[ArrayLike, "*rows"],
    positions: Shaped[ArrayLike, "*rows"] | None = None,
) -> Float[Array, "*rows"]:
    """The float32 multiplier of ``q·k`` for each query row (the one place rules are applied).

    Args:
      rule: The rule.
      head_dim: ``d``.
      n_keys: Keys attended by each row (``i + 1`` for causal row ``i``; the attended count with
        a KV cache or a sliding window). Rules that ignore ``n`` broadcast a scalar.
      positions: 0-based query positions (Llama 4); default ``n_keys − 1`` (causal, from 0).

    Returns:
      float32 multipliers broadcast to ``n_keys``'s shape.
    """
    n = jnp.asarray(n_keys).astype(jnp.float32)
    pos = n - 1.0 if positions is None else jnp.asarray(positions)
    value = _RULES[rule.kind][1](rule, head_dim, n, pos)
    return jnp.broadcast_to(jnp.asarray(value, jnp.float32), n.shape)


def rope_attention_factor(
    scaling: rope.RopeScaling, rotary_dim: int, base: float, *, seq_len=None
) -> float | Float[Array, ""]:
    """The cos/sin magnitude of a RoPE scaling (logits scale by its square).

    Delegates to ``rope.rope_frequencies`` so that YaRN/longrope magnitudes have one source.
    """
    return rope.rope_frequencies(scaling, rotary_dim, base, seq_len=seq_len)[1]
