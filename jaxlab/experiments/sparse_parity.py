"""Multitask sparse parity: subtasks emerge in frequency order; L(N), L(S) exponents vs theory.

Trains one-hidden-layer ReLU MLPs for all widths and seeds at once (seeds vmapped; the widths of
a group stored padded to the group's widest and trained packed, see
``jaxlab.quanta.sparse_parity.train_widths``; groups advance in lockstep) on the multitask
sparse-parity task of Michaud et al. (2023), evaluates per-subtask test losses, and fits power
laws (``jaxlab.quanta.fit_power_law``) to the final loss against parameters and to the widest
model's loss against steps.

Data parallel (STYLE 2.8): the vmapped seed axis is split over the ``data`` axis of
``sharding.data_mesh(config.num_devices or None)`` at the jit boundaries (setup, training chunk,
evaluation); each device trains and evaluates its own seeds, nothing is communicated. A seed
count that does not divide the device count is padded explicitly by repeating the first seeds'
keys, and the padding is dropped from every result. A seed's numbers depend on the mesh only
through float rounding (a device's share of the vmapped seeds compiles to other kernels), which
training amplifies: quick config on 4 vs 1 CPU devices, test losses equal to 1e-7 at step 0,
3e-3 bit apart after 3 000 steps. The batch axis within a model is not sharded: with fewer
seeds than devices (the full config has one) the extra devices only repeat seeds.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.stats
from matplotlib.ticker import MaxNLocator, NullFormatter

from jaxlab import plots, quanta, report, sharding
from jaxlab.metrics import MetricsWriter, Progress, check_finite
from jaxlab.quanta import parity_mlp
from jaxlab.quanta import sparse_parity as sp

SOURCE = "Michaud et al. 2023, arXiv:2303.13506"
# Fitted exponents read off the paper's appendix figure (spec), keyed by gamma = alpha_code - 1.
PAPER_ALPHA_N = {0.1: 0.229, 0.2: 0.283, 0.3: 0.339, 0.4: 0.378, 0.5: 0.454, 0.6: 0.503}
PAPER_ALPHA_S = {0.1: 0.228, 0.2: 0.267, 0.3: 0.307, 0.4: 0.346, 0.5: 0.376, 0.6: 0.422}


def eval_steps(num_steps: int, log_every: int, eval_every: int, num_log: int) -> list[int]:
    """Chunk ends at which the test sets are evaluated: every ``eval_every``, plus log-spaced."""
    ends = set(range(eval_every, num_steps + 1, eval_every)) | {num_steps}
    if num_log:
        ends |= {int(s) for s in np.geomspace(log_every, num_steps, num_log)}
    return sorted({max(log_every, (s // log_every) * log_every) for s in ends})


class WidthGroup:
    """Jitted setup / chunk / eval for the widths of one group, all seeds vmapped.

    ``seed_keys`` (leading axis: seeds, a multiple of the ``data`` size of ``mesh``) and every
    per-seed array derived from them (states, subtasks, test sets, data keys, metrics) are
    sharded over ``data`` on their leading axis.
    """

    def __init__(
        self, cfg, task: sp.TaskConfig, train: parity_mlp.TrainConfig, widths, seed_keys, mesh
    ):
        self.widths = tuple(widths)
        widths_W = jnp.asarray(widths, jnp.int32)
        max_width = max(widths)
        logits = sp.task_logits(task.n_tasks, task.alpha_code)

        def evaluate(params_W, test):  # widths one after another: bounds eval memory
            return jax.lax.map(
                lambda pw: parity_mlp.evaluate(pw[0], pw[1], test), (params_W, widths_W)
            )

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
                subtasks, task, cfg.test_points, cfg.test_points_per_task, key=k_test
            )
            dataset = None
            if train.data_size > 0:
                dataset = sp.sample_batch(subtasks, logits, train.data_size, task.n, key=k_set)
            return states, subtasks, test, dataset, k_data, evaluate(states.params, test)

        chunk = functools.partial(
            parity_mlp.train_widths,
            widths=self.widths,
            num_steps=cfg.log_every,
            task=task,
            config=train,
        )

        def run_chunk(states, subtasks, dataset, key, start):
            return chunk(states, subtasks, logits, start, dataset=dataset, key=key)

        seeds = sharding.batch_sharding(mesh)  # leading (seed) axis over data
        self.chunk = jax.jit(
            jax.vmap(run_chunk, in_axes=(0, 0, 0, 0, None)),
            in_shardings=(seeds, seeds, seeds, seeds, sharding.replicated(mesh)),
            out_shardings=seeds,
            donate_argnums=0,
        )
        self.eval = jax.jit(jax.vmap(evaluate), in_shardings=seeds, out_shardings=seeds)
        setup = jax.jit(jax.vmap(setup), in_shardings=seeds, out_shardings=seeds)
        out = setup(sharding.shard_population(seed_keys, mesh, what="number of seeds (padded)"))
        self.states, self.subtasks, self.test, self.dataset, self.key, self.m0 = out

    def step(self, start: int) -> jax.Array:
        """Runs one chunk from ``start``; returns the last step's train loss (seeds, W), nats."""
        self.states, loss = self.chunk(self.states, self.subtasks, self.dataset, self.key, start)
        return loss[:, -1]

    def evaluate(self) -> dict:
        return self.eval(self.states.params, self.test)


