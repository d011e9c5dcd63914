# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""One-hidden-layer ReLU MLPs for multitask sparse parity, and their batched AdamW training.

The MLP's first layer is stored as two blocks (``w_task`` for the control bits, ``w_bits`` for
the data bits), so multiplying a one-hot by ``w_task`` becomes a row gather (same numbers, about
(n_tasks + n) / n fewer flops).

Widths are batched in one program. Every model is stored padded to ``max_width`` hidden units;
units past its own width start at zero and receive zero gradient, so their Adam moments and
updates stay exactly zero (the output layer's init scale uses the true width). The step either
packs the true units of all models into one layer (:func:`packed_logits`, the default: no
padded flops) or masks the padded units (:func:`mlp_logits`, full padded cost). Either way a
padded model trains like the unpadded one.

References:
  Michaud, Liu, Girit, Tegmark, "The Quantization Model of Neural Scaling", NeurIPS 2023,
  https://arxiv.org/abs/2303.13506 (``scripts/sparse-parity-v4.py`` of
  https://github.com/ejmichaud/quantization-model).
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.array_types import Array, Bool, Float, Int, PRNGKeyArray
from jaxlab.quanta.sparse_parity import Batch, EvalSet, TaskConfig, dataset_batch, sample_batch

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """AdamW training of the MLPs.

    Attributes:
      batch_size: Samples per step (shared by all widths of one seed).
      lr: AdamW learning rate.
      weight_decay: AdamW decoupled weight decay (the paper uses 0).
      data_size: -1 for fresh samples every step; otherwise the size D of a fixed training set,
        re-shuffled every epoch.
    """

    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 0.0
    data_size: int = -1


class MLPParams(NamedTuple):
    """One hidden ReLU layer of (padded) width W, 2 output logits."""

    w_task: Float[Array, "T W"]
    w_bits: Float[Array, "n W"]
    b1: Float[Array, " W"]
    w2: Float[Array, "W 2"]
    b2: Float[Array, " 2"]


class TrainState(NamedTuple):
    params: MLPParams
    opt_state: optax.OptState


# --- model ------------------------------------------------------------------------------------


def param_count(width: int, n_tasks: int, n: int) -> int:
    """Parameters of the unpadded MLP: (n_tasks + n) w + w + 2 w + 2.

    Examples:
      >>> param_count(9, 500, 100), param_count(500, 500, 100)  # the paper's smallest, largest
      (5429, 301502)
    """
    return (n_tasks + n) * width + width + 2 * width + 2


def init_mlp(
    n_tasks: int, n: int, width: Int[Array, ""] | int, max_width: int, *, key: PRNGKeyArray
) -> MLPParams:
    """PyTorch ``nn.Linear`` initialisation, padded to ``max_width`` hidden units.

    Weights and biases of a layer with fan-in f are U(-1/sqrt(f), 1/sqrt(f)) (PyTorch's
    default ``kaiming_uniform(a=sqrt(5))``; Flax's default would be lecun-normal and zero bias).
    Fan-ins are n_tasks + n and the true ``width``. Unit j's parameters come from
    ``fold_in(key, j)``, so a width-w model is the same whatever ``max_width`` it is padded to.
    Units j >= width are zero.

    Args:
      n_tasks: Control bits.
      n: Data bits.
      width: True hidden width, 1 <= width <= max_width (may be traced).
      max_width: Padded width (static).
      key: PRNG key.

    Returns:
      The parameters.
    """
    k_units, k_b2 = jax.random.split(key)
    mask = (jnp.arange(max_width) < width).astype(jnp.float32)
    s1 = 1.0 / math.sqrt(n_tasks + n)
    s2 = 1.0 / jnp.sqrt(jnp.asarray(width, jnp.float32))

    unit = lambda j: jax.random.uniform(
        jax.random.fold_in(k_units, j), (n_tasks + n + 3,), minval=-1.0
    )
    u_WF = jax.vmap(unit)(jnp.arange(max_width)) * mask[:, None]  # per unit: w1 column, b1, w2 row
    w1 = u_WF[:, : n_tasks + n].T * s1
    return MLPParams(
        w_task=w1[:n_tasks],
        w_bits=w1[n_tasks:],
        b1=u_WF[:, n_tasks + n] * s1,
        w2=u_WF[:, n_tasks + n + 1 :] * s2,
        b2=jax.random.uniform(k_b2, (2,), minval=-1.0) * s2,
    )


def mlp_logits(
    params: MLPParams, width: Int[Array, ""] | int, task: Int[Array, " B"], bits: Bool[Array, "B n"]
) -> Float[Array, "B 2"]:
    """Logits ``relu(x W1 + b1) W2 + b2``, x = concat(one_hot(task), bits), units >= width off."""
    mask = (jnp.arange(params.b1.shape[0]) < width).astype(jnp.float32)
    pre = params.w_task[task] + bits.astype(jnp.float32) @ params.w_bits + params.b1[None, :]
    return (jax.nn.relu(pre) * mask[None, :]) @ params.w2 + params.b2[None, :]


def example_losses(
    params: MLPParams, width: Int[Array, ""] | int, batch: Batch
) -> tuple[Float[Array, " B"], Bool[Array, " B"]]:
    """Per-sample cross-entropy in nats and whether the argmax prediction is right."""
    logits = mlp_logits(params, width, batch.task, batch.bits)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.y)
    return nll, jnp.argmax(logits, axis=1) == batch.y


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """AdamW with PyTorch's defaults (b1 0.9, b2 0.999, eps 1e-8) and the configured lr, wd."""
    return optax.adamw(config.lr, weight_decay=config.weight_decay)


