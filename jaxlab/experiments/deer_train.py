"""DEER training: a GRU trained with DEER + implicit gradients matches lax.scan + BPTT (T >= 1000).

Two copies of the same ``ParallelRNN`` GRU (plus a linear readout) train side by side on the
running-mean task with identical initial weights and batches; one evaluates the recurrence with
DEER (Newton, implicit-differentiation gradients), the other with ``lax.scan`` and BPTT.

Data parallel (STYLE 2.8): the batch axis B of every training batch is split over the ``data``
mesh axis (``config.num_devices``), parameters and optimizer state are replicated; a batch that
does not divide over the devices fails at the start (no padding: it would change the loss).
"""

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jaxlab import plots, report, sharding
from jaxlab.deer.layer import ParallelRNN, ParallelRNNConfig
from jaxlab.metrics import MetricsWriter, Progress, check_finite

SPEC = "spec/deer.md"


@dataclasses.dataclass(frozen=True)
class Train:
    steps: int
    learning_rate: float
    log_every: int


class Regressor(nnx.Module):
    """ParallelRNN followed by a per-step linear readout to one output."""

    def __init__(self, config: ParallelRNNConfig, *, rngs: nnx.Rngs):
        self.rnn = ParallelRNN(config, rngs=rngs)
        self.readout = nnx.Linear(config.hidden, 1, rngs=rngs)

    def __call__(self, x_BTM):
        return self.readout(self.rnn(x_BTM))[..., 0]


def _batch(key, batch, length):
    x_BT = jax.random.normal(key, (batch, length), jnp.float32)
    counts = jnp.arange(1, length + 1, dtype=jnp.float32)
    return x_BT[..., None], jnp.cumsum(x_BT, axis=1) / counts[None]


def make_train_step(graphdef, mesh: jax.sharding.Mesh):
    """A jitted Adam step ``(state, x_BTM, y_BT) -> (state, loss)``, data parallel over ``mesh``.

    Shardings: ``x_BTM`` and ``y_BT`` have B split over ``data`` (also constrained inside);
    the state (parameters + optimizer) and the loss are replicated; ``state`` is donated. On
    more than one device the model runs per example on broadcast parameters (same loss, the
    gradient summed in another order; see ``loss_fn``); one device keeps the plain batched call.
    """
    rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)

    def train_step(state, x_BTM, y_BT):
        x_BTM, y_BT = (jax.lax.with_sharding_constraint(a, data) for a in (x_BTM, y_BT))
        model, optimizer = nnx.merge(graphdef, state)

        def loss_fn(m):
            if mesh.size == 1:
                return jnp.mean((m(x_BTM) - y_BT) ** 2)
            # Per-example parameters (a broadcast, B over data): their cotangents are summed by
            # the broadcast's transpose after the recurrence. With shared parameters XLA sums
            # them with a cross-device all-reduce inside every step of the BPTT backward scan.
            gd, st = nnx.split(m)
            st_B = jax.tree.map(lambda a: jnp.broadcast_to(a, (x_BTM.shape[0], *a.shape)), st)
            pred = jax.vmap(lambda s, x: nnx.merge(gd, s)(x[None])[0])(st_B, x_BTM)
            return jnp.mean((pred - y_BT) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int/float under "strict"
            optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    return jax.jit(
        train_step,
        in_shardings=(rep, data, data),
        out_shardings=(rep, rep),
        donate_argnames=("state",),
    )


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    train = Train(**config.train)
    m = config.model
    base = ParallelRNNConfig(cell=m.cell, in_features=1, hidden=m.hidden, scan_method=m.scan_method)
    key = jax.random.key(config.seed)
    mesh = sharding.data_mesh(config.num_devices or None)
    sharding.check_divisible(config.data.batch, mesh, "data.batch")  # fail loudly, no padding
    states, steps = {}, {}
    for name, mode in (("deer", m.mode), ("bptt", "sequential")):
        model = Regressor(dataclasses.replace(base, mode=mode), rngs=nnx.Rngs(config.seed))
        optimizer = nnx.Optimizer(model, optax.adam(train.learning_rate), wrt=nnx.Param)
        graphdef, state = nnx.split((model, optimizer))
        states[name] = sharding.replicate(state, mesh)
        steps[name] = make_train_step(graphdef, mesh)
    writer = MetricsWriter(workdir)
    progress = Progress("deer_train", train.steps)
    losses = {"deer": [], "bptt": []}
    times = {"deer": 0.0, "bptt": 0.0}
    for i in range(train.steps):
        x, y = _batch(jax.random.fold_in(key, i), config.data.batch, config.data.length)
        x, y = sharding.shard_batch((x, y), mesh)  # B over data
        for name in ("deer", "bptt"):
            t0 = time.perf_counter()
            states[name], loss = steps[name](states[name], x, y)
            losses[name].append(float(loss))
            if i > 0:  # exclude compile
                times[name] += time.perf_counter() - t0
        values = {"loss_deer": losses["deer"][-1], "loss_bptt": losses["bptt"][-1]}
        check_finite(i, values, writer)
        writer.write(i, **values)
        if i % train.log_every == 0:
            progress.update(i + 1, f"loss {values['loss_deer']:.4g}")
    deer_l, bptt_l = np.array(losses["deer"]), np.array(losses["bptt"])
    rel = float(np.max(np.abs(deer_l - bptt_l) / bptt_l))
    tol = config.tolerance.loss_rel
    fig, ax = plots.new_figure()
    ax.semilogy(deer_l, label=f"DEER ({m.mode}) + implicit grad")
    ax.semilogy(bptt_l, "--", label="lax.scan + BPTT")
    ax.set(xlabel="step", ylabel="MSE", title=f"GRU n={m.hidden}, T={config.data.length}")
    ax.legend()
    plot = plots.save_figure(fig, workdir, "deer_train_loss.png")
    fell = bool(deer_l[-1] < deer_l[0])
    steps_timed = max(train.steps - 1, 1)
    claims = [
        report.claim(
            "loss curves DEER vs BPTT (max relative difference)",
            source=SPEC,
            expected="equal (same model, same data)",
            measured=rel,
            tolerance=f"<= {tol}",
            agree=rel <= tol,
        ),
        report.claim(
            "loss falls",
            source="task",
            expected="last < first",
            measured=f"{deer_l[0]:.4g} -> {deer_l[-1]:.4g}",
            tolerance="strict",
            agree=fell,
        ),
        report.claim(
            "training speed-up (GPU claim > 10x)",
            source="arXiv:2309.12252 abstract",
            expected="> 10x on GPU",
            measured=times["bptt"] / max(times["deer"], 1e-9),
            tolerance="reported (CPU run)" if jax.default_backend() == "cpu" else "-",
            agree=None,
        ),
    ]
    return dict(
        summary=(
            f"GRU (hidden {m.hidden}) on the running-mean task, T={config.data.length}, "
            f"batch {config.data.batch}, {train.steps} Adam steps, float32, "
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
        tables={
            "Loss curves (every log_every steps)": report.markdown_table(
                ["step", "DEER loss", "BPTT loss"],
                [
                    [i, float(deer_l[i]), float(bptt_l[i])]
                    for i in range(0, train.steps, train.log_every)
                ],
            )
        },
        plots=[plot],
        notes=[
            "On CPU the sequential scan is faster per step than DEER (see BENCHMARKS.md);"
            " speed-ups need a GPU. The step times here are CPU wall times."
        ],
    )
