"""Multitask sparse parity: subtasks emerge in frequency order; L(N), L(S) exponents vs theory.

Trains one-hidden-layer ReLU MLPs for all widths and seeds at once
(:mod:`jaxlab.quanta.parity_sweep`: seeds vmapped and split over the ``data`` mesh axis, widths
packed per group) on the multitask sparse-parity task of Michaud et al. (2023,
arXiv:2303.13506), evaluates per-subtask test losses, and fits power laws to the final loss
against parameters and to the widest model's loss against steps. The finite number of subtasks
K bends L(N): :func:`jaxlab.quanta.parity_sweep.finite_k_alpha` turns the measured
learned-subtask counts into the slope the quanta model predicts (Su, kexue.fm/archives/9607).
"""

import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.stats
from matplotlib.ticker import MaxNLocator, NullFormatter

from jaxlab import config_args, plots, report, sharding
from jaxlab.metrics import MetricsWriter, Progress, check_finite
from jaxlab.quanta import data_scaling, parity_mlp, parity_sweep
from jaxlab.quanta import sparse_parity as sp

SOURCE = "Michaud et al. 2023, arXiv:2303.13506"
# Fitted exponents read off the paper's appendix figure, keyed by gamma = alpha_code - 1.
PAPER_ALPHA_N = {0.1: 0.229, 0.2: 0.283, 0.3: 0.339, 0.4: 0.378, 0.5: 0.454, 0.6: 0.503}
PAPER_ALPHA_S = {0.1: 0.228, 0.2: 0.267, 0.3: 0.307, 0.4: 0.346, 0.5: 0.376, 0.6: 0.422}


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    workdir = pathlib.Path(workdir)
    task = config_args.to_dataclass(sp.TaskConfig, config.task)
    train = config_args.to_dataclass(parity_mlp.TrainConfig, config.train)
    sw = config_args.to_dataclass(parity_sweep.WidthSweep, config.sweep)
    gamma, tol, fit = task.alpha_code - 1.0, config.tolerance, config.fit
    mesh = sharding.data_mesh(config.num_devices or None)
    writer, progress = MetricsWriter(workdir), Progress("sparse_parity", sw.num_steps)

    def log(step, row):
        check_finite(step, row, writer)
        writer.write(step, **row)
        progress.update(step)

    groups = parity_sweep.make_groups(sw, task, train, mesh, key=jax.random.key(config.seed))
    steps, widths, m = parity_sweep.train_all(sw, groups, log)
    loss_SW, task_loss_SWT = m["loss"].mean(1), m["task_loss"].mean(1)  # seed means, bits
    params_W = np.array([parity_mlp.param_count(int(w), task.n_tasks, task.n) for w in widths])
    np.savez(workdir / "curves.npz", steps=steps, widths=widths, params=params_W, loss=m["loss"],
             task_loss=m["task_loss"], task_accuracy=m["task_accuracy"])  # fmt: skip

    # Emergence of the widest model: order (Spearman of the seed mean) and abruptness (decades
    # of steps per drop, per seed and subtask: a seed mean would blur the jumps).
    thr = config.emergence_threshold
    emerge_T = np.asarray(
        sp.emergence_steps(jnp.asarray(task_loss_SWT[:, -1]), jnp.asarray(steps), thr)
    )
    emerged = np.isfinite(emerge_T)
    rank_T = np.arange(task.n_tasks)
    spearman = float("nan")
    if emerged.sum() >= 3:
        spearman = float(scipy.stats.spearmanr(rank_T[emerged], emerge_T[emerged]).statistic)
    drop_T = parity_sweep.transition_decades(m["task_loss"][:, :, -1], steps, *tol.transition_bits)
    drop = float(np.nanmedian(drop_T)) if np.isfinite(drop_T).any() else float("nan")
    span = float(np.log10(steps[-1] / steps[1]))
    width_rho = float(scipy.stats.spearmanr(widths, loss_SW[-1]).statistic)
    learned_W = (task_loss_SWT[-1] < thr).sum(-1)

    # Power-law fits: final loss vs parameters (past the plateau), widest loss vs steps.
    final = loss_SW[-1]
    ok = (final < fit.max_loss) & (final > fit.min_loss)
    n_window = (float(params_W[ok].min()), float(params_W[ok].max())) if ok.any() else (1.0, 0.0)
    s_window = (
        float(max(fit.steps_window[0], steps[1])),
        float(min(fit.steps_window[1], steps[-1])),
    )
    k_n, k_s = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1))
    fit_n = parity_sweep.fit_exponent(params_W, final, n_window, fit.num_bootstrap, key=k_n)
    fit_s = parity_sweep.fit_exponent(steps[1:], loss_SW[1:, -1], s_window, fit.num_bootstrap,
                                      key=k_s)  # fmt: skip
    alpha_k = parity_sweep.finite_k_alpha(params_W, learned_W, task.n_tasks, task.alpha_code,
                                          n_window)  # fmt: skip

    ds, fit_d = None, None
    if config.data_sweep.sizes:  # D-scaling: one wide model per training-set size, min test loss
        dsw = config_args.to_dataclass(data_scaling.DataSweep, config.data_sweep)
        ds = data_scaling.data_sweep(task, train, dsw, key=jax.random.fold_in(k_n, 7))
        fit_d = data_scaling.fit_alpha_d(ds, max_loss=fit.max_loss, min_loss=fit.min_loss,
                                         num_bootstrap=fit.num_bootstrap, key=k_s)  # fmt: skip
    plot_names = [
        _plot_emergence(workdir, steps, widths, task_loss_SWT),
        _plot_scaling(workdir, params_W, final, fit_n, n_window, steps, loss_SW, fit_s, s_window,
                      gamma),
    ]  # fmt: skip
    g = round(gamma, 3)
    paper_n, paper_s = PAPER_ALPHA_N.get(g), PAPER_ALPHA_S.get(g)
    fmt_fit = lambda f: f"{f['alpha']:.3f} [{f['lo']:.3f}, {f['hi']:.3f}] (R² {f['r2']:.3f})"
    num_emerged = int(emerged.sum())
    claims = [
        report.at_least(f"subtasks emerge in frequency order: Spearman(rank, emergence step) "
                        f"over the {num_emerged}/{task.n_tasks} emerged", spearman,
                        tol.spearman_min, source=SOURCE),
        report.at_most(f"subtask losses drop abruptly: median decades of steps (per seed) from "
                       f"{tol.transition_bits[0]} to {tol.transition_bits[1]} bit", drop,
                       tol.transition_decades_max, source=SOURCE),
        report.at_most("most frequent subtask is learned: final loss, widest model (bits)",
                       float(task_loss_SWT[-1, -1, 0]), tol.top_task_loss_max, source=SOURCE),
        report.at_most("mean test loss falls with width: Spearman(width, final loss)", width_rho,
                       tol.width_spearman_max, source=SOURCE),
        report.between(f"finite-K (K = {task.n_tasks}) prediction of α_N from the learned-subtask "
                       "counts, inside the measured α_N's 95% CI", alpha_k, fit_n["lo"],
                       fit_n["hi"], source=f"Su, kexue.fm/archives/9607; {SOURCE}"),
        report.reported("α_N (L ∝ N^-α_N)", fmt_fit(fit_n), source=f"{SOURCE}, appendix fit",
                        expected=f"paper fit {paper_n}, theory {gamma:.3f}",
                        why="the gap to theory is the result"),
        report.reported("α_S (L ∝ S^-α_S)", fmt_fit(fit_s), source=f"{SOURCE}, appendix fit",
                        expected=f"paper fit {paper_s}, theory {gamma / (1 + gamma):.3f}",
                        why="the gap to theory is the result"),
    ]  # fmt: skip
    if fit_d is not None:
        claims.append(data_scaling.alpha_d_claim(fit_d, dsw.width, gamma, source=SOURCE))
    rows = [
        ["α_N", f"{gamma:.3f}", paper_n, f"{alpha_k:.3f}", fmt_fit(fit_n),
         f"N in [{n_window[0]:.0f}, {n_window[1]:.0f}]", fit_n["points"]],
        ["α_S", f"{gamma / (1 + gamma):.3f}", paper_s, "–", fmt_fit(fit_s),
         f"S in [{s_window[0]:.0f}, {s_window[1]:.0f}], width {widths[-1]}", fit_s["points"]],
    ]  # fmt: skip
    width_rows = [[int(w), int(p), float(lw), float(b), int(n)] for w, p, lw, b, n in
                  zip(widths, params_W, final, loss_SW.min(0), learned_W, strict=True)]  # fmt: skip
    figures = dict(
        alpha_N=fit_n["alpha"], alpha_N_ci_low=fit_n["lo"], alpha_N_ci_high=fit_n["hi"],
        alpha_N_finite_k_prediction=alpha_k, alpha_S=fit_s["alpha"], alpha_S_ci_low=fit_s["lo"],
        alpha_S_ci_high=fit_s["hi"], emergence_spearman=spearman, num_emerged=num_emerged,
        median_transition_decades=drop, training_span_decades=span, width_loss_spearman=width_rho,
        top_task_loss=float(task_loss_SWT[-1, -1, 0]), final_loss_widest=float(final[-1]),
        final_loss_narrowest=float(final[0]),
    )  # fmt: skip
    if fit_d is not None:
        figures.update(alpha_D=fit_d["alpha"], alpha_D_lo=fit_d["lo"], alpha_D_hi=fit_d["hi"])
        rows.append(
            [
                "α_D",
                f"{gamma / (1 + gamma):.3f}",
                data_scaling.PAPER_ALPHA_D,
                "–",
                fmt_fit(fit_d),
                f"D in [{fit_d['window'][0]:.0f}, {fit_d['window'][1]:.0f}]",
                fit_d["points"],
            ]
        )
    notes = [
        "Finite K steepens L(N): the tail of a Zipf law normalised over K subtasks goes like "
        "n^-γ − K^-γ, so the slope exceeds γ as the learned count n nears K. The finite-K row "
        "feeds the measured learned-subtask counts (threshold "
        f"{thr} bit) into that tail and fits it over the same widths.",
        f"L(N) window: widths with final loss in ({fit.min_loss}, {fit.max_loss}) bits; CIs are "
        "bootstrap percentiles over the points in the window (the L(S) points come from one "
        "curve and are correlated, so that CI is optimistic).",
        "All widths of a seed train on the same batch stream; each seed has its own subsets, "
        "initialisation, data and test set. D-scaling (α_D, when run): one model per training-set "
        "size D, batches drawn with replacement from the first D samples of one stream; sizes "
        "whose minimum test loss comes in the last 20% of training are step-limited, not fitted.",
    ]  # fmt: skip
    if sw.num_seeds % mesh.size:
        notes.append(f"{sw.num_seeds} seed(s) on {mesh.size} devices: padded by repeating seeds "
                     "(dropped from the results).")  # fmt: skip
    return dict(
        summary=(
            f"{len(widths)} widths x {sw.num_seeds} seeds, {task.n_tasks} subtasks, n={task.n}, "
            f"k={task.k}, alpha_code={task.alpha_code}, batch {train.batch_size}, "
            f"{sw.num_steps} steps of AdamW (lr {train.lr}); seeds split over {mesh.size} "
            "device(s)."
        ),
        figures=figures,
        claims=claims,
        tables=_tables(rows, width_rows),
        plots=plot_names,
        notes=notes,
    )


