"""Attention scale theory: gradient-max α*(n), entropy invariance, the exact objective simulated.

Reproduces the mean-field numbers of kexue.fm/archives/9812 (α* tables for normal and cosine
scores, Su's fits on n = 40k) and /8823 (entropy under each scale rule, the 0.24 constant of
/7695), checks the gradient identity ½‖∂p/∂s‖₁ = α(1 − Σp²) with ``jax.jacfwd``, and simulates
the exact objective, whose mean has no interior maximum (the mean field's α* is not what a
simulation of random scores optimises).
"""

import math
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab import attention_scale as ats
from jaxlab import metrics, plots, report
from jaxlab.attention_scale import survey

S9812, S8823 = "kexue.fm/archives/9812", "kexue.fm/archives/8823"
SU_NORMAL = (1.549, 1.711, 2.008, 2.147, 2.405, 2.678)  # mean-field α*, n = table_ns
SU_COSINE = {128: (18.25, 20.31, 24.21, 26.08, 29.70, 33.68)}
SU_COSINE_D = {64: (13.4, 18.2, 22.9), 256: (25.3, 33.2, 40.2)}  # n = 64, 512, 4096
SU_ENTROPY = {"standard": (3.67, 5.75, 7.83), "entropy-invariant": (3.94, 5.75, 7.46)}


def _alpha_tables(config, tol) -> tuple[list, dict, dict, dict]:
    s = survey.alpha_survey(config.table_ns, config.cosine_dims)
    normal, cosine, support, grid_normal = s["normal"], s["cosine"], s["support"], s["grid_normal"]
    grid_cos, c_normal, c_cos = s["grid_cos"], s["c_normal"], s["c_cos"]
    claims = [
        report.within(f"α* normal, n = {n}", a, ref, source=S9812, abs=tol.alpha_normal)
        for n, a, ref in zip(config.table_ns, normal, SU_NORMAL, strict=True)
    ]
    claims += [
        report.within(f"α*_cos d = 128, n = {n}", a, ref, source=S9812, abs=tol.alpha_cosine)
        for n, a, ref in zip(config.table_ns, cosine[128], SU_COSINE[128], strict=True)
    ]
    idx = [list(config.table_ns).index(n) for n in (64, 512, 4096)]
    for d, refs in SU_COSINE_D.items():
        dev = float(np.max(np.abs(cosine[d][idx] - np.asarray(refs))))
        claims.append(report.at_most(f"max |α*_cos − ref|, d = {d}, n = 64/512/4096", dev,
                                     tol.alpha_cosine_d, source=S9812))  # fmt: skip
    claims += [
        report.within("fit α* = c √ln n on n = 40k (normal)", c_normal, 0.84, source=S9812,
                      abs=tol.fit_normal),
        report.within("grid points (of 500) with α* in [2, 3] (normal)",
                      float(np.sum((grid_normal >= 2) & (grid_normal <= 3))), 488.0, abs=0.0,
                      source=S9812),
        report.within("fit α*_cos = c ln n on n = 40k (d = 128)", c_cos, 3.49, source=S9812,
                      abs=tol.fit_cosine),
        report.within("grid points (of 500) with α*_cos in [25, 35] (d = 128)",
                      float(np.sum((grid_cos >= 25) & (grid_cos <= 35))), 483.0, abs=0.0,
                      source=S9812),
    ]  # fmt: skip
    support = 1 + 2 * normal**2
    for n, ref in ((64, 5.8), (512, 9.1), (20000, 15.3)):
        i = list(config.table_ns).index(n)
        claims.append(report.within(f"effective support 1 + 2α*², n = {n}", support[i], ref,
                                    source=S9812, abs=tol.support))  # fmt: skip
    claims.append(report.at_most("n e^{−α*²} = 1 + 2α*² (max rel error)", s["identity"], 1e-9,
                                 source=S9812, sanity=True))  # fmt: skip
    header, rows = survey.alpha_table(config.table_ns, config.cosine_dims, s)
    figures = {"fit_c_normal": c_normal, "fit_c_cosine_d128": c_cos}
    curves = {"grid": s["grid"], "normal": grid_normal, "cosine": grid_cos}
    table = report.markdown_table(header, rows)
    return claims, {"α* and the scale rules (mean field)": table}, figures, curves


