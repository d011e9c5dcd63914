"""DEER training: a GRU trained with DEER + implicit gradients matches lax.scan + BPTT (T >= 1000).

Two copies of the same ``ParallelRNN`` GRU (plus a linear readout, :mod:`jaxlab.deer.task`) train
side by side on the running-mean task with identical initial weights and batches; one evaluates
the recurrence with DEER (Newton, implicit-differentiation gradients), the other with ``lax.scan``
and BPTT (Lim et al., arXiv:2309.12252). Both use ``jaxlab.train.make_step``.

Data parallel (STYLE 2.8): the batch axis B of every training batch is split over the ``data``
mesh axis (``config.num_devices``), parameters and optimizer state are replicated; a batch that
does not divide over the devices fails at the start (no padding: it would change the loss).
"""

import dataclasses
import functools
import pathlib
import time

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from jaxlab import plots, report, sharding, train
from jaxlab.config_args import to_dataclass
from jaxlab.deer import task
from jaxlab.deer.layer import ParallelRNNConfig
from jaxlab.metrics import MetricsWriter, Progress, check_finite

PAPER = "arXiv:2309.12252"


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    steps, lr, log_every = config.train.steps, config.train.learning_rate, config.train.log_every
    key = jax.random.key(config.seed)
    mesh = sharding.data_mesh(config.num_devices or None)
    sharding.check_divisible(config.data.batch, mesh, "data.batch")  # fail loudly, no padding
    # The two models: DEER (config.model.mode) and the lax.scan reference.
    candidate = to_dataclass(ParallelRNNConfig, config.model, in_features=1)
    models = {"deer": candidate, "bptt": dataclasses.replace(candidate, mode="sequential")}
    objective = functools.partial(task.mse, per_example=mesh.size > 1)
    states, step_fns = {}, {}
    for name, model_cfg in models.items():
        model = task.Regressor(model_cfg, rngs=nnx.Rngs(config.seed))
        optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
        graphdef, state = nnx.split((model, optimizer))
        states[name] = sharding.replicate(state, mesh)
        step_fns[name] = train.make_step(graphdef, objective, mesh)
    writer = MetricsWriter(workdir)
    progress = Progress("deer_train", steps)
    losses = {"deer": [], "bptt": []}
    times = {"deer": 0.0, "bptt": 0.0}
    for i in range(steps):
        batch = task.running_mean_batch(
            config.data.batch, config.data.length, key=jax.random.fold_in(key, i)
        )
        batch = sharding.shard_batch(batch, mesh)  # B over data
        for name in ("deer", "bptt"):
            t0 = time.perf_counter()
            states[name], stats = step_fns[name](states[name], batch)
            losses[name].append(float(stats["loss"]))
            if i > 0:  # exclude compile
                times[name] += time.perf_counter() - t0
        values = {"loss_deer": losses["deer"][-1], "loss_bptt": losses["bptt"][-1]}
        check_finite(i, values, writer)
        writer.write(i, **values)
        if i % log_every == 0:
            progress.update(i + 1, f"loss {values['loss_deer']:.4g}")
    deer_l, bptt_l = np.array(losses["deer"]), np.array(losses["bptt"])
    rel = float(np.max(np.abs(deer_l - bptt_l) / bptt_l))
    fig, ax = plots.new_figure()
    ax.semilogy(deer_l, label=f"DEER ({candidate.mode}) + implicit grad")
    ax.semilogy(bptt_l, "--", label="lax.scan + BPTT")
    ax.set(xlabel="step", ylabel="MSE", title=f"GRU n={candidate.hidden}, T={config.data.length}")
    ax.legend()
    plot = plots.save_figure(fig, workdir, "deer_train_loss.png")
    steps_timed = max(steps - 1, 1)
    claims = [
        report.at_most(
            "loss curves DEER vs BPTT (max relative difference; same model, same data)",
            rel,
            config.tolerance.loss_rel,
            source=PAPER,
        ),
        report.holds(
            "loss falls",
            bool(deer_l[-1] < deer_l[0]),
            source="the task",
            expected="last < first",
            measured=f"{deer_l[0]:.4g} -> {deer_l[-1]:.4g}",
            sanity=True,
        ),
        report.reported(
            "training speed-up, BPTT step time / DEER step time",
            float(times["bptt"] / max(times["deer"], 1e-9)),
            source=f"{PAPER} abstract",
            expected="> 10x on GPU",
            why="reported (CPU run)" if jax.default_backend() == "cpu" else "reported",
        ),
    ]
    table = report.markdown_table(
        ["step", "DEER loss", "BPTT loss"],
        [[i, float(deer_l[i]), float(bptt_l[i])] for i in range(0, steps, log_every)],
    )
    return dict(
        summary=(
            f"GRU (hidden {candidate.hidden}) on the running-mean task, T={config.data.length}, "
            f"batch {config.data.batch}, {steps} Adam steps, float32, "
            f"backend {jax.default_backend()}, batch split over {mesh.size} data-parallel"
            " device(s)."
        ),
        figures=dict(
            final_loss_deer=float(deer_l[-1]),
            final_loss_bptt=float(bptt_l[-1]),
            max_rel_loss_diff=rel,
            step_s_deer=times["deer"] / steps_timed,
            step_s_bptt=times["bptt"] / steps_timed,
        ),
        claims=claims,
        tables={"Loss curves (every log_every steps)": table},
        plots=[plot],
        notes=[
            "On CPU the sequential scan is faster per step than DEER (see BENCHMARKS.md);"
            " speed-ups need a GPU. The step times here are CPU wall times."
        ],
    )
