"""EMO on an NNX language model: the frozen cost embedding and the trainer's losses.

The one module of the topic that touches Flax. A model with an LM head (``model.head``, an
``nnx.Linear`` applied last, and ``model.head_embeddings() -> [V, D]``, as :class:`jaxlab.models.
TinyLM`) trains with EMO through ``jaxlab.train.LOSSES``:

- ``"emo"``: the paper's recipe (fixed cost, exact value, ½(MLE + sg(MLE/EMO)·EMO)) on the fused
  chunked path, which reads the hidden states and the head matrix and never builds logits;
- ``"emo_<preset>"`` for every preset of :data:`jaxlab.emo.PRESETS` (fused);
- ``"emo_unfused"``: the paper's recipe from full logits (for comparison);
- ``"cross_entropy_fused"``: CE alone on the same fused path (the fair CE baseline).

:func:`make_fused_loss` builds the fused losses with a ``token_chunk`` (or ``vocab_chunk``) option.

"Fixed" presets need :func:`attach_cost_embedding` first (a frozen copy of the pre-trained head,
stored as a non-``Param`` variable, so optimizers and ``nnx.grad`` leave it alone); "adaptive"
presets use the current head, detached.

References: Ren et al. (2023), arXiv:2310.04691; Su, https://kexue.fm/archives/9797.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlab.emo import fused, loss, quality


class CostEmbedding(nnx.Variable):
    """EMO's fixed cost embedding: not an ``nnx.Param``, so it is never trained."""


class _Identity(nnx.Module):
    def __call__(self, x):
        return x


def attach_cost_embedding(model: nnx.Module) -> nnx.Module:
    """Stores the row-normalised copy of ``model``'s current head as ``model.cost_embedding``."""
    model.cost_embedding = CostEmbedding(loss.cost_embedding(model.head_embeddings()))
    return model


def cost_for(model: nnx.Module, preset: loss.Preset):
    """The cost embedding ``preset`` asks for: the frozen copy or the detached current head."""
    if preset.cost == "adaptive":
        return loss.cost_embedding(model.head_embeddings())
    if not hasattr(model, "cost_embedding"):
        raise ValueError(
            "model: a 'fixed' EMO preset needs a frozen cost embedding; call "
            "jaxlab.emo.lm.attach_cost_embedding(model) on the pre-trained model first"
        )
    return model.cost_embedding[...]


def hidden_states(model: nnx.Module, tokens_BL) -> jnp.ndarray:
    """The inputs of ``model.head`` (the final hidden states) for ``tokens_BL``, float32.

    Runs the model's own forward with the head swapped for the identity, then restores it, so the
    model's forward code is not duplicated here.
    """
    head = model.head
    model.head = _Identity()
    try:
        h_BLD = model(tokens_BL)
    finally:
        model.head = head
    return h_BLD.astype(jnp.float32)


def make_fused_loss(
    preset_name: str, *, token_chunk: int | None = None, vocab_chunk: int | None = None
):
    """A trainer loss ``(model, inputs_BL, targets_BL) -> (loss, metrics)`` on the fused path.

    ``token_chunk`` sets the tokens per chunk of the one-pass token-chunked path (default
    :func:`jaxlab.emo.fused.default_token_chunk`); ``vocab_chunk`` selects the vocabulary-chunked
    path instead (see :func:`jaxlab.emo.lm_head_loss`).
    """
    preset = loss.get_preset(preset_name)

    def emo_fused(model, inputs_BL, targets_BL):
        h_BLD = hidden_states(model, inputs_BL)
        n = targets_BL.size
        return fused.lm_head_loss(
            h_BLD.reshape(n, -1),
            model.head_embeddings(),
            targets_BL.reshape(n),
            cost_for(model, preset),
            preset=preset,
            token_chunk=token_chunk,
            vocab_chunk=vocab_chunk,
        )

    emo_fused.takes_inputs = True  # the trainer passes tokens, not logits
    return emo_fused


def make_fused_cross_entropy(*, token_chunk: int | None = None):
    """CE alone on the same one-pass token-chunked path (the fair baseline for EMO's cost)."""

    def ce_fused(model, inputs_BL, targets_BL):
        h_BLD = hidden_states(model, inputs_BL)
        n = targets_BL.size
        return fused.lm_head_cross_entropy(
            h_BLD.reshape(n, -1),
            model.head_embeddings(),
            targets_BL.reshape(n),
            token_chunk=token_chunk,
        )

    ce_fused.takes_inputs = True
    return ce_fused