def init_state(
    task: TaskConfig,
    config: TrainConfig,
    width: Int[Array, ""] | int,
    max_width: int,
    *,
    key: PRNGKeyArray,
) -> TrainState:
    """Initial parameters (:func:`init_mlp`) and AdamW state of one model."""
    params = init_mlp(task.n_tasks, task.n, width, max_width, key=key)
    return TrainState(params, make_optimizer(config).init(params))


def train_step(
    state: TrainState, width: Int[Array, ""] | int, batch: Batch, config: TrainConfig
) -> tuple[TrainState, Float[Array, ""]]:
    """One AdamW step on the mean cross-entropy (nats); returns the new state and the loss."""

    def loss_fn(params):
        return jnp.mean(example_losses(params, width, batch)[0])

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        updates, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
    return TrainState(optax.apply_updates(state.params, updates), opt_state), loss


def packed_logits(
    params: MLPParams, widths: tuple[int, ...], task: Int[Array, " B"], bits: Bool[Array, "B n"]
) -> Float[Array, "B W 2"]:
    """Logits of all W stacked (padded) models at once, with the padding packed away.

    The true hidden units of every model are gathered into one layer of U = sum(widths) units
    (the models share the input, so the first layer is one (B, n) x (n, U) product), and the
    output layer is block-diagonal: logits[b, m] = sum_{u in model m} h[b, u] w2[u] + b2[m].
    Equal to stacking :func:`mlp_logits` over the models, at sum(widths) / (W max_width) of the
    first layer's cost; the gradient flows back into the padded layout (zero on padding).

    Args:
      params: Stacked parameters, leading axis W, padded to a common width.
      widths: True width of every model (static).
      task: Subtask ids.
      bits: Data bits.
    """
    num_models, max_width = params.b1.shape
    unit = np.concatenate([m * max_width + np.arange(w) for m, w in enumerate(widths)])
    model_U = np.repeat(np.arange(num_models), widths)
    flat = lambda a: jnp.moveaxis(a, 0, -2).reshape(a.shape[1], -1)[:, unit]  # (W, F, D)->(F, U)
    w_task, w_bits = flat(params.w_task), flat(params.w_bits)
    b1, w2 = params.b1.reshape(-1)[unit], params.w2.reshape(-1, 2)[unit]
    pre = w_task[task] + bits.astype(jnp.float32) @ w_bits + b1[None, :]
    block = jax.nn.one_hot(model_U, num_models, dtype=jnp.float32)  # (U, W)
    w2_block = (w2[:, None, :] * block[:, :, None]).reshape(-1, 2 * num_models)
    logits = (jax.nn.relu(pre) @ w2_block).reshape(-1, num_models, 2)
    return logits + params.b2[None, :, :]


