# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""Attention scale rules: the log-n (entropy-invariant) query factor and RoPE magnitudes.

Su's entropy-invariance argument (kexue.fm/archives/8823) keeps the attention entropy of a query
that sees ``n`` keys roughly constant by multiplying its logits by ``log_L n``, with ``L`` the
training length (512 in Su's runs), i.e. ``softmax(log_L(n) · q·k / √d)``:

* ``pretrain`` ("log n"): the model is trained with the factor ``ln(n)/ln(L)``; it is 1 at
  ``n = L``, below 1 for shorter prefixes and above 1 beyond.
* ``posthoc`` ("log n†", Su 9706): for a model trained without it, multiply ``q_n`` by
  ``max(1, ln(n)/ln(L))`` at inference; positions inside the training range are untouched.

With 0-based positions, a causal query at position ``p`` attends to ``n = p + 1`` keys. The
factor multiplies ``q`` once (so logits once). YaRN/longrope magnitudes live in the RoPE cos/sin
(``rope.rope_frequencies``); ``rope_attention_factor`` only reads that single source of truth.

References: Su (2021), kexue.fm/archives/8823; Su (2023), kexue.fm/archives/9706.
"""

import jax.numpy as jnp

from jaxlab import rope
from jaxlab.array_types import Array, Float, Int

LOGN_MODES = ("none", "pretrain", "posthoc")


def logn_factor(
    positions: Int[Array, "*batch L"], train_len: int, mode: str = "pretrain"
) -> Float[Array, "*batch L"]:
    """The query multiplier of log-n attention scaling at each (0-based) position.

    ``pretrain``: ``ln(p + 1) / ln(L)``; ``posthoc``: ``max(1, ln(p + 1) / ln(L))``;
    ``none``: 1.

    Args:
      positions: 0-based query positions ``p`` (``n = p + 1`` keys under a causal mask).
      train_len: Training length ``L`` (> 1).
      mode: ``"pretrain"``, ``"posthoc"`` or ``"none"``.

    Returns:
      float32 factors, same shape as ``positions``.

    References: Su (2021), kexue.fm/archives/8823.
    """
    if mode not in LOGN_MODES:
        raise ValueError(f"logn mode must be one of {LOGN_MODES}, got {mode!r}")
    if train_len < 2:
        raise ValueError(f"train_len must be >= 2, got {train_len}")
    ratio = jnp.log1p(positions.astype(jnp.float32)) / jnp.float32(jnp.log(train_len))
    if mode == "pretrain":
        return ratio
    if mode == "posthoc":
        return jnp.maximum(ratio, 1.0)
    return jnp.ones_like(ratio)


def rope_attention_factor(
    scaling: rope.RopeScaling, rotary_dim: int, base: float, *, seq_len=None
) -> float | Float[Array, ""]:
    """The cos/sin magnitude of a RoPE scaling (logits scale by its square).

    Delegates to ``rope.rope_frequencies`` so that YaRN/longrope magnitudes have one source.
    """
    return rope.rope_frequencies(scaling, rotary_dim, base, seq_len=seq_len)[1]
