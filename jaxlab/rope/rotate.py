# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""Applying rotary position embeddings: rotate feature pairs of queries and keys by ``n·f_i``.

The frequencies ``f_i`` come from :func:`jaxlab.rope.scaling.rope_frequencies`; this module only
rotates. Two pair layouts are supported (HF rotate-half and RoFormer interleaved), partial
rotation (``rotary_dim`` < head dim), and a YaRN/longrope ``attention_factor`` that scales cos
and sin.

References: Su et al. (2021), arXiv:2104.09864 (RoFormer).
"""

import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Int


def _rotate(x, angles, attention_factor, layout: str, rotary_dim: int | None):
    """Rotates the first ``rotary_dim`` features of ``x`` by ``angles`` (float32 or float64)."""
    num_pairs = angles.shape[-1]
    rot = 2 * num_pairs if rotary_dim is None else rotary_dim
    if rot != 2 * num_pairs or rot > x.shape[-1]:
        raise ValueError(f"rotary_dim {rot} needs {rot // 2} frequencies, got {num_pairs}")
    cdtype = angles.dtype
    angles = angles.reshape((1,) * (x.ndim - angles.ndim) + angles.shape)
    cos = jnp.cos(angles) * jnp.asarray(attention_factor, cdtype)
    sin = jnp.sin(angles) * jnp.asarray(attention_factor, cdtype)
    xr = x[..., :rot].astype(cdtype)
    if layout == "half":
        x1, x2 = xr[..., :num_pairs], xr[..., num_pairs:]
        out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    elif layout == "interleaved":
        x1, x2 = xr[..., 0::2], xr[..., 1::2]
        out = jnp.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        out = out.reshape(xr.shape)
    else:
        raise ValueError(f"layout must be 'half' or 'interleaved', got {layout!r}")
    return jnp.concatenate([out.astype(x.dtype), x[..., rot:]], axis=-1)


def _angles(positions, inv_freq, x_dtype):
    cdtype = jnp.float64 if x_dtype == jnp.float64 else jnp.float32
    freqs = inv_freq.astype(cdtype).reshape((1,) * positions.ndim + inv_freq.shape)
    return positions.astype(cdtype)[..., None] * freqs


def apply_rope(
    x: Float[Array, "*#batch L K"],
    positions: Int[Array, "*#batch L"] | Float[Array, "*#batch L"],
    inv_freq: Float[Array, " P"],
    *,
    attention_factor: float | Float[ArrayLike, ""] = 1.0,
    layout: str = "half",
    rotary_dim: int | None = None,
) -> Float[Array, "*#batch L K"]:
    """Rotates pair ``i`` of the first ``rotary_dim`` features at position ``n`` by ``n·f_i``.

    ``half`` (HF LLaMA, rotate-half) pairs ``(x_i, x_{i+d/2})``; ``interleaved`` (RoFormer,
    GPT-J) pairs ``(x_{2i}, x_{2i+1})``. Each pair maps to
    ``a·(x₁cos θ − x₂sin θ, x₂cos θ + x₁sin θ)`` with ``a = attention_factor``. Angles and cos/sin
    are formed in float32 (float64 for float64 inputs) and the result is cast back to ``x.dtype``;
    features past ``rotary_dim = 2P`` pass through. Positions may be non-contiguous or fractional.

    Args:
      x: Queries or keys, position axis second to last.
      positions: Position of each row (broadcast against ``x``'s leading axes).
      inv_freq: ``P`` inverse frequencies from ``rope_frequencies``.
      attention_factor: cos/sin magnitude (YaRN/longrope); applied here exactly once.
      layout: ``"half"`` or ``"interleaved"``.
      rotary_dim: Number of rotated features; defaults to ``2P``.

    Returns:
      The rotated array, same shape and dtype as ``x``.

    References: Su et al. (2021), arXiv:2104.09864 (RoFormer).
    """
    return _rotate(x, _angles(positions, inv_freq, x.dtype), attention_factor, layout, rotary_dim)
