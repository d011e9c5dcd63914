"""A direct port of the reference EMO formulation: full logits, softmax and a one-hot target.

This is what ``language_modeling/gpt2.py`` (mode ``emo``) and ``emo_patch.py`` in
github.com/DRSY/EMO compute, kept as the baseline for ``benchmarks/emo.py`` and as an independent
formulation in tests. It materialises several [N, V] arrays (logits, probabilities, the
one-hot + 1e-15 target) and does two [N, V] × [V, C] products; :func:`jaxlab.emo.lm_head_losses`
computes the same numbers without any of them.

References: Ren et al. (2023), arXiv:2310.04691; github.com/DRSY/EMO.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Integer


def reference_losses(
    h: Float[ArrayLike, "N D"],
    w_head: Float[ArrayLike, "V D"],
    labels: Integer[ArrayLike, " N"],
    cost_w: Float[ArrayLike, "V C"],
    *,
    sg_target: bool = False,
    ignore_index: int = -100,
) -> tuple[Float[Array, " N"], Float[Array, " N"]]:
    """Per-token (MLE, EMO) the reference way; ``sg_target`` selects the patch's p − sg(p_t 1_t).

    The cost embedding is normalised here, like the reference's ``cost_embedding / norm``.
    Ignored tokens are zeroed after the computation (the reference multiplies by the mask).
    """
    labels = jnp.asarray(labels)
    v = w_head.shape[0]
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    logits = jnp.dot(jnp.asarray(h), jnp.asarray(w_head).T, preferred_element_type=jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    one_hot = jax.nn.one_hot(safe, v, dtype=jnp.float32)
    mle = -jnp.sum(one_hot * logp, axis=-1)
    e = jnp.asarray(cost_w).astype(jnp.float32)
    e = jax.lax.stop_gradient(e / jnp.linalg.norm(e, axis=-1, keepdims=True))
    target = (one_hot + 1e-15) / jnp.sum(one_hot + 1e-15, axis=-1, keepdims=True)
    q = jnp.exp(logp)
    if sg_target:
        q = q - jax.lax.stop_gradient(q * one_hot)
    emo = 1.0 - jnp.sum((target @ e) * (q @ e), axis=-1)
    return jnp.where(mask, mle, 0.0), jnp.where(mask, emo, 0.0)
