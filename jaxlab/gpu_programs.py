"""The main jitted programs of an experiment config, on abstract inputs, for ``--gpu --dry-run``.

``PROGRAMS[name](config, mesh)`` returns :class:`Program` items: a jitted function and the
arguments it would be called with at the config's full shapes, as ``jax.ShapeDtypeStruct``
pytrees (with their shardings) built by ``jax.eval_shape`` / ``nnx.eval_shape``, so no array of
that size is ever allocated. :mod:`jaxlab.gpu_tier` lowers and compiles each one
(``fn.lower(*args).compile()``) and reads its memory and FLOP estimates.

A hook builds its programs with the same library calls as the runner (``train.make_step``,
``parity_sweep.group_programs``, ``population.make_solve``), so a change of shapes or shardings
in the library shows up here; what a hook leaves out is said in its docstring. Experiments
without a hook are in :data:`UNCOMPILED` with the reason; the dry run lists them as "config
checked only".
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jaxlab import sharding, train
from jaxlab.config_args import to_dataclass


@dataclasses.dataclass(frozen=True)
class Program:
    """One jitted program: ``fn.lower(*args)`` lowers it; ``context`` wraps lowering/compiling."""

    name: str
    fn: Any  # a jax.jit-wrapped function (has .lower)
    args: tuple
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


def _placed(tree, sharding_):
    """ShapeDtypeStructs of ``tree``'s leaves, each with ``sharding_``."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding_), tree)


def _abstract(build: Callable, mesh):
    """``(graphdef, abstract state replicated on mesh)`` of the nnx objects ``build()`` returns."""
    graphdef, state = nnx.split(nnx.eval_shape(build))
    return graphdef, _placed(state, sharding.replicated(mesh))


def _lm_train_step(name, model_cfg, train_cfg, mesh, *, build=None) -> Program:
    """The LM optimiser step at batch ``[batch_size, seq_len + 1]`` (``train.fit``'s program)."""
    build = build or functools.partial(train._build, model_cfg, train_cfg, jax.random.key(0))
    graphdef, state = _abstract(build, mesh)
    batch = jax.ShapeDtypeStruct(
        (train_cfg.batch_size, train_cfg.seq_len + 1),
        jnp.int32,
        sharding=sharding.batch_sharding(mesh),
    )
    return Program(name, train.make_train_step(graphdef, train_cfg, mesh), (state, batch))


def _lm_forward(name, model_cfg, windows: int, length: int, mesh) -> Program:
    """The evaluation forward (``train.window_hits``) on ``[windows, length + 1]`` bytes."""
    graphdef, state = _abstract(
        lambda: train.TinyLM(model_cfg, rngs=nnx.Rngs(0)), mesh
    )  # model only
    batch = jax.ShapeDtypeStruct((windows, length + 1), jnp.int32)
    return Program(name, train._window_hits_jit, (graphdef, state, batch))