def _group_widths(widths, size):
    widths = sorted(widths)
    size = size or len(widths)
    return [widths[i : i + size] for i in range(0, len(widths), size)]


def _fit(x, y, window, num_bootstrap, key):
    f = quanta.fit_power_law(
        np.asarray(x, np.float32),
        np.asarray(y, np.float32),
        window=window,
        num_bootstrap=num_bootstrap,
        key=key,
    )
    # Reported as positive exponents alpha in L ~ x^-alpha; the CI flips accordingly.
    return dict(
        alpha=-float(f.exponent),
        lo=-float(f.ci_high),
        hi=-float(f.ci_low),
        r2=float(f.r_squared),
        points=int(f.num_points),
        prefactor=float(f.prefactor),
    )


def make_groups(config, task, train, mesh: jax.sharding.Mesh) -> list[WidthGroup]:
    """Sets up every width group with ``config.num_seeds`` seeds split over ``mesh``.

    The seeds are padded to a multiple of the mesh's ``data`` size by
    ``sharding.pad_population`` (seeds repeated); :func:`train_all` drops the padding.
    """
    seed_keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
    seed_keys, _ = sharding.pad_population(seed_keys, mesh, what="number of seeds")
    return [
        WidthGroup(config, task, train, ws, seed_keys, mesh)
        for ws in _group_widths(config.widths, config.width_group_size)
    ]


def train_all(config, groups: list[WidthGroup], workdir):
    """Trains every width group in lockstep; returns steps, widths, and stacked test metrics.

    Every returned array has ``config.num_seeds`` seeds (the seed padding is dropped).
    """
    num_seeds = config.num_seeds
    widths = [w for g in groups for w in g.widths]

    def cat(ms):  # widths of all groups side by side, real seeds only
        return {
            k: np.concatenate([np.asarray(m[k])[:num_seeds] for m in ms], axis=1) for k in ms[0]
        }

    writer = MetricsWriter(workdir)
    progress = Progress("sparse_parity", config.num_steps)
    evals = set(
        eval_steps(config.num_steps, config.log_every, config.eval_every, config.num_log_evals)
    )
    m0 = cat([jax.device_get(g.m0) for g in groups])
    steps, metrics = [0], [m0]
    writer.write(0, widths=widths, test_loss_bits=m0["loss"].mean(0))
    for start in range(0, config.num_steps, config.log_every):
        losses = [g.step(start) for g in groups]  # dispatch every group before reading any
        end = start + config.log_every
        loss_seeds_W = np.concatenate([np.asarray(x)[:num_seeds] for x in losses], 1)
        row = dict(train_loss_bits=loss_seeds_W.mean(0) / sp.LN2)
        if end in evals:
            m = cat([jax.device_get(g.evaluate()) for g in groups])
            steps.append(end)
            metrics.append(m)
            row.update(test_loss_bits=m["loss"].mean(0), accuracy=m["accuracy"].mean(0))
        check_finite(end, row, writer)
        writer.write(end, **row)
        progress.update(end)
    stacked = {k: np.stack([m[k] for m in metrics]) for k in metrics[0]}  # (S, seeds, W, ...)
    return np.array(steps), np.array(widths), stacked