def _identity_and_entropy(config, tol, key) -> tuple[list, dict, dict]:
    rel, one_hot = survey.gradient_identity_errors(key)  # one_hot: abs error (see notes)
    mf = survey.meanfield_entropy_pair(config.entropy.d)
    with jax.enable_x64(True):
        consts = [float(ats.entropy_correction_per_dim(dd, dtype=jnp.float64)) for dd in (64, 128)]
        const = float(ats.laplace_entropy_constant(jnp.float64))
    claims = [report.at_most("½‖∂p/∂s‖₁ = α(1 − Σp²), jax.jacfwd, float64 (max rel error)", rel,
                             tol.identity, source=S9812)]  # fmt: skip
    claims.append(report.reported("same identity where softmax is near one-hot (abs error)",
                                  one_hot, source=S9812, expected="0",
                                  why="autodiff's 1 − p_top cancels (see notes)"))  # fmt: skip
    dev = max(abs(mf[n][j] - SU_ENTROPY[k][i]) for i, n in enumerate((64, 512, 4096))
              for j, k in enumerate(SU_ENTROPY))  # fmt: skip
    claims.append(report.at_most("mean-field entropy table, d = 64 (max abs deviation)", dev,
                                 tol.entropy, source=S8823))  # fmt: skip
    growth = (mf[4096][1] - mf[64][1]) / math.log(4096 / 64)
    claims.append(report.within("entropy-invariant scale keeps this share of the ln n growth",
                                growth, 3.52 / 4.16, source=S8823, abs=tol.entropy))  # fmt: skip
    claims += [
        report.within("entropy correction per dim at λ = 1, d = 64", consts[0], -0.2418,
                      source=S8823, abs=tol.constant),
        report.within("entropy correction per dim at λ = 1, d = 128", consts[1], -0.2412,
                      source=S8823, abs=tol.constant),
        report.within("Laplace constant −½ ln φ (the 0.24)", const, -0.2406,
                      source="kexue.fm/archives/7695", abs=1e-4),
    ]  # fmt: skip
    return claims, {"laplace_constant": const, "identity_max_rel_error": rel}, mf


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    workdir = pathlib.Path(workdir)
    tol, key = config.tolerance, jax.random.key(config.seed)
    writer = metrics.MetricsWriter(workdir)
    claims, tables, figures, grids = _alpha_tables(config, tol)
    more, fig2, mf_entropy = _identity_and_entropy(config, tol, jax.random.fold_in(key, 1))
    claims += more
    figures |= fig2

    mc = config.mc
    alphas = np.arange(mc.alpha_step, mc.alpha_max + 1e-9, mc.alpha_step)
    ns = sorted(set(mc.curve_ns) | set(mc.median_ns) | {128})
    objective = survey.normal_objective_survey(ns, alphas, mc.num_draws, key=key)
    # fmt: off
    for i, (n, r) in enumerate(objective.items()):
        writer.write(i, n=n, alpha_star=r["alpha_star"], mean_at_alpha_star=r["at_alpha_star"],
                     mean_at_4alpha_star=r["at_4alpha_star"], mean_at_30=r["at_30"],
                     median_argmax=r["median_argmax"])
        if n in mc.curve_ns:
            claims.append(report.holds(
                f"exact mean objective rises past α* (n = {n}): E at 4α* > E at α*",
                bool(r["at_4alpha_star"] > r["at_alpha_star"]),
                source=S9812 + " (simulation caveat)",
                expected="the mean keeps rising (no interior maximum)",
                measured=f"{r['at_alpha_star']:.3f} → {r['at_4alpha_star']:.3f}"))
        if n in mc.median_ns:
            claims.append(report.between(f"argmax of the median objective, n = {n}",
                                          r["median_argmax"], 4.0, 9.0,
                                          source=S9812 + " (simulation caveat)"))
        plateau = {512: 2.9, 4096: 3.8}.get(n)
        if plateau is not None:
            claims.append(report.within(f"mean objective at α = 30, n = {n} (plateau)",
                                        float(r["at_30"]), plateau, source=S9812 + " (simulation)",
                                        rel=tol.plateau))
        if n == 128:
            f_mf = float(ats.meanfield_objective_normal(2.5, 128.0))
            claims.append(report.within("exact mean objective at n = 128, α = 2.5",
                                        float(r["mean"][int(np.argmin(np.abs(alphas - 2.5)))]),
                                        2.0, source=S9812 + " (simulation)", abs=tol.mean_at_2p5))
            claims.append(report.holds("mean-field f at n = 128, α = 2.5 is negative", f_mf < 0,
                                       source=S9812, expected="< 0", measured=round(f_mf, 4)))
    # fmt: on
    cm = config.cosine_mc
    taus = np.arange(cm.alpha_step, cm.alpha_max + 1e-9, cm.alpha_step)
    cos_rows = survey.cosine_objective_rows(cm.ns, taus, cm.d, cm.num_draws, key=key)
    claims.append(report.reported(
        f"cosine scores d = {cm.d}: argmax of the median objective", str(
            {r[0]: r[2] for r in cos_rows}), source=S9812 + " (simulation caveat)",
        expected="≈ 60–78 (vs mean-field α*_cos 18–30)",
        why=f"{cm.num_draws} draws, grid step {cm.alpha_step}"))  # fmt: skip

    e, d = config.entropy, config.entropy.d
    entropy = survey.entropy_curves(d, e.ns, e.mc_ns, e.mc_draws, e.fixed_alpha,
                                    key=jax.random.fold_in(key, 2))  # fmt: skip
    tables["Exact objective vs mean field, normal scores (simulation)"] = report.markdown_table(
        *survey.objective_table(objective)
    )
    tables["Exact objective, cosine scores (simulation)"] = report.markdown_table(
        ["n", "mean-field α*_cos", "argmax of the median", "argmax of the mean (grid end?)"],
        cos_rows,
    )
    tables[f"Attention entropy (nats) vs n, d = {d}, 8823 model"] = report.markdown_table(
        *survey.entropy_table(entropy, e.ns, e.mc_ns)
    )
    figures |= {f"median_argmax/n={n}": r["median_argmax"] for n, r in objective.items()}
    figures |= {f"entropy_meanfield_d{d}/n={n}": v for n, v in mf_entropy.items()}
    curves = {n: (r["mean"], r["median"], r["alpha_star"]) for n, r in objective.items()}
    plot_names = [_plot_alpha(grids, workdir), _plot_objective(curves, alphas, workdir),
                  _plot_entropy(entropy, config.entropy, workdir)]  # fmt: skip
    return {
        "summary": (
            f"Mean-field α*(n) by Newton (normal) and bisection on f' (cosine, log-space "
            f"quadrature), Su's least-squares fits on n = 40k, k = 1..500, the exact objective "
            f"by Monte Carlo ({mc.num_draws} draws per n, α step {mc.alpha_step}; cosine "
            f"{cm.num_draws} draws), and attention entropy under six scale rules."
        ),
        "figures": figures,
        "claims": claims,
        "tables": tables,
        "plots": plot_names,
        "notes": [
            "The mean-field α* reproduces Su's numbers, but simulation of the exact objective "
            "disagrees with the mean-field optimum: the mean of α(1 − Σp²) has no interior "
            "maximum (it rises to a plateau set by the density of the top-two score gap), and the "
            "median peaks at α ≈ 5–8, 3–4× the mean-field α*. The conclusion that α = 1 is too "
            "small for gradient flow survives; the specific α* is a property of the approximation.",
            "Gradient identity: where the softmax is nearly one-hot (1 − max p < 1e-3), "
            "jax.jacfwd of softmax forms 1 − p_top by subtraction and loses relative precision "
            "(the closed form is evaluated as Σ p_i(1 − p_i) with the top complement summed, "
            "which keeps it); those cases are shown as an absolute error, the rest as relative.",
            "The mean-field entropy ln n + ln g(t) − t (ln g)'(t) breaks down for sharp attention "
            "(large t = λd, e.g. Chiang–Cholak's ln n/√d or fixed α = 2.5 at small n), where it "
            "even turns negative; the Monte Carlo columns are the entropy of actual softmax rows.",
            "Near the standard scale the entropy correction is quadratic in t = λd; the linear "
            "'0.24 λd' law of 8823 holds for t ~ d (much sharper attention).",
        ],
    }


