"""Functional training of the tiny LM: AdamW + warmup/cosine + clipping, sharded, resumable.

The model and optimizer are split once into ``(graphdef, state)``; a pure jitted step merges,
differentiates, updates and returns the new state (STYLE 2.7). State is replicated and the batch
sharded over the ``data`` mesh axis (``jaxlab.sharding``). Batches are drawn inside jit from the
step number, ``fold_in(data_key, step)``, so a resumed run replays the same stream. Checkpoints go
through ``jaxlab.checkpoint``; a run resumes automatically when ``workdir/ckpt`` exists.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxlab import data, metrics, sharding
from jaxlab.checkpoint import Checkpoints
from jaxlab.emo import lm as emo_lm
from jaxlab.models import LMConfig, TinyLM


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and logging settings for :func:`fit`."""

    batch_size: int = 32  # global batch, split over devices
    seq_len: int = 128  # training context length L
    num_steps: int = 500
    learning_rate: float = 3e-3  # peak AdamW learning rate
    warmup_steps: int = 50  # linear warmup, then cosine decay to 10% of the peak
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # global-norm clipping
    loss: str = "cross_entropy"  # key into LOSSES
    log_every: int = 25  # metrics line + progress every this many steps (0: evals/end only)
    eval_every: int = 0  # held-out eval every this many steps (0: only at the end)
    eval_windows: int = 32  # number of fixed held-out windows for evals
    checkpoint_every: int = 0  # orbax checkpoint every this many steps (0: none)


def cross_entropy(model: TinyLM, logits_BLV: jax.Array, targets_BL: jax.Array) -> jax.Array:
    """Mean next-byte cross-entropy in nats."""
    del model
    return optax.softmax_cross_entropy_with_integer_labels(logits_BLV, targets_BL).mean()