def train_step_widths(
    states: TrainState, widths: tuple[int, ...], batch: Batch, config: TrainConfig
) -> tuple[TrainState, Float[Array, " W"]]:
    """One AdamW step of W stacked models on one batch via :func:`packed_logits`.

    The models are independent, so the gradient of the summed losses with respect to model m's
    parameters is the gradient of its own loss, and AdamW acts elementwise: this equals W
    separate :func:`train_step` calls (up to float rounding).
    """

    def loss_fn(params):
        logits = packed_logits(params, widths, batch.task, batch.bits)
        labels = jnp.broadcast_to(batch.y[:, None], logits.shape[:2])
        losses = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), axis=0)
        return jnp.sum(losses), losses

    grads, losses = jax.grad(loss_fn, has_aux=True)(states.params)

    def update(state, grad):
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
            updates, opt_state = make_optimizer(config).update(grad, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state)

    return jax.vmap(update)(states, grads), losses


def train_widths(
    states: TrainState,
    subtasks: Int[Array, "T k"],
    logits: Float[Array, " T"],
    start_step: Int[Array, ""] | int,
    *,
    widths: tuple[int, ...],
    num_steps: int,
    task: TaskConfig,
    config: TrainConfig,
    dataset: Batch | None = None,
    packed: bool = True,
    key: PRNGKeyArray,
) -> tuple[TrainState, Float[Array, "S W"]]:
    """Trains W models of one seed (leading axis of ``states``) for ``num_steps`` steps.

    Every step draws one batch, from ``fold_in(key, step)``, and all widths train on it, so
    differences between widths are not sampling noise. Vmap over seeds at the call site.

    Args:
      states: Stacked states, padded to a common width.
      subtasks: This seed's subsets.
      logits: Subtask log-frequencies.
      start_step: Global index of the first step (keys and epochs depend on it).
      widths: True width of every model (static).
      num_steps: Steps to run (static).
      task: Task distribution.
      config: Training configuration; ``data_size`` -1 samples fresh data each step.
      dataset: The fixed training set when ``config.data_size`` > 0.
      packed: Compute the step with :func:`train_step_widths` (padding packed away); False
        vmaps :func:`train_step` over the padded models (masked units cost full price).
      key: Data key of this seed.

    Returns:
      The new states and the training loss (nats) of every step and width.
    """
    widths_W = jnp.asarray(widths, jnp.int32)

    def body(states, step):
        k = jax.random.fold_in(key, step)
        if dataset is None:
            batch = sample_batch(subtasks, logits, config.batch_size, task.n, key=k)
        else:
            batch = dataset_batch(dataset, step, config.batch_size, key=key)
        if packed:
            return train_step_widths(states, widths, batch, config)
        return jax.vmap(train_step, in_axes=(0, 0, None, None))(states, widths_W, batch, config)

    steps = jnp.asarray(start_step, jnp.int32) + jnp.arange(num_steps, dtype=jnp.int32)
    return jax.lax.scan(body, states, steps)


# --- evaluation -------------------------------------------------------------------------------


def evaluate(params: MLPParams, width: Int[Array, ""] | int, test: EvalSet) -> dict[str, Array]:
    """Test metrics of one model, losses in bits (nats / ln 2; chance is 1 bit).

    Returns:
      ``loss`` and ``accuracy`` on the exact-frequency set, ``task_loss`` and ``task_accuracy``
      per subtask (shape (T,)) on the per-subtask set.
    """
    n_tasks = params.w_task.shape[0]
    nll, ok = example_losses(params, width, test.freq)
    t_nll, t_ok = example_losses(params, width, test.per_task)
    return dict(
        loss=jnp.mean(nll) / LN2,
        accuracy=jnp.mean(ok.astype(jnp.float32)),
        task_loss=jnp.mean(t_nll.reshape(n_tasks, -1), axis=1) / LN2,
        task_accuracy=jnp.mean(t_ok.reshape(n_tasks, -1).astype(jnp.float32), axis=1),
    )