def _plot_emergence(workdir, steps, widths, task_loss_SWT):
    fig, axes = plots.new_figure(3, 1, size=(5.0, 3.8))
    axes = axes.ravel()
    num_tasks = task_loss_SWT.shape[-1]
    colors = plots.plt.cm.viridis(np.linspace(0, 1, num_tasks))
    ax = axes[0]
    for t in range(num_tasks)[::-1]:  # step 0 left out of the log axis
        ax.plot(steps[1:], task_loss_SWT[1:, -1, t], color=colors[t], lw=0.8)
    ax.set(
        xscale="log",
        xlabel="step",
        ylabel="subtask test loss (bits)",
        title=f"width {widths[-1]}: subtasks (dark = frequent)",
    )
    ax = axes[1]
    im = ax.imshow(
        task_loss_SWT[:, -1, :].T,
        aspect="auto",
        origin="upper",
        vmin=0,
        vmax=1.1,
        cmap="magma",
        extent=(0, len(steps), num_tasks - 0.5, -0.5),
    )
    ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).astype(int)
    ax.set_xticks(ticks + 0.5, [str(steps[i]) for i in ticks])
    ax.set(
        xlabel="evaluation step",
        ylabel="subtask (frequency rank)",
        title=f"width {widths[-1]}: loss per subtask",
    )
    fig.colorbar(im, ax=ax, label="bits")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax = axes[2]
    im = ax.imshow(
        task_loss_SWT[-1].T,
        aspect="auto",
        origin="upper",
        vmin=0,
        vmax=1.1,
        cmap="magma",
        extent=(-0.5, len(widths) - 0.5, num_tasks - 0.5, -0.5),
    )
    ax.set_xticks(range(len(widths)), [str(w) for w in widths], rotation=90)
    ax.set(xlabel="width", ylabel="subtask (frequency rank)", title=f"step {steps[-1]}")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(im, ax=ax, label="bits")
    return plots.save_figure(fig, workdir, "emergence.png")


