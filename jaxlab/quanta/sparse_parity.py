# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""Multitask sparse parity: the task, its data on device, exact test sets and emergence metrics.

The toy task of the quantization model of neural scaling. An input is ``n_tasks`` one-hot
control bits followed by ``n`` uniform random bits x. Subtask i owns a fixed subset
S_i of {0..n-1} with |S_i| = k, and its label is the parity

    y = sum_{j in S_i} x_j  mod 2,

with subtask i drawn with probability p_i = i^{-alpha_code} / sum_j j^{-alpha_code}. Each
subtask is one "quantum"; the theory predicts that they are learned in frequency order and that
the mean loss follows L ~ N^{-(alpha_code - 1)} in parameters.

Data live on device in a compact form (task id, bits, label); :func:`dense_inputs` builds the
(B, n_tasks + n) input of the paper. The MLPs that learn the task, and their batched training,
are in :mod:`jaxlab.quanta.parity_mlp`.

References:
  Michaud, Liu, Girit, Tegmark, "The Quantization Model of Neural Scaling", NeurIPS 2023,
  https://arxiv.org/abs/2303.13506 (generator and MLP: ``scripts/sparse-parity-v4.py`` of
  https://github.com/ejmichaud/quantization-model).
  Su Jianlin, https://kexue.fm/archives/9607.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.array_types import Array, Bool, Float, Int, PRNGKeyArray

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """The multitask sparse-parity distribution.

    Attributes:
      n_tasks: Number of subtasks (control bits).
      n: Number of data bits.
      k: Subset size of every parity.
      alpha_code: Zipf exponent of the subtask frequencies (the script's ``alpha``; the
        theory exponent is gamma = alpha_code - 1).
    """

    n_tasks: int
    n: int
    k: int
    alpha_code: float


class Batch(NamedTuple):
    """Samples in compact form: ``x = concat(one_hot(task), bits)``, label ``y``."""

    task: Int[Array, " B"]
    bits: Bool[Array, "B n"]
    y: Int[Array, " B"]


class EvalSet(NamedTuple):
    """``freq``: tasks at their exact frequencies; ``per_task``: ``m`` points per task, in order."""

    freq: Batch
    per_task: Batch


# --- data -------------------------------------------------------------------------------------


def make_subtasks(n_tasks: int, n: int, k: int, *, key: PRNGKeyArray) -> Int[Array, "T k"]:
    """Draws ``n_tasks`` distinct k-subsets of {0..n-1}, uniformly without replacement.

    Distinct ranks r in [0, C(n, k)) are drawn and unranked in the combinatorial number system:
    r = C(c_k, k) + ... + C(c_1, 1) with c_k > ... > c_1 >= 0, taking greedily the largest c_i
    with C(c_i, i) <= the remaining rank.

    Args:
      n_tasks: Number of subsets; at most C(n, k).
      n: Size of the ground set.
      k: Subset size.
      key: PRNG key.

    Returns:
      Row i holds the sorted indices of S_i; rows are pairwise distinct.

    Raises:
      ValueError: if C(n, k) < n_tasks or C(n, k) does not fit in int32.

    Memory and time are O(C(n, k)) (a permutation of all ranks): 161 700 at n = 100, k = 3.
    """
    total = math.comb(n, k)
    if total < n_tasks or total >= 2**31:
        raise ValueError(f"need n_tasks <= C(n, k) < 2**31, got n_tasks={n_tasks}, C={total}")
    table = jnp.asarray(
        np.array([[math.comb(c, i) for c in range(n)] for i in range(k + 1)], np.int32)
    )
    rank = jax.random.choice(key, total, (n_tasks,), replace=False).astype(jnp.int32)
    cols = []
    for i in range(k, 0, -1):
        c = jnp.sum(table[i][None, :] <= rank[:, None], axis=1, dtype=jnp.int32) - 1
        rank = rank - table[i][c]
        cols.append(c)
    return jnp.stack(cols[::-1], axis=1)


def task_probs(n_tasks: int, alpha_code: float) -> np.ndarray:
    """Host float64 p_i = i^{-alpha_code} / sum_j j^{-alpha_code}, i = 1..n_tasks."""
    p = np.arange(1, n_tasks + 1, dtype=np.float64) ** -float(alpha_code)
    return p / p.sum()


def task_logits(n_tasks: int, alpha_code: float) -> Float[Array, " T"]:
    """Normalised log-frequencies log p_i of the subtasks (for ``jax.random.categorical``)."""
    return jnp.asarray(np.log(task_probs(n_tasks, alpha_code)), jnp.float32)