def make_unfused_loss(preset_name: str):
    """A trainer loss ``(model, logits_BLV, targets_BL) -> (loss, metrics)`` from full logits."""
    preset = loss.get_preset(preset_name)

    def emo_unfused(model, logits_BLV, targets_BL):
        return loss.emo_loss(logits_BLV, targets_BL, cost_for(model, preset), preset=preset)

    return emo_unfused


LOSSES = {
    "emo": make_fused_loss("paper_emo"),
    **{f"emo_{name}": make_fused_loss(name) for name in loss.PRESETS},
    "emo_unfused": make_unfused_loss("paper_emo"),
    "cross_entropy_fused": make_fused_cross_entropy(),
}


def entropy_bits(model: nnx.Module, windows_BL1, *, chunk: int = 16) -> float:
    """Mean next-token entropy (bits) of ``model`` on the inputs ``windows_BL1[:, :-1]``."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def chunk_sum(state, tokens_BL):
        logits = nnx.merge(graphdef, state)(tokens_BL)
        return jnp.sum(loss.entropy_from_logits(logits))

    windows_BL1 = np.asarray(windows_BL1, np.int32)
    total = sum(
        float(chunk_sum(state, jnp.asarray(windows_BL1[i : i + chunk, :-1])))
        for i in range(0, len(windows_BL1), chunk)
    )
    return total / (windows_BL1.shape[0] * (windows_BL1.shape[1] - 1)) / np.log(2.0)


def continuation_features(model: nnx.Module, tokens_BL, start: int, *, chunk: int = 64):
    """Features for MAUVE: final hidden states averaged over positions ``>= start`` (NumPy)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def feats(state, tokens_BL):
        return hidden_states(nnx.merge(graphdef, state), tokens_BL)[:, start:].mean(1)

    tokens_BL = np.asarray(tokens_BL, np.int32)
    parts = [
        np.asarray(feats(state, jnp.asarray(tokens_BL[i : i + chunk])))
        for i in range(0, len(tokens_BL), chunk)
    ]
    return np.concatenate(parts)


def sample_continuations(model: nnx.Module, prefix_BP, num_new: int, *, key) -> np.ndarray:
    """Unbiased ancestral samples of ``num_new`` tokens after each prefix (NumPy int32)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, prefix_BP, key):
        model = nnx.merge(graphdef, state)
        return quality.sample(model, prefix_BP, num_new, key=key)

    return np.asarray(run(state, jnp.asarray(prefix_BP, jnp.int32), key))


def continuation_quality(
    model: nnx.Module,
    base: nnx.Module,
    prompts_BL,
    prefix_len: int,
    distinct_n: tuple[int, ...],
    repetition_n: int,
    *,
    key,
) -> tuple[dict, np.ndarray]:
    """Sample quality of ``model``'s unbiased continuations of held-out prompts.

    ``model`` continues each prompt's first ``prefix_len`` bytes to the prompt's length; MAUVE
    compares the continuations with the human ones on features of ``base`` (the pre-trained
    model), and distinct-n / repetition rate are measured on the sampled bytes.

    Returns:
      ``({"mauve", "distinct_<n>"..., "repetition"}, continuations [B, L - prefix_len])``.
    """
    k_sample, k_mauve = jax.random.split(key)
    prompts_BL = np.asarray(prompts_BL)
    cont = sample_continuations(
        model, prompts_BL[:, :prefix_len], prompts_BL.shape[1] - prefix_len, key=k_sample
    )
    text = np.concatenate([prompts_BL[:, :prefix_len], cont], axis=1)
    feats = continuation_features(base, text, prefix_len)
    human = continuation_features(base, prompts_BL, prefix_len)
    out = {"mauve": quality.mauve(feats, human, key=k_mauve)["mauve"]}
    for n in distinct_n:
        out[f"distinct_{n}"] = quality.distinct_n(cont, n)
    out["repetition"] = quality.repetition_rate(cont, repetition_n)
    return out, cont
