"""D-scaling of multitask sparse parity: the minimum test loss against the training-set size D.

Michaud et al. (2023, arXiv:2303.13506, section 4 and appendix) train a fixed, wide MLP on a
fixed training set of D samples and fit the *minimum* test loss over training (early stopping)
against D, L(D) ∝ D^-α_D; at α_code = 1.4 (γ = 0.4) they report α_D ≈ 0.308, against the quanta
model's γ/(γ+1) = 0.286 (a subtask is learned once it has enough samples, and a subtask of
frequency p_k gets D p_k of them).

:func:`data_sweep` trains one model per D, all vmapped into one program: every model has the
same initialisation and sees batches drawn uniformly *with replacement* from the first D samples
of one shared stream (so the training sets are nested), and the test loss on the
exact-frequency test set is recorded every ``eval_every`` steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from jaxlab.quanta import parity_mlp
from jaxlab.quanta import sparse_parity as sp


@dataclasses.dataclass(frozen=True)
class DataSweep:
    """Sizes and schedule of the D-scaling runs.

    Attributes:
      sizes: Training-set sizes D (each >= 1).
      width: Hidden width of every model (wide enough not to limit the loss).
      num_steps: AdamW steps per model (a multiple of ``eval_every``).
      eval_every: Steps between test evaluations.
      test_points: Nominal size of the exact-frequency test set.
    """

    sizes: tuple[int, ...]
    width: int
    num_steps: int
    eval_every: int
    test_points: int

    def __post_init__(self):
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"sizes must be non-empty positive integers, got {self.sizes}")
        if self.eval_every < 1 or self.num_steps % self.eval_every:
            raise ValueError(
                f"num_steps ({self.num_steps}) must be a positive multiple of eval_every "
                f"({self.eval_every})"
            )


def data_sweep(
    task: sp.TaskConfig, train: parity_mlp.TrainConfig, sweep: DataSweep, *, key: PRNGKeyArray
) -> dict[str, np.ndarray]:
    """Trains one model per D and records its test loss (bits) every ``eval_every`` steps.

    Args:
      task: The task distribution.
      train: Batch size, learning rate and weight decay (``data_size`` is ignored).
      sweep: The sizes and schedule.
      key: PRNG key (subsets, data stream, test set, initialisation, batch indices).

    Returns:
      dict(sizes [D], steps [E], losses [D, E], min_loss [D]): the evaluation steps, the test
      losses and their minimum over training per size.
    """
    k_sub, k_data, k_test, k_init, k_idx = jax.random.split(key, 5)
    subtasks = sp.make_subtasks(task.n_tasks, task.n, task.k, key=k_sub)
    logits = sp.task_logits(task.n_tasks, task.alpha_code)
    data = sp.sample_batch(subtasks, logits, max(sweep.sizes), task.n, key=k_data)
    test = sp.make_test_set(subtasks, task, sweep.test_points, 1, key=k_test)
    width, num_evals = sweep.width, sweep.num_steps // sweep.eval_every

    def one(size, key_idx):
        state = parity_mlp.init_state(task, train, width, width, key=k_init)

        def step(state, s):
            idx = jax.random.randint(jax.random.fold_in(key_idx, s), (train.batch_size,), 0, size)
            batch = jax.tree.map(lambda a: a[idx], data)
            return parity_mlp.train_step(state, width, batch, train)[0], None

        def chunk(state, c):
            state = jax.lax.scan(step, state, c * sweep.eval_every + jnp.arange(sweep.eval_every))[
                0
            ]
            return state, parity_mlp.evaluate(state.params, width, test)["loss"]

        return jax.lax.scan(chunk, state, jnp.arange(num_evals))[1]

    sizes = jnp.asarray(sweep.sizes, jnp.int32)
    keys = jax.random.split(k_idx, len(sweep.sizes))
    losses = np.asarray(jax.jit(jax.vmap(one))(sizes, keys))
    steps = sweep.eval_every * np.arange(1, num_evals + 1)
    return dict(sizes=np.asarray(sweep.sizes), steps=steps, losses=losses,
                min_loss=losses.min(axis=1))  # fmt: skip


PAPER_ALPHA_D = 0.308  # Michaud et al. 2023: α_D at α_code = 1.4 (γ = 0.4), minimum test loss


def fit_alpha_d(
    result: dict,
    *,
    max_loss: float,
    min_loss: float,
    late: float = 0.8,
    num_bootstrap: int = 1000,
    key: PRNGKeyArray,
) -> dict:
    """α_D from :func:`data_sweep`'s minimum test losses, over the data-limited sizes.

    A size is data-limited when its minimum comes before ``late`` of the training run (the
    loss rose again afterwards: over-fitting, so more steps would not lower it) and the minimum
    lies in ``(min_loss, max_loss)`` bits (past the plateau, above the numerical floor). Sizes
    still improving at the end are step-limited and left out.

    Returns:
      :func:`parity_sweep.fit_exponent`'s dict plus ``window`` (the smallest and largest size
      fitted) and ``used`` (a boolean mask over the sizes).
    """
    from jaxlab.quanta import parity_sweep

    losses, mins = result["losses"], result["min_loss"]
    early = np.argmin(losses, axis=1) < late * losses.shape[1]
    used = early & (mins < max_loss) & (mins > min_loss)
    sizes = result["sizes"].astype(np.float64)
    window = (float(sizes[used].min()), float(sizes[used].max())) if used.any() else (1.0, 0.0)
    fit = parity_sweep.fit_exponent(sizes, mins, window, num_bootstrap, key=key)
    return dict(fit, window=window, used=used)


def alpha_d_claim(fit: dict, width: int, gamma: float, *, source: str) -> dict:
    """The report row: the paper's α_D (:data:`PAPER_ALPHA_D`) inside :func:`fit_alpha_d`'s
    bootstrap 95% interval, with the theory's γ/(γ+1) beside it."""
    from jaxlab import report

    pd = PAPER_ALPHA_D
    return report.holds(
        f"α_D from the minimum test loss over the data-limited sizes D (width {width}): the "
        f"paper's {pd} inside the 95% CI",
        bool(fit["lo"] <= pd <= fit["hi"]),
        source=f"{source}, D-scaling",
        expected=f"{pd} (theory {gamma / (1 + gamma):.3f})",
        measured=f"{fit['alpha']:.3f} [{fit['lo']:.3f}, {fit['hi']:.3f}] (R² {fit['r2']:.3f}, "
        f"{int(fit['used'].sum())} sizes)",
    )
