"""EMO, the earth mover's distance between the model's next-token distribution and the target.

For a target distribution τ and a cost matrix C, the transport cost is
``W(p, τ) = min_{γ ∈ Π(p, τ)} Σ_ij γ_ij C_ij``. With a one-hot target at t the only coupling moves
all of p to t, so ``W = Σ_i p_i C_it`` exactly. EMO takes ``C_ij = 1 − ê_i·ê_j`` from the row-
normalised embeddings ê of a language-model head, which makes the cost one [V]×[V, H] product:

    EMO(p, t) = Σ_i p_i (1 − ê_i·ê_t) = 1 − ⟨Σ_i p_i ê_i, ê_t⟩           (no V×V matrix)
    ∂EMO/∂z_j = p_j (C_jt − EMO)                                        (z: logits, p = softmax z)

For a soft target the independent coupling γ = p τᵀ gives the upper bound
``Σ_ij p_i τ_j C_ij = 1 − ⟨Σ_i p_i ê_i, Σ_j τ_j ê_j⟩``, tight for a one-hot τ. With a 0/1 cost
(orthonormal ê) EMO = 1 − p_t.

The reference code mixes EMO with cross-entropy (MLE) per token through stop-gradient ratios
(:func:`mix`); :data:`PRESETS` names its variants. Everything runs in float32 whatever the (lower)
input dtype (float64 inputs stay float64, for references); the cost embeddings never receive
gradients.

References: S. Ren, Z. Wu, K. Q. Zhu, "EMO: Earth Mover Distance Optimization for Auto-Regressive
Language Modeling", arXiv:2310.04691 (ICLR 2024), code github.com/DRSY/EMO; Su Jianlin, "EMO:
基于最优传输思想设计的分类损失函数", https://kexue.fm/archives/9797.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Integer

VALUES = ("exact", "reference_offset")
MODES = ("half_ratio", "emo_ratio", "half_ratio_clip")
COSTS = ("fixed", "adaptive")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One way of training with EMO, as the reference code does it.

    Attributes:
      cost: ``"fixed"`` (a frozen copy of the pre-trained head) or ``"adaptive"`` (the current head,
        detached, every step).
      value: ``"exact"`` EMO or ``"reference_offset"`` (EMO + p_t, what the patched code computes).
      mode: The mixing with MLE, see :func:`mix`.
      clip: Ratio clip of ``"half_ratio_clip"``.
    """

    cost: str = "fixed"
    value: str = "exact"
    mode: str = "half_ratio"
    clip: float = 3.0

    def __post_init__(self):
        for name, allowed in (("cost", COSTS), ("value", VALUES), ("mode", MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")


PRESETS = {
    # language_modeling/gpt2.py mode "emo": the paper's LM fine-tuning experiments.
    "paper_emo": Preset("fixed", "exact", "half_ratio"),
    # gpt2.py "adaptive_emo", emo_patch.emo1_adaptive ("mode 1", MLE emphasised).
    "mode1_adaptive": Preset("adaptive", "reference_offset", "half_ratio"),
    # emo_patch.emo2_adaptive / emo2_fixed ("mode 2", EMO emphasised; finetune_lora.sh: emo2 fixed).
    "mode2_adaptive": Preset("adaptive", "reference_offset", "emo_ratio"),
    "mode2_fixed": Preset("fixed", "reference_offset", "emo_ratio"),
    # continual_finetuning/emo_llama.py, first variant: the MLE/EMO ratio clipped at 3.
    "mode1_clip3": Preset("fixed", "reference_offset", "half_ratio_clip"),
}


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called ``name`` (a key of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {name!r}")
    return PRESETS[name]


def _upcast(x: ArrayLike) -> Array:
    """float32 for every float dtype below it; float64 stays float64 (references, tests)."""
    x = jnp.asarray(x)
    return x.astype(jnp.float64 if x.dtype == jnp.float64 else jnp.float32)


def cost_embedding(w: Float[ArrayLike, "V C"], *, eps: float = 1e-12) -> Float[Array, "V C"]:
    """Row-normalised float32 cost embeddings ê_i = e_i / max(‖e_i‖, eps), without gradient.

    Zero rows (padding tokens) stay zero, so their cosines are 0 rather than NaN.

    Args:
      w: One embedding per token, e.g. an LM head's ``[V, D]`` output matrix (any float dtype).
      eps: Floor on the row norm.

    Returns:
      ``stop_gradient(ê)`` in float32.
    """
    w32 = _upcast(w)
    norm = jnp.sqrt(jnp.sum(w32 * w32, axis=-1, keepdims=True))
    return jax.lax.stop_gradient(w32 / jnp.maximum(norm, eps))


def transport_cost(cost_emb: Float[ArrayLike, "V C"]) -> Float[Array, "V V"]:
    """The explicit cost matrix C_ij = 1 − ê_i·ê_j (for small V: notebooks and tests only)."""
    e = _upcast(cost_emb)
    return 1.0 - e @ e.T


def _check_value(value: str) -> None:
    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}")


def cross_entropy_from_logits(
    logits: Float[ArrayLike, "*B V"], labels: Integer[ArrayLike, "*B"], *, ignore_index: int = -100
) -> Float[Array, "*B"]:
    """Per-token MLE −log p_t = logsumexp(z) − z_t in float32; ignored tokens give 0."""
    z = _upcast(logits)
    labels = jnp.asarray(labels)
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    z_t = jnp.take_along_axis(z, safe[..., None], axis=-1)[..., 0]
    return jnp.where(mask, jax.nn.logsumexp(z, axis=-1) - z_t, 0.0)


def emo_from_logits(
    logits: Float[ArrayLike, "*B V"],
    labels: Integer[ArrayLike, "*B"],
    cost_emb: Float[ArrayLike, "V C"],
    *,
    ignore_index: int = -100,
    value: str = "exact",
) -> Float[Array, "*B"]:
    """Per-token EMO for one-hot targets: 1 − ⟨Σ_i p_i ê_i, ê_t⟩, p = softmax(logits).

    ê_t is gathered from ``cost_emb`` (no V-sized one-hot). Softmax, projection and dot product run
    in float32. ``value="reference_offset"`` adds stop_gradient(p_t)·‖ê_t‖², the value the
    reference's patched code reports (it projects p − sg(p_t 1_t)); the gradient is unchanged:
    ∂EMO/∂z_j = p_j (1 − ê_j·ê_t − EMO).

    Args:
      logits: Unnormalised scores, any float dtype.
      labels: Target ids; ``ignore_index`` marks tokens that contribute 0 (value and gradient).
      cost_emb: Row-normalised embeddings (:func:`cost_embedding`); never differentiated.
      ignore_index: Label of ignored tokens.
      value: ``"exact"`` or ``"reference_offset"``.

    Returns:
      float32 EMO per token, in [0, 2].

    References: Ren et al. (2023), arXiv:2310.04691, eq. 6; Su, https://kexue.fm/archives/9797.
    """
    _check_value(value)
    z = _upcast(logits)
    labels = jnp.asarray(labels)
    e = jax.lax.stop_gradient(_upcast(cost_emb))
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    p = jax.nn.softmax(z, axis=-1)
    e_bar = jnp.einsum("...v,vc->...c", p, e)
    e_t = e[safe]
    emo = 1.0 - jnp.sum(e_bar * e_t, axis=-1)
    if value == "reference_offset":
        p_t = jnp.take_along_axis(p, safe[..., None], axis=-1)[..., 0]
        emo = emo + jax.lax.stop_gradient(p_t) * jnp.sum(e_t * e_t, axis=-1)
    return jnp.where(mask, emo, 0.0)


def emo_soft_target(
    logits: Float[ArrayLike, "*B V"],
    target: Float[ArrayLike, "*B V"],
    cost_emb: Float[ArrayLike, "V C"],
) -> Float[Array, "*B"]:
    """Upper bound on EMO for a soft target τ: Σ_ij p_i τ_j C_ij = 1 − ⟨Σ_i p_i ê_i, Σ_j τ_j ê_j⟩.

    The independent coupling γ = p τᵀ is feasible, so this is ≥ the optimal transport cost, with
    equality for a one-hot τ (then it equals :func:`emo_from_logits`).

    References: Ren et al. (2023), arXiv:2310.04691, sec. 3.2.
    """
    e = jax.lax.stop_gradient(_upcast(cost_emb))
    p = jax.nn.softmax(_upcast(logits), axis=-1)
    tau = _upcast(target)
    return 1.0 - jnp.sum(
        jnp.einsum("...v,vc->...c", p, e) * jnp.einsum("...v,vc->...c", tau, e), axis=-1
    )


class Mixed(NamedTuple):
    """Per-token combined loss and the effective weights on ∇MLE and ∇EMO (all float32)."""

    loss: Array
    weight_mle: Array
    weight_emo: Array


def mix(
    mle: Float[ArrayLike, "*B"],
    emo: Float[ArrayLike, "*B"],
    *,
    mode: str = "half_ratio",
    clip: float = 3.0,
    eps: float = 1e-10,
) -> Mixed:
    """Combines per-token MLE and EMO as the reference code does (sg = stop-gradient).

        half_ratio:       ½ (MLE + sg(MLE / (EMO + eps)) · EMO)          value = MLE
        emo_ratio:        sg(EMO / (MLE + eps)) · MLE + EMO              value = 2 EMO
        half_ratio_clip:  ½ (min(sg(MLE / (EMO + eps)), clip) · EMO + MLE)

    Only the gradients mix: ``half_ratio`` gives ½∇MLE + ½(MLE/EMO)∇EMO. The ratios are taken per
    token, before any averaging, in float32. Ignored tokens (MLE = EMO = 0) give 0.

    Returns:
      :class:`Mixed` with the per-token loss and the weights multiplying ∇MLE and ∇EMO.

    References: github.com/DRSY/EMO (language_modeling/gpt2.py, emo_patch.py,
    continual_finetuning/emo_llama.py); Ren et al. (2023), arXiv:2310.04691.
    """
    mle = _upcast(mle)
    emo = _upcast(emo)
    sg = jax.lax.stop_gradient
    one = jnp.ones_like(mle)
    if mode == "half_ratio":
        w_emo = 0.5 * sg(mle / (emo + eps))
        w_mle = 0.5 * one
    elif mode == "emo_ratio":
        w_mle = sg(emo / (mle + eps))
        w_emo = one
    elif mode == "half_ratio_clip":
        w_emo = 0.5 * jnp.minimum(sg(mle / (emo + eps)), clip)
        w_mle = 0.5 * one
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return Mixed(w_mle * mle + w_emo * emo, w_mle, w_emo)


def masked_mean(x: Float[ArrayLike, "*B"], mask: ArrayLike) -> Float[Array, ""]:
    """Σ x·mask / (1e-15 + Σ mask), as the reference averages (an all-masked batch gives 0)."""
    x = _upcast(x)
    m = jnp.asarray(mask).astype(x.dtype)
    return jnp.sum(x * m) / (1e-15 + jnp.sum(m))


def combine(
    mle: Float[ArrayLike, "*B"], emo: Float[ArrayLike, "*B"], mask: ArrayLike, preset: Preset
) -> tuple[Array, dict]:
    """Mixes per-token losses with ``preset`` and averages; returns ``(loss, metrics)``.

    The metrics are the masked means of the components and of the effective weights, so a log shows
    what the combined number hides (mode 1's value *is* MLE; mode 2's is 2·EMO).
    """
    mixed = mix(mle, emo, mode=preset.mode, clip=preset.clip)
    loss = masked_mean(mixed.loss, mask)
    metrics = {
        "mle": masked_mean(mle, mask),
        "emo": masked_mean(emo, mask),
        "weight_mle": masked_mean(mixed.weight_mle, mask),
        "weight_emo": masked_mean(mixed.weight_emo, mask),
    }
    return loss, jax.tree.map(jax.lax.stop_gradient, metrics)


def emo_loss(
    logits: Float[ArrayLike, "*B V"],
    labels: Integer[ArrayLike, "*B"],
    cost_emb: Float[ArrayLike, "V C"],
    *,
    preset: Preset = PRESETS["paper_emo"],
    ignore_index: int = -100,
) -> tuple[Array, dict]:
    """Mean combined MLE/EMO loss from full logits (the unfused form); returns ``(loss, metrics)``.

    See :func:`jaxlab.emo.lm_head_loss` for the fused form that never builds the logits.
    """
    labels = jnp.asarray(labels)
    mle = cross_entropy_from_logits(logits, labels, ignore_index=ignore_index)
    emo = emo_from_logits(logits, labels, cost_emb, ignore_index=ignore_index, value=preset.value)
    return combine(mle, emo, labels != ignore_index, preset)


def entropy_from_logits(logits: Float[ArrayLike, "*B V"]) -> Float[Array, "*B"]:
    """Next-token entropy −Σ p log p in nats (float32)."""
    logp = jax.nn.log_softmax(_upcast(logits), axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