# Pluggable losses: fn(model, logits_BLV, targets_BL) -> scalar nats, or -> (scalar, metrics dict)
# whose entries are logged. The model is passed so a loss can read the LM head's embeddings (EMO).
# A loss with ``takes_inputs = True`` gets the input tokens instead of logits and runs the model
# itself (EMO's fused head loss never builds the logits).
LOSSES: dict[str, Callable] = {"cross_entropy": cross_entropy, **emo_lm.LOSSES}


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """clip_by_global_norm → AdamW on a warmup + cosine schedule."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.adamw(learning_rate_schedule(cfg), b2=0.99, weight_decay=cfg.weight_decay),
    )


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.learning_rate,
        warmup_steps=max(cfg.warmup_steps, 1),
        decay_steps=max(cfg.num_steps, cfg.warmup_steps + 1),
        end_value=0.1 * cfg.learning_rate,
    )


def _build(model_cfg: LMConfig, train_cfg: TrainConfig, key: jax.Array):
    model = TinyLM(model_cfg, rngs=nnx.Rngs(params=key))
    return model, nnx.Optimizer(model, make_optimizer(train_cfg), wrt=nnx.Param)


def init_state(model_cfg: LMConfig, train_cfg: TrainConfig, key: jax.Array, mesh):
    """Builds ``(graphdef, state, abstract_state)`` with the state replicated on ``mesh``.

    ``eval_shape`` → shardings → ``jit(init, out_shardings=...)``, so nothing is built on the host.
    The graphdef and the jitted init are cached per ``(model_cfg, train_cfg, mesh)``: a second
    run of the same configs gets the same graphdef, hence the same cached step (no recompile).
    """
    graphdef, abstract_state, init = _initializer(model_cfg, _optimiser_part(train_cfg), mesh)
    return graphdef, init(key), abstract_state


def _optimiser_part(train_cfg: TrainConfig) -> TrainConfig:
    """``train_cfg`` with its logging and checkpoint fields zeroed: the cache key of compiled
    programs, so runs that differ only in how often they log or save share them."""
    return dataclasses.replace(
        train_cfg, log_every=0, eval_every=0, eval_windows=0, checkpoint_every=0
    )


@functools.lru_cache(maxsize=16)
def _initializer(model_cfg: LMConfig, train_cfg: TrainConfig, mesh):
    abstract = nnx.eval_shape(lambda: _build(model_cfg, train_cfg, jax.random.key(0)))
    graphdef, abstract_state = nnx.split(abstract)
    state_sharding = jax.tree.map(lambda _: sharding.replicated(mesh), abstract_state)
    init = jax.jit(
        lambda k: nnx.state(_build(model_cfg, train_cfg, k)), out_shardings=state_sharding
    )
    abstract_state = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        abstract_state,
        state_sharding,
    )
    return graphdef, abstract_state, init


def make_step(graphdef, objective: Callable, mesh):
    """A jitted optimiser step ``(state, batch) -> (state, stats)`` for any model (donates state).

    ``state`` is ``nnx.state((model, optimizer))`` of ``graphdef`` (replicated on ``mesh``);
    ``objective(model, batch)`` returns a scalar loss or ``(loss, metrics dict)`` (the metrics
    are added to ``stats``); every leaf of the pytree ``batch`` is constrained
    to have its leading (batch) axis over ``data``. ``stats`` holds ``loss`` and ``grad_norm``.
    """
    batch_sharding = sharding.batch_sharding(mesh)

    def step(state, batch):
        batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, batch_sharding), batch)
        model, optimizer = nnx.merge(graphdef, state)

        def with_aux(m):
            out = objective(m, batch)
            return out if isinstance(out, tuple) else (out, {})

        (loss, aux), grads = nnx.value_and_grad(with_aux, has_aux=True)(model)
        # optax's bias correction mixes Python floats and int32 step counts; under the strict
        # promotion the tests use, that needs the standard rules.
        with jax.numpy_dtype_promotion("standard"):
            optimizer.update(model, grads)
        stats = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
        return nnx.state((model, optimizer)), stats

    return jax.jit(step, donate_argnums=0)


@jax.jit
def _track_first_bad(first_bad, stats, step):
    finite = jnp.isfinite(stats["loss"]) & jnp.isfinite(stats["grad_norm"])
    return jnp.where((first_bad < 0) & ~finite, jnp.int32(step), first_bad)


def run_identity(model_cfg: LMConfig, train_cfg: TrainConfig, seed: int, data_id: str = "") -> str:
    """A short hash of everything that determines a training run (stored with checkpoints).

    ``data_id`` names the training data (``data.split_fingerprint``), so a checkpoint of the
    same configs trained on other text is refused too.
    """
    text = repr((model_cfg, train_cfg, int(seed))) + data_id
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_train_step(graphdef, train_cfg: TrainConfig, mesh):
    """The LM's jitted step ``(state, batch_BL1) -> (state, stats)``; donates ``state``.

    Cached per ``(graphdef, train_cfg, mesh, loss function)``, so repeated :func:`fit` calls of
    one config (a resume, a sweep's repeats) reuse one compilation.
    """
    return _train_step(graphdef, _optimiser_part(train_cfg), mesh, LOSSES[train_cfg.loss])


@functools.lru_cache(maxsize=16)
def _train_step(graphdef, train_cfg: TrainConfig, mesh, loss_fn: Callable):

    def objective(model, batch_BL1):
        inputs_BL, targets_BL = batch_BL1[:, :-1], batch_BL1[:, 1:]
        if getattr(loss_fn, "takes_inputs", False):  # runs the model itself (fused EMO head)
            return loss_fn(model, inputs_BL, targets_BL)
        return loss_fn(model, model(inputs_BL), targets_BL)

    return make_step(graphdef, objective, mesh)


@functools.lru_cache(maxsize=16)
def _sampler(mesh, batch_size: int, length: int):
    """Jitted ``(tokens, data_key, step) -> batch``: the step's windows, sharded over ``data``."""

    @functools.partial(jax.jit, out_shardings=sharding.batch_sharding(mesh))
    def sample(tokens, data_key, step):
        key = jax.random.fold_in(data_key, step)
        return data.sample_windows(tokens, batch_size, length, key=key)

    return sample


@functools.partial(jax.jit, static_argnums=0)
def _eval_chunk(graphdef, model_state, windows_BL1):
    model = nnx.merge(graphdef, model_state)
    logits_BLV = model(windows_BL1[:, :-1])
    targets_BL = windows_BL1[:, 1:]
    nll_BL = optax.softmax_cross_entropy_with_integer_labels(logits_BLV, targets_BL)
    correct_BL = (jnp.argmax(logits_BLV, -1) == targets_BL).astype(jnp.float32)
    return nll_BL.sum(0), correct_BL.sum(0)


def evaluate(model: TinyLM, windows_BL1: np.ndarray, *, chunk: int = 8) -> dict:
    """Held-out loss in bits per byte and next-byte accuracy, overall and per position.

    Args:
      model: The LM (any :class:`LMConfig`; evaluation length is the windows' length − 1).
      windows_BL1: int32 windows of ``L + 1`` bytes; inputs ``[:, :-1]``, targets ``[:, 1:]``.
      chunk: Windows per jitted call (bounds memory at long lengths).

    Returns:
      dict(bits_per_byte, accuracy, bits_by_position [L], accuracy_by_position [L]).
    """
    graphdef, model_state = nnx.split(model)
    windows_BL1 = np.asarray(windows_BL1, dtype=np.int32)
    nll_sum = 0.0
    correct_sum = 0.0
    for start in range(0, windows_BL1.shape[0], chunk):
        part = windows_BL1[start : start + chunk]
        nll_L, correct_L = _eval_chunk(graphdef, model_state, jnp.asarray(part))
        nll_sum = nll_sum + np.asarray(nll_L, np.float64)
        correct_sum = correct_sum + np.asarray(correct_L, np.float64)
    n = windows_BL1.shape[0]
    bits_L = nll_sum / n / math.log(2)
    acc_L = correct_sum / n
    return dict(
        bits_per_byte=float(bits_L.mean()),
        accuracy=float(acc_L.mean()),
        bits_by_position=bits_L,
        accuracy_by_position=acc_L,
    )


@dataclasses.dataclass
class FitResult:
    model: TinyLM  # the trained model (merged)
    history: list[dict]  # the metrics lines written during this call
    resumed_from: int | None  # checkpoint step resumed from, if any
    final: dict  # last held-out evaluation (bits_per_byte, accuracy)


def _window_hits(graphdef, model_state, windows_BL1):
    logits_BLV = nnx.merge(graphdef, model_state)(windows_BL1[:, :-1])
    return (jnp.argmax(logits_BLV, -1) == windows_BL1[:, 1:]).astype(jnp.float32)


_window_hits_jit = jax.jit(_window_hits, static_argnums=0)


def window_hits(
    model_cfg: LMConfig, model_state, windows_BL1: np.ndarray, *, chunk: int = 8, use_jit=True
) -> np.ndarray:
    """Per-window, per-position next-byte hits (W, L) of ``model_state`` under ``model_cfg``.

    ``model_state`` (``nnx.state`` of a trained TinyLM) is merged into the graphdef of
    ``model_cfg``, which may differ from the trained config where the difference has no
    parameters (RoPE scaling, ReRoPE window, attention scale). Eager evaluation
    (``use_jit=False``) reuses per-op compilations across many configs (each is a new graph,
    so a jitted forward recompiles the whole model); jit for large runs.
    """
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: TinyLM(model_cfg, rngs=nnx.Rngs(0))))
    fn = _window_hits_jit if use_jit else _window_hits
    parts = [np.asarray(fn(graphdef, model_state, jnp.asarray(windows_BL1[i : i + chunk])))
             for i in range(0, windows_BL1.shape[0], chunk)]  # fmt: skip
    return np.concatenate(parts)