def lm_baseline(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """Train step at (batch, L + 1) and the held-out forward at (eval chunk 8, L + 1)."""
    from jaxlab.models import lm_config

    model_cfg = lm_config(config.model)
    train_cfg = to_dataclass(train.TrainConfig, config.train)
    return [
        _lm_train_step("train_step", model_cfg, train_cfg, mesh),
        _lm_forward("eval_forward", model_cfg, 8, train_cfg.seq_len, mesh),
    ]


def rope_extrapolation(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """Train step at L, and the 8L forward of the baseline and of the first (Leaky) ReRoPE.

    The other RoPE scalings change only the frequencies, not shapes or memory; ReRoPE computes
    two score matrices, the largest program of the evaluation.
    """
    from jaxlab.experiments import rope_extrapolation as rx

    train_cfg = to_dataclass(train.TrainConfig, config.train)
    long = int(config.eval_factor) * train_cfg.seq_len
    chunk = int(config.eval_chunk)
    progs = [_lm_train_step("train_step", rx._model_config(config), train_cfg, mesh)]
    wanted = ["Baseline", "ReRoPE", "Leaky"]  # the first method of each kind
    for method, overrides in rx._methods(config):
        kind = next((w for w in wanted if method.startswith(w)), None)
        if kind is not None:
            wanted.remove(kind)
            cfg = rx._model_config(config, **overrides)
            progs.append(_lm_forward(f"forward@{long} {method}", cfg, chunk, long, mesh))
    return progs


def attention_extrapolation(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """Train step at L (one per scale rule: same shapes) and the forward at the longest length."""
    from jaxlab.models import lm_config

    train_cfg = to_dataclass(train.TrainConfig, config.train)
    base = lm_config(config.model)
    longest = max(int(n) for n in config.eval_lengths)
    return [
        _lm_train_step("train_step", base, train_cfg, mesh),
        _lm_forward(f"forward@{longest}", base, int(config.eval_chunk), longest, mesh),
    ]


def emo_finetune(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """Pre-training step, and one fine-tuning step per branch loss (EMO heads are fused)."""
    from jaxlab.emo import lm as emo_lm
    from jaxlab.models import lm_config

    model_cfg = lm_config(config.model)
    pre_cfg = to_dataclass(train.TrainConfig, config.pretrain)
    progs = [_lm_train_step("pretrain_step", model_cfg, pre_cfg, mesh)]
    for branch, loss_name in config.branches.items():
        cfg = to_dataclass(train.TrainConfig, config.finetune, loss=loss_name)

        def build(cfg=cfg):
            model = emo_lm.attach_cost_embedding(train.TinyLM(model_cfg, rngs=nnx.Rngs(0)))
            return model, nnx.Optimizer(model, train.make_optimizer(cfg), wrt=nnx.Param)

        progs.append(_lm_train_step(f"finetune_step {branch}", model_cfg, cfg, mesh, build=build))
    return progs


def sparse_parity(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """Per width group: setup (init + test sets), one training chunk, one evaluation."""
    from jaxlab.quanta import parity_mlp, parity_sweep
    from jaxlab.quanta import sparse_parity as sp

    task = to_dataclass(sp.TaskConfig, config.task)
    tr = to_dataclass(parity_mlp.TrainConfig, config.train)
    sw = to_dataclass(parity_sweep.WidthSweep, config.sweep)
    seeds = math.ceil(sw.num_seeds / mesh.size) * mesh.size  # make_groups pads to this
    keys = _placed(
        jax.eval_shape(lambda: jax.random.split(jax.random.key(0), seeds)),
        sharding.batch_sharding(mesh),
    )
    progs = []
    for widths in parity_sweep.group_widths(sw.widths, sw.width_group_size):
        setup, chunk, evaluate = parity_sweep.group_programs(sw, task, tr, widths, mesh)
        states, subtasks, test, dataset, data_keys, _ = jax.eval_shape(setup, keys)
        tag = f"widths {widths[0]}..{widths[-1]}"
        progs += [
            Program(f"setup {tag}", setup, (keys,)),
            Program(f"chunk {tag}", chunk, (states, subtasks, dataset, data_keys, 0)),
            Program(f"eval {tag}", evaluate, (states.params, test)),
        ]
    return progs


def deer_train(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """The DEER (implicit gradient) and lax.scan (BPTT) optimiser steps at (B, T)."""
    from jaxlab.deer import task
    from jaxlab.deer.layer import ParallelRNNConfig

    candidate = to_dataclass(ParallelRNNConfig, config.model, in_features=1)
    models = {"deer": candidate, "bptt": dataclasses.replace(candidate, mode="sequential")}
    objective = functools.partial(task.mse, per_example=mesh.size > 1)
    batch = _placed(
        jax.eval_shape(
            lambda: task.running_mean_batch(
                config.data.batch, config.data.length, key=jax.random.key(0)
            )
        ),
        sharding.batch_sharding(mesh),
    )
    progs = []
    for name, cfg in models.items():

        def build(cfg=cfg):
            model = task.Regressor(cfg, rngs=nnx.Rngs(0))
            return model, nnx.Optimizer(
                model, optax.adam(config.train.learning_rate), wrt=nnx.Param
            )

        graphdef, state = _abstract(build, mesh)
        progs.append(
            Program(f"step {name}", train.make_step(graphdef, objective, mesh), (state, batch))
        )
    return progs


def deer_convergence(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """Every mode's vmapped solve of the largest cell (by n^2 T; float64, population split).

    The other cells run the same programs at smaller shapes.
    """
    from jaxlab.deer import population as pop

    cfg = to_dataclass(pop.SurveyConfig, config.survey)
    n, t, scale = max(cfg.cells, key=lambda c: c[0] * c[0] * c[1])
    seeds = math.ceil(cfg.num_seeds / mesh.size) * mesh.size
    progs = []
    with jax.enable_x64(True):
        params, xs = _placed(
            jax.eval_shape(
                lambda: pop.draw_population(
                    "tanh", n, t, scale, seeds, dtype=jnp.float64, key=jax.random.key(0)
                )
            ),
            sharding.batch_sharding(mesh),
        )
    for mode in cfg.modes_at(scale):
        solve = pop.make_solve(
            "tanh", mode, tol=cfg.tol, sigmasq=cfg.sigmasq, scan_method=config.scan_method
        )
        fn = jax.jit(jax.vmap(solve), out_shardings=sharding.batch_sharding(mesh))
        progs.append(
            Program(
                f"solve {mode} n={n} T={t}",
                fn,
                (params, xs),
                context=functools.partial(jax.enable_x64, True),
            )
        )
    return progs


@contextlib.contextmanager
def _recording(module, attr: str, mesh, programs: list, label: str):
    """Swaps ``module.attr(fn, mesh, *arrays)`` (a runner's ``jit(vmap(fn))`` over padded,
    sharded chains) for a recorder: it records the program at its padded, sharded shapes and
    returns zeros of the unpadded output shapes, so the runner's own code builds every program
    and nothing of size runs. Only small set-up arrays (keys, indices) are made concretely.
    """
    original = getattr(module, attr)

    def record(fn, mesh_, *arrays):
        n = arrays[0].shape[0]
        m = sharding.pad_to_multiple(n, mesh_)
        spec = sharding.batch_sharding(mesh_)
        args = tuple(
            jax.ShapeDtypeStruct((m, *a.shape[1:]), a.dtype, sharding=spec) for a in arrays
        )
        jitted = jax.jit(jax.vmap(fn), out_shardings=spec)
        context = functools.partial(jax.enable_x64, jax.config.jax_enable_x64)
        programs.append(
            Program(f"{label} #{len(programs) + 1} ({m} chains)", jitted, args, context)
        )
        out = jax.eval_shape(jitted, *args)
        return jax.tree.map(lambda s: np.zeros((n, *s.shape[1:]), s.dtype), out)

    setattr(module, attr, record)
    try:
        yield
    finally:
        setattr(module, attr, original)


def mad_gaussian(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """Every chain program of the runner (exact law, biased laws, sample chains, fresh loops),
    recorded from the runner's own ``_law`` and ``_fresh`` (see :func:`_recording`)."""
    from jaxlab.experiments import mad_gaussian as mg

    progs: list[Program] = []
    key = jax.random.key(config.seed)
    with jax.enable_x64(config.dtype == "float64"):
        with _recording(mg, "_sharded_chains", mesh, progs, "chains"):
            mg._law(config, mesh, key)
            mg._fresh(config, mesh, key)
    return progs


def mad_learned(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """The chain programs of both models (EM mixture, RealNVP flow), recorded from the runner."""
    from jaxlab import mad
    from jaxlab.experiments import mad_learned as ml
    from jaxlab.mad import flow

    progs: list[Program] = []
    key = jax.random.key(config.seed)
    truth = mad.grid_mixture(**config.truth.to_dict())
    reference = mad.sample_mixture(truth, config.eval.num, key=jax.random.fold_in(key, 7))
    mx, fl = config.mixture, config.flow
    flow_cfg = flow.FlowConfig(num_layers=fl.num_layers, hidden=fl.hidden, steps=fl.steps,
                               learning_rate=fl.learning_rate, data_scale=3.0)  # fmt: skip
    models = ((mad.MixtureModel(mx.num_components, mx.num_iters), mx, "mixture"),
              (flow.FlowModel(flow_cfg), fl, "flow"))  # fmt: skip
    for stream, (model, sec, label) in enumerate(models):
        with _recording(ml, "_sharded_chains", mesh, progs, label):
            ml._run_model(stream, model, sec, truth, reference, config, mesh, key)
    return progs


def quanta_theory(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """The sharded grid simulation (``quanta.simulate_grid_sharded``), recorded from the runner's
    ``_simulate``: its arguments are built by the runner (small: γ, N and D grids); the
    recorder pads γ as the library does, compiles ``simulate_grid`` with the γ axis over
    ``data``, and hands zeros of the output shapes back. The data-law and fit programs that
    follow (over a few γ) run on the host's zeros and are not compiled here.
    """
    from jaxlab import quanta
    from jaxlab.experiments import quanta_theory as qt
    from jaxlab.quanta import grid

    progs: list[Program] = []
    original = quanta.simulate_grid_sharded

    def record(mesh_, gammas, num_params, data_GD, taus, a, b, *, key, **static):
        data_GD = jnp.broadcast_to(data_GD, (len(gammas), np.shape(data_GD)[-1]))
        (gammas, data_GD), unpad = sharding.pad_population(
            (gammas, data_GD), mesh_, what="number of γ"
        )
        fn = jax.jit(
            lambda g, n, d, t, k: grid.simulate_grid(g, n, d, t, a, b, key=k, **static),
            out_shardings=sharding.batch_sharding(mesh_),
        )
        args = (gammas, num_params, data_GD, taus, key)
        x64 = functools.partial(jax.enable_x64, config.dtype == "float64")
        progs.append(Program(f"simulate_grid ({len(gammas)} γ)", fn, args, x64))
        out = jax.eval_shape(fn, *args)
        return unpad(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out))

    quanta.simulate_grid_sharded = record
    try:
        with jax.enable_x64(config.dtype == "float64"):
            qt._simulate(config, mesh)
    finally:
        quanta.simulate_grid_sharded = original
    return progs


def ab_plus_c(config: ml_collections.ConfigDict, mesh) -> list[Program]:
    """``survey.min_abc_population``'s program (``jit(vmap(min_abc_jax))``, int64, N over
    ``data``) at the exhaustive sweep's size (n_max + 1) and the timing batch. The rest of the
    experiment is exact Python integer arithmetic, not compiled.
    """
    from jaxlab.ab_plus_c import vectorized

    spec = sharding.batch_sharding(mesh)
    progs = []
    for what, n in (("exhaustive", config.sweep.n_max + 1), ("timing", config.timing.jax_batch)):
        m = sharding.pad_to_multiple(n, mesh)
        fn = jax.jit(jax.vmap(vectorized.min_abc_jax), out_shardings=spec)
        with jax.enable_x64(True):
            args = (jax.ShapeDtypeStruct((m,), jnp.int64, sharding=spec),)
        progs.append(
            Program(
                f"min_abc_jax {what} ({m} N)", fn, args, functools.partial(jax.enable_x64, True)
            )
        )
    return progs


# Experiments whose gpu config the dry run only loads and validates, and why.
UNCOMPILED = {
    "attention_scale": "many small Monte Carlo programs built inside jaxlab.attention_scale "
    "(score draws, entropy integrals); no single program dominates; not hooked yet",
    "tokenizer_sampling": "host-bound (SentencePiece training, Python reference samplers); its "
    "JAX programs are the tokenizer's lattice DP built inside Tokenizer; not hooked yet",
}

PROGRAMS: dict[str, Callable[[ml_collections.ConfigDict, Any], list[Program]]] = {
    "ab_plus_c": ab_plus_c,
    "attention_extrapolation": attention_extrapolation,
    "deer_convergence": deer_convergence,
    "deer_train": deer_train,
    "emo_finetune": emo_finetune,
    "lm_baseline": lm_baseline,
    "mad_gaussian": mad_gaussian,
    "mad_learned": mad_learned,
    "quanta_theory": quanta_theory,
    "rope_extrapolation": rope_extrapolation,
    "sparse_parity": sparse_parity,
}