def _plot_alpha(grids, workdir):
    fig, axes = plots.new_figure(ncols=2)
    g = grids["grid"]
    axes[0][0].plot(g, grids["normal"], label="α* (mean field)")
    axes[0][0].plot(g, 0.84 * np.sqrt(np.log(g)), "--", label="0.84 √ln n (Su)")
    axes[0][1].plot(g, grids["cosine"], label="α*_cos, d = 128")
    axes[0][1].plot(g, 3.5 * np.log(g), "--", label="3.5 ln n (Su)")
    for ax, title in zip(axes[0], ("normal scores", "cosine scores"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("n (keys)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return plots.save_figure(fig, workdir, "alpha_star.png")


def _plot_objective(curves, alphas, workdir):
    shown = [n for n in (64, 512, 4096) if n in curves]
    fig, axes = plots.new_figure(ncols=len(shown), size=(4.0, 3.4))
    for ax, n in zip(np.atleast_1d(axes).ravel(), shown, strict=True):
        mean, median, a_star = curves[n]
        f_mf = np.asarray(ats.meanfield_objective_normal(jnp.asarray(alphas), float(n)))
        ax.plot(alphas, mean, label="exact, mean")
        ax.plot(alphas, median, label="exact, median")
        ax.plot(alphas, f_mf, "--", label="mean field")
        ax.axvline(a_star, color="gray", lw=0.8)
        ax.set_ylim(-0.5, max(float(mean.max()), float(median.max())) * 1.1)
        ax.set_xlabel("α")
        ax.set_title(f"n = {n} (α* = {a_star:.2f})")
        ax.legend(fontsize=6)
    return plots.save_figure(fig, workdir, "objective_exact_vs_meanfield.png")


def _plot_entropy(entropy, cfg, workdir):
    fig, ax = plots.new_figure()
    for name, (mf, mc_) in entropy.items():
        (line,) = ax.plot(cfg.ns, mf, label=name)
        ax.plot(cfg.mc_ns, mc_, "o", color=line.get_color(), ms=3)
    ax.plot(cfg.ns, np.log(cfg.ns), "k:", label="ln n")
    ax.set_xscale("log")
    ax.set_xlabel("n (keys attended)")
    ax.set_ylabel("entropy (nats); dots: Monte Carlo")
    ax.legend(fontsize=6)
    return plots.save_figure(fig, workdir, "entropy_vs_n.png")
