"""EMO: earth mover's distance as a language-model loss (Ren et al. 2023; Su, kexue.fm/9797).

Modules, by concept:

- ``loss``: the closed form 1 − ⟨Σ_i p_i ê_i, ê_t⟩ from logits, the soft-target upper bound, the
  reference's MLE/EMO mixings and their named presets, masked means, next-token entropy.
- ``fused``: the LM-head loss computed in token chunks (value and gradient in one pass) or
  vocabulary chunks, with a custom VJP, so the [N, V] logits are never built (the default path
  for training); ``lm_head_cross_entropy``, CE alone on the same path.
- ``fused_vocab``: the vocabulary-chunked (online-softmax) variant behind ``vocab_chunk=``.
- ``reference``: a direct port of the reference's full-logits, one-hot formulation (benchmark
  baseline).
- ``quality``: sample-quality measures for the fine-tuning experiment: MAUVE, distinct-n,
  repetition rate, and ancestral sampling from a logits function.
- ``lm``: the NNX side: attach a frozen cost embedding to a model and the trainer losses
  (``jaxlab.train.LOSSES``).

References: S. Ren, Z. Wu, K. Q. Zhu, arXiv:2310.04691 (ICLR 2024), github.com/DRSY/EMO;
Su Jianlin, https://kexue.fm/archives/9797.
"""

from jaxlab.emo.fused import lm_head_cross_entropy, lm_head_loss, lm_head_losses
from jaxlab.emo.loss import (
    PRESETS,
    Mixed,
    Preset,
    combine,
    cost_embedding,
    cross_entropy_from_logits,
    emo_from_logits,
    emo_loss,
    emo_soft_target,
    entropy_from_logits,
    get_preset,
    masked_mean,
    mix,
    transport_cost,
)
from jaxlab.emo.quality import distinct_n, mauve, mauve_from_histograms, repetition_rate, sample
from jaxlab.emo.reference import reference_losses

__all__ = [
    "PRESETS",
    "Mixed",
    "Preset",
    "combine",
    "cost_embedding",
    "cross_entropy_from_logits",
    "distinct_n",
    "emo_from_logits",
    "emo_loss",
    "emo_soft_target",
    "entropy_from_logits",
    "get_preset",
    "lm_head_cross_entropy",
    "lm_head_loss",
    "lm_head_losses",
    "masked_mean",
    "mauve",
    "mauve_from_histograms",
    "mix",
    "reference_losses",
    "repetition_rate",
    "sample",
    "transport_cost",
]