def fit(
    model_cfg: LMConfig,
    train_cfg: TrainConfig,
    corpus: data.Corpus,
    workdir: str | pathlib.Path,
    *,
    seed: int = 0,
    mesh=None,
    name: str = "train",
    stop_at: int | None = None,
    metrics_file: bool = True,
) -> FitResult:
    """Trains a :class:`TinyLM` on ``corpus.train``; evaluates on ``corpus.heldout``.

    Args:
      model_cfg: Architecture.
      train_cfg: Optimisation, logging and checkpoint settings.
      corpus: Byte corpus (see ``jaxlab.data``).
      workdir: Run directory: ``metrics.jsonl`` and ``ckpt/`` (if checkpointing) live here.
      seed: Seeds initialisation and the batch stream.
      mesh: Data-parallel mesh (default: all devices, ``sharding.data_mesh()``).
      name: Prefix for progress lines.
      stop_at: Stop after this step without finishing (simulates an interruption; tests).
      metrics_file: Write ``metrics.jsonl`` (off when a runner trains several models).

    Returns:
      A :class:`FitResult`.

    Raises:
      FloatingPointError: a step's loss or gradient norm was non-finite (checked on device every
        step, read at each log and checkpoint; the first bad step is named, and no checkpoint
        after it is saved).
      CheckpointMismatchError: ``workdir/ckpt`` holds checkpoints of other configs or data.
      CheckpointWriteError, MetricsWriteError: a write failed (a full disk); the checkpoints
        before it are intact and the same call resumes from them.

    The run protocol: the metrics line of a step is fsynced before that step's checkpoint is
    saved, and a resume drops the lines after the checkpoint it resumes from, so a kill at any
    moment leaves a file that resumes to exactly the uninterrupted run's lines and parameters.
    """
    workdir = pathlib.Path(workdir)
    mesh = mesh or sharding.data_mesh()
    sharding.check_divisible(train_cfg.batch_size, mesh)
    ckpt = None
    if train_cfg.checkpoint_every:  # first: a bad checkpoint path fails before any compile
        ckpt = Checkpoints(
            workdir / "ckpt",
            every=train_cfg.checkpoint_every,
            config_id=run_identity(model_cfg, train_cfg, seed, data.split_fingerprint(corpus)),
        )
    try:
        result = _fit(model_cfg, train_cfg, corpus, workdir, ckpt, seed, mesh, name, stop_at,
                      metrics_file)  # fmt: skip
    except BaseException:
        if ckpt is not None:
            ckpt.close(quiet=True)  # shut orbax's threads down; the error that got here wins
        raise
    if ckpt is not None:
        ckpt.close()
    return result