def _plot_scaling(
    workdir, params_W, loss_W, fit_n, n_window, steps, loss_SW, fit_s, s_window, gamma
):
    fig, axes = plots.new_figure(2, 1)
    axes = axes.ravel()
    for ax, x, y, fit, window, theory, name in (
        (axes[0], params_W, loss_W, fit_n, n_window, gamma, "parameters N"),
        (axes[1], steps[1:], loss_SW[1:, -1], fit_s, s_window, gamma / (1 + gamma), "step S"),
    ):
        if name == "step S":
            for w in range(loss_SW.shape[1] - 1):
                ax.plot(steps[1:], loss_SW[1:, w], color="0.8", lw=0.7)
        ax.plot(x, y, "o-", ms=3, color="C0", label="measured (seed mean)")
        ax.axvspan(*window, color="C0", alpha=0.08, label="fit window")
        inside = (x >= window[0]) & (x <= window[1])
        if np.isfinite(fit["alpha"]) and inside.any():
            xs = x[inside]
            ax.plot(
                xs,
                fit["prefactor"] * xs ** -fit["alpha"],
                "--",
                color="C1",
                label=f"fit: {fit['alpha']:.3f} [{fit['lo']:.3f}, {fit['hi']:.3f}]",
            )
            mid = np.exp(np.mean(np.log(xs)))
            y_mid = fit["prefactor"] * mid ** -fit["alpha"]
            ax.plot(
                xs,
                y_mid * (xs / mid) ** -theory,
                ":",
                color="C3",
                label=f"theory slope {theory:.3f}",
            )
        ax.set(xscale="log", yscale="log", xlabel=name, ylabel="mean test loss (bits)")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.legend(fontsize=7)
    return plots.save_figure(fig, workdir, "scaling.png")


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    workdir = pathlib.Path(workdir)
    task = sp.TaskConfig(**config.task)
    train = parity_mlp.TrainConfig(**config.train)
    gamma = task.alpha_code - 1.0
    mesh = sharding.data_mesh(config.num_devices or None)
    steps, widths, m = train_all(config, make_groups(config, task, train, mesh), workdir)
    loss_SW = m["loss"].mean(1)  # (steps, widths), seed mean, bits
    task_loss_SWT = m["task_loss"].mean(1)
    params_W = np.array([parity_mlp.param_count(int(w), task.n_tasks, task.n) for w in widths])
    np.savez(
        workdir / "curves.npz",
        steps=steps,
        widths=widths,
        params=params_W,
        loss=m["loss"],
        task_loss=m["task_loss"],
        task_accuracy=m["task_accuracy"],
    )

    # Emergence order of the widest model.
    emerge_T = np.asarray(
        sp.emergence_steps(
            jnp.asarray(task_loss_SWT[:, -1]), jnp.asarray(steps), config.emergence_threshold
        )
    )
    emerged = np.isfinite(emerge_T)
    rank_T = np.arange(task.n_tasks)
    if emerged.sum() >= 3:
        spearman = float(scipy.stats.spearmanr(rank_T[emerged], emerge_T[emerged]).statistic)
    else:
        spearman = float("nan")
    top_loss = float(task_loss_SWT[-1, -1, 0])
    width_rho = float(scipy.stats.spearmanr(widths, loss_SW[-1]).statistic)
    learned_W = (task_loss_SWT[-1] < config.emergence_threshold).sum(-1)

    # Power-law fits: final loss vs parameters (past the plateau), widest loss vs steps.
    final = loss_SW[-1]
    ok = (final < config.fit.max_loss) & (final > config.fit.min_loss)
    n_window = (float(params_W[ok].min()), float(params_W[ok].max())) if ok.any() else (1.0, 0.0)
    lo, hi = config.fit.steps_window
    s_window = (float(max(lo, steps[1])), float(min(hi, steps[-1])))  # what the data cover
    k_n, k_s = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1))
    fit_n = _fit(params_W, final, n_window, config.fit.num_bootstrap, k_n)
    fit_s = _fit(steps[1:], loss_SW[1:, -1], s_window, config.fit.num_bootstrap, k_s)

    plot_names = [
        _plot_emergence(workdir, steps, widths, task_loss_SWT),
        _plot_scaling(
            workdir, params_W, final, fit_n, n_window, steps, loss_SW, fit_s, s_window, gamma
        ),
    ]
    g = round(gamma, 3)
    paper_n, paper_s = PAPER_ALPHA_N.get(g), PAPER_ALPHA_S.get(g)
    tol = config.tolerance
    fmt_fit = lambda f: f"{f['alpha']:.3f} [{f['lo']:.3f}, {f['hi']:.3f}] (R² {f['r2']:.3f})"
    claims = [
        report.claim(
            "subtasks emerge in frequency order",
            source=SOURCE,
            expected=f"Spearman(rank, emergence step) >= {tol.spearman_min}",
            measured=f"{spearman:.3f} over {int(emerged.sum())}/{task.n_tasks} emerged",
            tolerance=f">= {tol.spearman_min}",
            agree=bool(spearman >= tol.spearman_min),
        ),
        report.claim(
            "most frequent subtask is learned",
            source=SOURCE,
            expected=f"< {tol.top_task_loss_max} bit",
            measured=top_loss,
            tolerance=f"< {tol.top_task_loss_max} bit",
            agree=top_loss < tol.top_task_loss_max,
        ),
        report.claim(
            "mean test loss falls with width",
            source=SOURCE,
            expected="loss(widest) < loss(narrowest)",
            measured=f"{final[-1]:.3f} vs {final[0]:.3f} bits (Spearman {width_rho:.2f})",
            tolerance="strict",
            agree=bool(final[-1] < final[0]),
        ),
        report.claim(
            "alpha_N (L ∝ N^-alpha_N)",
            source=f"{SOURCE}, appendix fit; theory gamma",
            expected=f"paper fit {paper_n}, theory {gamma:.3f}",
            measured=fmt_fit(fit_n),
            tolerance="reported",
            agree=None,
        ),
        report.claim(
            "alpha_S (L ∝ S^-alpha_S)",
            source=f"{SOURCE}, appendix fit; theory gamma/(1+gamma)",
            expected=f"paper fit {paper_s}, theory {gamma / (1 + gamma):.3f}",
            measured=fmt_fit(fit_s),
            tolerance="reported",
            agree=None,
        ),
    ]
    rows = [
        [
            "alpha_N",
            f"{gamma:.3f}",
            paper_n,
            fmt_fit(fit_n),
            f"N in [{n_window[0]:.0f}, {n_window[1]:.0f}]",
            fit_n["points"],
        ],
        [
            "alpha_S",
            f"{gamma / (1 + gamma):.3f}",
            paper_s,
            fmt_fit(fit_s),
            f"S in [{s_window[0]:.0f}, {s_window[1]:.0f}], width {widths[-1]}",
            fit_s["points"],
        ],
    ]
    best_W = loss_SW.min(0)  # the paper's D-scaling uses this minimum (early stopping)
    width_rows = [
        [int(w), int(p), float(lw), float(b), int(n)]
        for w, p, lw, b, n in zip(widths, params_W, final, best_W, learned_W, strict=True)
    ]
    figures = dict(
        alpha_N=fit_n["alpha"],
        alpha_N_ci_low=fit_n["lo"],
        alpha_N_ci_high=fit_n["hi"],
        alpha_S=fit_s["alpha"],
        alpha_S_ci_low=fit_s["lo"],
        alpha_S_ci_high=fit_s["hi"],
        emergence_spearman=spearman,
        num_emerged=int(emerged.sum()),
        top_task_loss=top_loss,
        width_loss_spearman=width_rho,
        final_loss_widest=float(final[-1]),
        final_loss_narrowest=float(final[0]),
    )
    notes = [
        "Exponents are reported, not checked: the gap to theory (and to the paper's fit) is the "
        "result. The finite number of subtasks flattens L(N) once most are learned.",
        f"L(N) window: widths with final loss in ({config.fit.min_loss}, {config.fit.max_loss}) "
        "bits; CIs are bootstrap percentiles over the points in the window (the L(S) points "
        "come from one curve and are correlated, so that CI is optimistic).",
        "All widths of a seed train on the same batch stream; each seed has its own subsets, "
        "initialisation, data and test set.",
    ]
    if config.num_seeds % mesh.size:
        notes.append(
            f"{config.num_seeds} seed(s) on {mesh.size} devices: padded to "
            f"{sharding.pad_to_multiple(config.num_seeds, mesh)} by repeating seeds (dropped from "
            "the results); those devices repeat work. The batch axis is not sharded."
        )
    if len(config.widths) < 10 or task.n_tasks < 100:
        notes.append(
            "This is a reduced grid (few widths/subtasks): its exponents say little "
            "about the paper's; run the full config on a GPU for those."
        )
    return dict(
        summary=(
            f"{len(widths)} widths x {config.num_seeds} seeds, {task.n_tasks} subtasks, "
            f"n={task.n}, k={task.k}, alpha_code={task.alpha_code}, batch {train.batch_size}, "
            f"{config.num_steps} steps of AdamW (lr {train.lr}); seeds split over "
            f"{mesh.size} device(s)."
        ),
        figures=figures,
        claims=claims,
        tables={
            "Fitted exponents": report.markdown_table(
                ["exponent", "theory", "paper fit", "jaxlab fit [95% CI]", "window", "points"], rows
            ),
            "Test loss by width (seed mean)": report.markdown_table(
                [
                    "width",
                    "params",
                    "final test loss (bits)",
                    "min over training",
                    "subtasks learned",
                ],
                width_rows,
            ),
        },
        plots=plot_names,
        notes=notes,
    )
