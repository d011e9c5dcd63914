"""Rotary position embeddings as a base-β number system, every context-extension scaling, ReRoPE.

Modules, by concept:

* ``scaling``: :class:`RopeScaling` and :func:`rope_frequencies` for every scaling kind (PI,
  NTK-aware/old/fixed/mixed, dynamic, YaRN, NTK-by-parts, llama3, longrope, proportional),
  :func:`from_hf_config`, YaRN's mscale.
* ``rotate``: :func:`apply_rope`, the rotation of query/key feature pairs.
* ``rerope``: ReRoPE (clipped relative positions) logits, training form and KV-cache decode.
* ``digits``: base-β and mixed-radix digits of a position (the number-system reading).
* ``evaluation``: repeated-text windows, frequency multipliers, bootstrap intervals over
  evaluation windows and the "≈ within a margin" verdict (Su's extrapolation protocol).

Example::

    from jaxlab.rope import RopeScaling, apply_rope, rope_frequencies
    scaling = RopeScaling("yarn", factor=4.0, original_max_position_embeddings=64)
    inv_freq, factor = rope_frequencies(scaling, 64, 10_000.0)
    q = apply_rope(q, positions, inv_freq, attention_factor=factor)

References: Su (2023), kexue.fm/archives/9675, /9706, /9708; Su et al. (2021) arXiv:2104.09864.
"""

from jaxlab.rope import digits, evaluation, rerope, rotate, scaling
from jaxlab.rope.digits import (
    beta_digits,
    mixed_radix_digits,
)
from jaxlab.rope.rerope import (
    rerope_decode_logits,
    rerope_logits,
)
from jaxlab.rope.rotate import (
    apply_rope,
)
from jaxlab.rope.scaling import (
    DYNAMIC_KINDS,
    KINDS,
    RopeScaling,
    base_inv_freq,
    from_hf_config,
    rope_frequencies,
    yarn_correction_range,
    yarn_mscale,
)

__all__ = [
    "scaling",
    "rotate",
    "rerope",
    "digits",
    "evaluation",
    "KINDS",
    "DYNAMIC_KINDS",
    "RopeScaling",
    "from_hf_config",
    "base_inv_freq",
    "yarn_mscale",
    "yarn_correction_range",
    "rope_frequencies",
    "apply_rope",
    "rerope_logits",
    "rerope_decode_logits",
    "beta_digits",
    "mixed_radix_digits",
]