def _fit(model_cfg, train_cfg, corpus, workdir, ckpt, seed, mesh, name, stop_at, metrics_file):
    """The body of :func:`fit` (``ckpt``: its :class:`Checkpoints` or None)."""
    init_key, data_key = jax.random.split(jax.random.key(seed))
    graphdef, state, abstract_state = init_state(model_cfg, train_cfg, init_key, mesh)
    start = 0
    if ckpt is not None and ckpt.latest_step() is not None:
        restored = ckpt.restore(abstract_state, data_key)
        if restored is not None:
            state, start, data_key = restored
    resumed_from = start if start else None
    writer = None
    if metrics_file:
        writer = metrics.MetricsWriter(workdir, resume_step=resumed_from)

    train_tokens = sharding.replicate(jnp.asarray(corpus.train), mesh)
    eval_windows = data.eval_windows(corpus.heldout, train_cfg.eval_windows, train_cfg.seq_len + 1)
    sample = _sampler(mesh, train_cfg.batch_size, train_cfg.seq_len + 1)
    train_step = make_train_step(graphdef, train_cfg, mesh)
    schedule = learning_rate_schedule(train_cfg)
    progress = metrics.Progress(name, train_cfg.num_steps)
    history: list[dict] = []

    def log(step: int, stats, *, eval_now: bool) -> None:
        values = {k: float(v) for k, v in jax.device_get(stats).items()}
        values["learning_rate"] = float(schedule(step - 1))
        if eval_now:
            model = nnx.merge(graphdef, state)[0]
            ev = evaluate(model, eval_windows)
            values["heldout_bits_per_byte"] = ev["bits_per_byte"]
            values["heldout_accuracy"] = ev["accuracy"]
        metrics.check_finite(step, {"loss": values["loss"]}, writer)
        record = writer.write(step, **values) if writer else {"step": step, **values}
        history.append(record)
        progress.update(step, f"loss {values['loss']:.4f}")

    def guard(step_now: int, stats_now) -> None:
        """Raises if any step so far had a non-finite loss or gradient norm, naming the first.

        The device keeps the first bad step (``first_bad``); reading it here, at logging and
        checkpoint points only, costs no extra host round-trip per step.
        """
        bad = int(jax.device_get(first_bad))
        if bad >= 0:
            values = {k: float(v) for k, v in jax.device_get(stats_now).items()}
            if writer is not None:
                writer.write(step_now, **values, first_nonfinite_step=bad)
            raise FloatingPointError(
                f"non-finite loss or gradient norm at step {bad} (no checkpoint saved after it)"
            )

    end = train_cfg.num_steps if stop_at is None else min(stop_at, train_cfg.num_steps)
    pending = None  # (step, stats) dispatched but not yet read: keeps the device busy
    first_bad = jnp.int32(-1)  # first step with a non-finite loss or grad norm, on device
    for step in range(start, end):
        state, stats = train_step(state, sample(train_tokens, data_key, step))
        done = step + 1
        first_bad = _track_first_bad(first_bad, stats, done)
        if pending is not None:
            guard(*pending)
            log(*pending, eval_now=False)
            pending = None
        save_now = ckpt is not None and (done == end or ckpt.should_save(done))
        want_eval = bool(train_cfg.eval_every) and done % train_cfg.eval_every == 0
        if want_eval or done == train_cfg.num_steps:
            guard(done, stats)
            log(done, stats, eval_now=True)
        elif train_cfg.log_every and done % train_cfg.log_every == 0:
            if save_now:  # the step's line is on disk before its checkpoint is committed
                guard(done, stats)
                log(done, stats, eval_now=False)
            else:
                pending = (done, stats)
        if save_now:
            guard(done, stats)  # never save non-finite parameters
            ckpt.save(done, state, data_key, force=True, metadata={"model": model_cfg.to_dict()})
    if pending is not None:
        guard(*pending)
        log(*pending, eval_now=False)

    model = nnx.merge(graphdef, state)[0]
    if end == train_cfg.num_steps and (not history or "heldout_bits_per_byte" not in history[-1]):
        # Resumed from a checkpoint taken at the last step: nothing to train. The final line
        # is already in metrics.jsonl when the checkpoint is (it is written first): reuse it.
        kept = writer.kept[-1] if writer is not None and writer.kept else {}
        if kept.get("step") == end and "heldout_bits_per_byte" in kept:
            history.append(kept)
        else:
            ev = evaluate(model, eval_windows)
            values = {"heldout_bits_per_byte": ev["bits_per_byte"],
                      "heldout_accuracy": ev["accuracy"]}  # fmt: skip
            history.append(writer.write(end, **values) if writer else {"step": end, **values})
    final = history[-1] if history else {}
    return FitResult(model=model, history=history, resumed_from=resumed_from, final=final)