def _tables(rows, width_rows) -> dict:
    exps = ["exponent", "theory", "paper fit", "finite-K prediction", "jaxlab fit [95% CI]",
            "window", "points"]  # fmt: skip
    widths = ["width", "params", "final test loss (bits)", "min over training", "subtasks learned"]
    return {
        "Fitted exponents": report.markdown_table(exps, rows),
        "Test loss by width (seed mean)": report.markdown_table(widths, width_rows),
    }


def _plot_emergence(workdir, steps, widths, task_loss_SWT):
    fig, axes = plots.new_figure(3, 1, size=(5.0, 3.8))
    axes = axes.ravel()
    num_tasks = task_loss_SWT.shape[-1]
    colors = plots.plt.cm.viridis(np.linspace(0, 1, num_tasks))
    for t in range(num_tasks)[::-1]:  # step 0 left out of the log axis
        axes[0].plot(steps[1:], task_loss_SWT[1:, -1, t], color=colors[t], lw=0.8)
    axes[0].set(xscale="log", xlabel="step", ylabel="subtask test loss (bits)",
                title=f"width {widths[-1]}: subtasks (dark = frequent)")  # fmt: skip
    heat = dict(aspect="auto", origin="upper", vmin=0, vmax=1.1, cmap="magma")
    rank = "subtask (frequency rank)"
    im = axes[1].imshow(task_loss_SWT[:, -1, :].T, extent=(0, len(steps), num_tasks - 0.5, -0.5),
                        **heat)  # fmt: skip
    ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).astype(int)
    axes[1].set_xticks(ticks + 0.5, [str(steps[i]) for i in ticks])
    axes[1].set(
        xlabel="evaluation step", ylabel=rank, title=f"width {widths[-1]}: loss per subtask"
    )
    fig.colorbar(im, ax=axes[1], label="bits")
    im = axes[2].imshow(task_loss_SWT[-1].T, **heat,
                        extent=(-0.5, len(widths) - 0.5, num_tasks - 0.5, -0.5))  # fmt: skip
    axes[2].set_xticks(range(len(widths)), [str(w) for w in widths], rotation=90)
    axes[2].set(xlabel="width", ylabel=rank, title=f"step {steps[-1]}")
    fig.colorbar(im, ax=axes[2], label="bits")
    for ax in axes[1:]:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return plots.save_figure(fig, workdir, "emergence.png")


