# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""A width sweep of sparse-parity MLPs: width-packed groups trained in lockstep, and its metrics.

The widths of a group are stored padded to the group's widest and trained packed
(:func:`jaxlab.quanta.parity_mlp.train_widths`), all seeds vmapped; groups advance in lockstep,
one compiled chunk of ``log_every`` steps at a time, and are evaluated on an
:func:`eval_steps` schedule. The metrics turn the evaluated losses into what the quantization
model predicts: the finite-K slope implied by the learned-subtask counts
(:func:`finite_k_alpha`) and how abruptly each subtask switches on (:func:`transition_decades`).

Data parallel: the seed axis is split over the ``data`` axis of a mesh at every jit boundary
(setup, training chunk, evaluation). A seed count that does not divide the device count is padded
by :func:`jaxlab.sharding.pad_population` (repeating seeds' keys) and :func:`train_all` drops the
padding. A seed's numbers depend on the mesh only through float rounding, which training
amplifies (quick config, 4 vs 1 CPU devices: 3e-3 bit apart after 3 000 steps).

References:
  Michaud, Liu, Girit, Tegmark, "The Quantization Model of Neural Scaling", NeurIPS 2023,
  https://arxiv.org/abs/2303.13506; Su Jianlin, https://kexue.fm/archives/9607.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab import sharding
from jaxlab.array_types import Array, ArrayLike, Float, PRNGKeyArray
from jaxlab.quanta import parity_mlp
from jaxlab.quanta import sparse_parity as sp
from jaxlab.quanta.theory import fit_power_law


@dataclasses.dataclass(frozen=True)
class WidthSweep:
    """The widths, seeds and schedule of one sweep.

    Attributes:
      widths: Hidden widths; each group trains in one program, padded to its widest.
      width_group_size: Widths per program (0: all in one); bounds the evaluation padding.
      num_seeds: Seeds, vmapped (own subsets, initialisation, data and test set).
      num_steps: Training steps.
      log_every: Steps per compiled chunk (the train loss is reported once per chunk).
      eval_every: Test evaluation every this many steps ...
      num_log_evals: ... plus this many log-spaced evaluation steps.
      test_points: Size of the exact-frequency test set.
      test_points_per_task: Size of each per-subtask test set.
    """

    widths: tuple[int, ...]
    num_steps: int
    width_group_size: int = 0
    num_seeds: int = 1
    log_every: int = 100
    eval_every: int = 100
    num_log_evals: int = 0
    test_points: int = 5_000
    test_points_per_task: int = 200


def eval_steps(num_steps: int, log_every: int, eval_every: int, num_log: int) -> list[int]:
    """Chunk ends at which the test sets are evaluated: every ``eval_every``, plus log-spaced."""
    ends = set(range(eval_every, num_steps + 1, eval_every)) | {num_steps}
    if num_log:
        ends |= {int(s) for s in np.geomspace(log_every, num_steps, num_log)}
    return sorted({max(log_every, (s // log_every) * log_every) for s in ends})


def group_widths(widths, size: int) -> list[list[int]]:
    """Sorted widths cut into groups of ``size`` (0: one group)."""
    widths = sorted(widths)
    size = size or len(widths)
    return [widths[i : i + size] for i in range(0, len(widths), size)]


class WidthGroup:
    """Jitted setup / chunk / eval for the widths of one group, all seeds vmapped.

    ``seed_keys`` (leading axis: seeds, a multiple of the ``data`` size of ``mesh``) and every
    per-seed array derived from them (states, subtasks, test sets, data keys, metrics) are
    sharded over ``data`` on their leading axis.
    """

    def __init__(
        self, sweep: WidthSweep, task: sp.TaskConfig, train: parity_mlp.TrainConfig, widths,
        seed_keys, mesh,
    ):  # fmt: skip
        self.widths = tuple(widths)
        setup, self.chunk, self.eval = group_programs(sweep, task, train, widths, mesh)
        out = setup(sharding.shard_population(seed_keys, mesh, what="number of seeds (padded)"))
        self.states, self.subtasks, self.test, self.dataset, self.key, self.m0 = out

    def step(self, start: int) -> jax.Array:
        """Runs one chunk from ``start``; returns the last step's train loss (seeds, W), nats."""
        self.states, loss = self.chunk(self.states, self.subtasks, self.dataset, self.key, start)
        return loss[:, -1]

    def evaluate(self) -> dict:
        return self.eval(self.states.params, self.test)


def group_programs(
    sweep: WidthSweep, task: sp.TaskConfig, train: parity_mlp.TrainConfig, widths, mesh
):  # fmt: skip
    """The jitted ``(setup, chunk, eval)`` of one width group (seeds vmapped, split over data).

    ``setup(seed_keys)`` -> (states, subtasks, test, dataset, data keys, initial metrics);
    ``chunk(states, subtasks, dataset, keys, start)`` trains ``sweep.log_every`` steps (donates
    ``states``); ``eval(params, test)`` -> per-seed test metrics. Built apart from
    :class:`WidthGroup` so they can be lowered on abstract inputs (``jaxlab.gpu_tier``).
    """
    widths = tuple(widths)
    widths_W = jnp.asarray(widths, jnp.int32)
    max_width = max(widths)
    logits = sp.task_logits(task.n_tasks, task.alpha_code)

    def evaluate(params_W, test):  # widths one after another: bounds eval memory
        return jax.lax.map(lambda pw: parity_mlp.evaluate(pw[0], pw[1], test), (params_W, widths_W))

    def setup(key):
        k_sub, k_init, k_test, k_data, k_set = jax.random.split(key, 5)
        subtasks = sp.make_subtasks(task.n_tasks, task.n, task.k, key=k_sub)
        # Keyed by width, so a model does not depend on the grouping.
        states = jax.vmap(
            lambda w: parity_mlp.init_state(
                task, train, w, max_width, key=jax.random.fold_in(k_init, w)
            )
        )(widths_W)
        test = sp.make_test_set(
            subtasks, task, sweep.test_points, sweep.test_points_per_task, key=k_test
        )
        dataset = None
        if train.data_size > 0:
            dataset = sp.sample_batch(subtasks, logits, train.data_size, task.n, key=k_set)
        return states, subtasks, test, dataset, k_data, evaluate(states.params, test)

    chunk = functools.partial(
        parity_mlp.train_widths, widths=widths, num_steps=sweep.log_every, task=task,
        config=train,
    )  # fmt: skip

    def run_chunk(states, subtasks, dataset, key, start):
        return chunk(states, subtasks, logits, start, dataset=dataset, key=key)

    seeds = sharding.batch_sharding(mesh)  # leading (seed) axis over data
    chunk_jit = jax.jit(
        jax.vmap(run_chunk, in_axes=(0, 0, 0, 0, None)),
        in_shardings=(seeds, seeds, seeds, seeds, sharding.replicated(mesh)),
        out_shardings=seeds,
        donate_argnums=0,
    )
    eval_jit = jax.jit(jax.vmap(evaluate), in_shardings=seeds, out_shardings=seeds)
    setup_jit = jax.jit(jax.vmap(setup), in_shardings=seeds, out_shardings=seeds)
    return setup_jit, chunk_jit, eval_jit


def make_groups(
    sweep: WidthSweep, task: sp.TaskConfig, train: parity_mlp.TrainConfig, mesh, *,
    key: PRNGKeyArray,
) -> list[WidthGroup]:  # fmt: skip
    """Sets up every width group with ``sweep.num_seeds`` seeds (padded) split over ``mesh``."""
    seed_keys, _ = sharding.pad_population(
        jax.random.split(key, sweep.num_seeds), mesh, what="number of seeds"
    )
    return [
        WidthGroup(sweep, task, train, ws, seed_keys, mesh)
        for ws in group_widths(sweep.widths, sweep.width_group_size)
    ]


def train_all(
    sweep: WidthSweep, groups: list[WidthGroup], log: Callable[[int, dict], None] | None = None
):
    """Trains every width group in lockstep; returns steps, widths and stacked test metrics.

    Args:
      sweep: The sweep the groups were made for.
      groups: From :func:`make_groups`.
      log: Called as ``log(step, row)`` after every chunk (train loss in bits per width, and the
        test loss and accuracy at evaluation steps) and once at step 0.

    Returns:
      ``(steps, widths, metrics)``: evaluation steps (0 first), the widths in group order, and
      each :func:`jaxlab.quanta.parity_mlp.evaluate` metric stacked as (steps, seeds, W, ...),
      with the seed padding dropped.
    """
    num_seeds = sweep.num_seeds
    widths = [w for g in groups for w in g.widths]
    log = log or (lambda step, row: None)

    def cat(ms):  # widths of all groups side by side, real seeds only
        return {
            k: np.concatenate([np.asarray(m[k])[:num_seeds] for m in ms], axis=1) for k in ms[0]
        }

    evals = set(eval_steps(sweep.num_steps, sweep.log_every, sweep.eval_every, sweep.num_log_evals))
    m0 = cat([jax.device_get(g.m0) for g in groups])
    steps, metrics = [0], [m0]
    log(0, dict(widths=widths, test_loss_bits=m0["loss"].mean(0)))
    for start in range(0, sweep.num_steps, sweep.log_every):
        losses = [g.step(start) for g in groups]  # dispatch every group before reading any
        end = start + sweep.log_every
        loss_seeds_W = np.concatenate([np.asarray(x)[:num_seeds] for x in losses], 1)
        row = dict(train_loss_bits=loss_seeds_W.mean(0) / sp.LN2)
        if end in evals:
            m = cat([jax.device_get(g.evaluate()) for g in groups])
            steps.append(end)
            metrics.append(m)
            row.update(test_loss_bits=m["loss"].mean(0), accuracy=m["accuracy"].mean(0))
        log(end, row)
    stacked = {k: np.stack([m[k] for m in metrics]) for k in metrics[0]}  # (S, seeds, W, ...)
    return np.array(steps), np.array(widths), stacked


# --- metrics ---------------------------------------------------------------------------------


def fit_exponent(
    x: ArrayLike, y: ArrayLike, window, num_bootstrap: int, *, key: PRNGKeyArray
) -> dict:
    """Power-law fit of a decaying loss as a positive exponent α (L ∝ x^-α) with its interval.

    Returns:
      ``alpha``, the bootstrap interval ``lo``/``hi`` (of α, so the bounds swap with the sign),
      ``r2``, ``points`` in the window and ``prefactor``.
    """
    f = fit_power_law(
        np.asarray(x, np.float32), np.asarray(y, np.float32), window=window,
        num_bootstrap=num_bootstrap, key=key,
    )  # fmt: skip
    alpha, lo, hi = -float(f.exponent), -float(f.ci_high), -float(f.ci_low)
    r2, points, prefactor = float(f.r_squared), int(f.num_points), float(f.prefactor)
    return dict(alpha=alpha, lo=lo, hi=hi, r2=r2, points=points, prefactor=prefactor)


def finite_k_tail(learned: ArrayLike, n_tasks: int, alpha_code: float) -> np.ndarray:
    """Frequency mass of the subtasks past the ``learned`` most frequent ones (float64).

    The loss in bits of a model that has learned exactly the top ``learned`` subtasks (0 bit on
    them, 1 bit on the rest) under the finite Zipf distribution over ``n_tasks`` subtasks: a
    tail ∝ n^-γ − K^-γ with K = n_tasks, which steepens the log–log slope as n nears K.
    """
    cum = np.concatenate([[0.0], np.cumsum(sp.task_probs(n_tasks, alpha_code))])
    n = np.clip(np.asarray(learned, np.int64), 0, n_tasks)
    return np.maximum(1.0 - cum[n], 0.0)


def finite_k_alpha(
    params: ArrayLike, learned: ArrayLike, n_tasks: int, alpha_code: float, window
) -> float:
    """α_N the finite-K quanta model predicts from measured learned-subtask counts.

    Fits :func:`finite_k_tail` of ``learned`` (one count per width) against ``params`` over
    ``window``, as the measured losses are fitted. Widths that learned every subtask (tail 0)
    drop out of the fit.
    """
    tail = finite_k_tail(learned, n_tasks, alpha_code)
    with jax.enable_x64(True):
        f = fit_power_law(np.asarray(params, np.float64), tail, window=window)
        return -float(f.exponent)


def transition_decades(
    task_loss_ST: Float[Array, "S ..."] | np.ndarray, steps: ArrayLike, high: float, low: float
) -> np.ndarray:
    """Width in decades of steps of each subtask's drop from ``high`` to ``low`` bits.

    ``task_loss_ST`` has the evaluation steps first (``steps[0]`` is skipped: the untrained
    model); any trailing axes (seeds, subtasks) are kept.

    ``log10(s_low / s_high)``, with ``s_x`` the first evaluated step (> 0) whose loss is below
    ``x``; NaN for a subtask that never gets below ``low``. 0 means the whole drop happened
    between two evaluations.
    """
    loss = np.asarray(task_loss_ST)[1:]
    steps = np.asarray(steps, np.float64)[1:]

    def first(below):
        return np.where(below.any(0), steps[np.argmax(below, 0)], np.nan)

    return np.log10(first(loss < low) / first(loss < high))


__all__ = [
    "WidthSweep",
    "WidthGroup",
    "eval_steps",
    "group_widths",
    "make_groups",
    "train_all",
    "fit_exponent",
    "finite_k_tail",
    "finite_k_alpha",
    "transition_decades",
]