def sample_for_tasks(
    subtasks: Int[Array, "T k"], task: Int[Array, " B"], n: int, *, key: PRNGKeyArray
) -> Batch:
    """Uniform data bits for the given task ids, labelled with their subtask's parity.

    Args:
      subtasks: Subsets from :func:`make_subtasks`.
      task: Subtask id of every sample.
      n: Number of data bits.
      key: PRNG key.

    Returns:
      The samples; ``y = sum(bits[subtasks[task]]) mod 2``.
    """
    bits = jax.random.bernoulli(key, 0.5, (task.shape[0], n))
    picked = jnp.take_along_axis(bits, subtasks[task], axis=1)
    y = jnp.sum(picked, axis=1, dtype=jnp.int32) % 2
    return Batch(task=task.astype(jnp.int32), bits=bits, y=y)


def sample_batch(
    subtasks: Int[Array, "T k"],
    logits: Float[Array, " T"],
    batch_size: int,
    n: int,
    *,
    key: PRNGKeyArray,
) -> Batch:
    """Draws ``batch_size`` fresh samples; task ids ~ Categorical(softmax(logits))."""
    k_task, k_bits = jax.random.split(key)
    task = jax.random.categorical(k_task, logits, shape=(batch_size,))
    return sample_for_tasks(subtasks, task, n, key=k_bits)


def dense_inputs(batch: Batch, n_tasks: int) -> Float[Array, "B I"]:
    """The paper's input ``concat(one_hot(task, n_tasks), bits)`` as float32."""
    onehot = jax.nn.one_hot(batch.task, n_tasks, dtype=jnp.float32)
    return jnp.concatenate([onehot, batch.bits.astype(jnp.float32)], axis=1)


def exact_test_counts(n_tasks: int, alpha_code: float, test_points: int) -> np.ndarray:
    """Points per subtask in the exact-frequency test set: ``floor(p_i * test_points)``.

    As in the reference script, rare subtasks may get no point; the total is at most
    ``test_points``.
    """
    return np.floor(task_probs(n_tasks, alpha_code) * test_points).astype(np.int64)


def make_test_set(
    subtasks: Int[Array, "T k"],
    task: TaskConfig,
    test_points: int,
    per_task: int,
    *,
    key: PRNGKeyArray,
) -> EvalSet:
    """The exact-frequency test set plus ``per_task`` points for every subtask.

    Args:
      subtasks: Subsets from :func:`make_subtasks`.
      task: The task distribution (its ``alpha_code`` fixes the counts on the host).
      test_points: Nominal size of the frequency-weighted set (see :func:`exact_test_counts`).
      per_task: Points per subtask in the per-subtask set.
      key: PRNG key.

    Returns:
      ``freq`` sorted by task id, and ``per_task`` with task ids ``repeat(arange(T), per_task)``.
    """
    counts = exact_test_counts(task.n_tasks, task.alpha_code, test_points)
    freq_ids = jnp.asarray(np.repeat(np.arange(task.n_tasks), counts), jnp.int32)
    each_ids = jnp.repeat(jnp.arange(task.n_tasks, dtype=jnp.int32), per_task)
    k1, k2 = jax.random.split(key)
    return EvalSet(
        freq=sample_for_tasks(subtasks, freq_ids, task.n, key=k1),
        per_task=sample_for_tasks(subtasks, each_ids, task.n, key=k2),
    )


def dataset_batch(
    dataset: Batch, step: Int[Array, ""], batch_size: int, *, key: PRNGKeyArray
) -> Batch:
    """Batch ``step`` of an epoch-wise re-shuffled pass over a fixed dataset (finite-D mode).

    The dataset is drawn once, e.g. ``sample_batch(subtasks, logits, D, n, key=...)``.

    With b = min(batch_size, D) and E = D // b batches per epoch, step s reads positions
    [(s mod E) b, (s mod E + 1) b) of the permutation ``permutation(fold_in(key, s // E), D)``.
    Every epoch therefore visits D distinct samples when b divides D (otherwise D mod b samples,
    different ones each epoch, are skipped), and the order depends only on ``key`` and ``s``.
    The permutation is recomputed per step: O(D log D), cheap next to a step for the paper's D.
    """
    size = dataset.task.shape[0]
    b = min(batch_size, size)
    per_epoch = size // b
    perm = jax.random.permutation(jax.random.fold_in(key, step // per_epoch), size)
    idx = jax.lax.dynamic_slice_in_dim(perm, (step % per_epoch) * b, b)
    return jax.tree.map(lambda a: a[idx], dataset)


# --- metrics ---


def emergence_steps(
    task_loss_ST: Float[Array, "S T"], steps: Int[Array, " S"], threshold: float
) -> Float[Array, " T"]:
    """First logged step at which each subtask's loss is below ``threshold``; inf if never."""
    below = task_loss_ST < threshold
    first = steps[jnp.argmax(below, axis=0)].astype(jnp.float32)
    return jnp.where(jnp.any(below, axis=0), first, jnp.inf)