def _plot_scaling(workdir, params_W, loss_W, fit_n, n_window, steps, loss_SW, fit_s, s_window,
                  gamma):  # fmt: skip
    fig, axes = plots.new_figure(2, 1)
    axes = axes.ravel()
    for w in range(loss_SW.shape[1] - 1):  # the narrower widths' L(S), for context
        axes[1].plot(steps[1:], loss_SW[1:, w], color="0.8", lw=0.7)
    for ax, x, y, fit, window, theory, name in (
        (axes[0], params_W, loss_W, fit_n, n_window, gamma, "parameters N"),
        (axes[1], steps[1:], loss_SW[1:, -1], fit_s, s_window, gamma / (1 + gamma), "step S"),
    ):
        ax.plot(x, y, "o-", ms=3, color="C0", label="measured (seed mean)")
        ax.axvspan(*window, color="C0", alpha=0.08, label="fit window")
        inside = (x >= window[0]) & (x <= window[1])
        if np.isfinite(fit["alpha"]) and inside.any():
            xs, a = x[inside], fit["alpha"]
            label = f"fit: {a:.3f} [{fit['lo']:.3f}, {fit['hi']:.3f}]"
            ax.plot(xs, fit["prefactor"] * xs**-a, "--", color="C1", label=label)
            mid = np.exp(np.mean(np.log(xs)))
            y_mid = fit["prefactor"] * mid**-a
            ax.plot(xs, y_mid * (xs / mid) ** -theory, ":", color="C3",
                    label=f"theory slope {theory:.3f}")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel=name, ylabel="mean test loss (bits)")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.legend(fontsize=7)
    return plots.save_figure(fig, workdir, "scaling.png")
