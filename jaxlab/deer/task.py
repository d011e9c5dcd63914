"""The running-mean task of the DEER training experiment: data, readout model and loss.

Inputs x_t ~ N(0, 1), targets the running mean (x_1 + ... + x_t) / t; a :class:`ParallelRNN`
with a per-step linear readout regresses them with a per-step squared error. Trained once with
DEER (implicit gradients) and once with ``lax.scan`` (BPTT), the two loss curves must agree
(Lim et al., arXiv:2309.12252). This is the one NNX model of the topic besides the layer itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.deer.layer import ParallelRNN, ParallelRNNConfig


def running_mean_batch(batch: int, length: int, *, key: jax.Array):
    """``(x_BTM [batch, length, 1], y_BT [batch, length])``, float32, y_t = mean(x_1..x_t)."""
    x_BT = jax.random.normal(key, (batch, length), jnp.float32)
    counts_T = jnp.arange(1, length + 1, dtype=jnp.float32)
    return x_BT[..., None], jnp.cumsum(x_BT, axis=1) / counts_T[None]


class Regressor(nnx.Module):
    """ParallelRNN followed by a per-step linear readout to one output."""

    def __init__(self, config: ParallelRNNConfig, *, rngs: nnx.Rngs):
        self.rnn = ParallelRNN(config, rngs=rngs)
        self.readout = nnx.Linear(config.hidden, 1, rngs=rngs)

    def __call__(self, x_BTM):
        return self.readout(self.rnn(x_BTM))[..., 0]


def mse(model: Regressor, batch, *, per_example: bool = False) -> jax.Array:
    """Mean squared error of ``model`` on ``batch = (x_BTM, y_BT)``.

    ``per_example=True`` (use it when B is split over several devices) runs the model per
    example on broadcast parameters: the same loss, with the parameter cotangents summed by the
    broadcast's transpose after the recurrence. With shared parameters XLA sums them with a
    cross-device all-reduce inside every step of the BPTT backward scan.
    """
    x_BTM, y_BT = batch
    if not per_example:
        return jnp.mean((model(x_BTM) - y_BT) ** 2)
    graphdef, state = nnx.split(model)
    state_B = jax.tree.map(lambda a: jnp.broadcast_to(a, (x_BTM.shape[0], *a.shape)), state)
    pred_BT = jax.vmap(lambda s, x: nnx.merge(graphdef, s)(x[None])[0])(state_B, x_BTM)
    return jnp.mean((pred_BT - y_BT) ** 2)
