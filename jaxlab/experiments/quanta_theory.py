"""Quanta-model theory: vmapped L(N), L(D), L(S) simulations; slopes vs −γ and −γ/(γ+1).

One jit-compiled :func:`jaxlab.quanta.simulate_grid` call covers γ × N × D × τ × seeds; log–log
least-squares slopes (bootstrap CIs for the Poisson variant) are compared with the theory
exponents α_N = γ and α_D = α_S = γ/(γ+1), and with the sparse-parity fits read off the paper.
Notation: γ (Su) = α (paper) = alpha_code − 1 (reference script).
"""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab import plots, quanta, report, sharding
from jaxlab.metrics import MetricsWriter, check_finite

SPEC = "spec/quanta.md (Su, kexue.fm/archives/9607; Michaud et al. 2023)"
# Paper appendix figure (sparse parity), read off to ±0.005: γ -> (α_N, α_S, α_D).
PAPER_FITS = {
    0.1: (0.229, 0.228, 0.275),
    0.2: (0.283, 0.267, 0.274),
    0.3: (0.339, 0.307, 0.297),
    0.4: (0.378, 0.346, 0.308),
    0.5: (0.454, 0.376, 0.335),
    0.6: (0.503, 0.422, 0.357),
    0.7: (0.571, 0.468, 0.373),
    0.8: (0.608, 0.482, 0.404),
}
ACCEPTANCE_GAMMAS = (0.083, 0.2, 0.4, 0.8)


@dataclasses.dataclass(frozen=True)
class Model:
    gammas: tuple[float, ...]
    loss_learned: float
    loss_unlearned: float
    params_per_quantum: float
    num_quanta_finite: float


@dataclasses.dataclass(frozen=True)
class ParamsGrid:
    n_min: float
    n_max: float
    num_points: int


@dataclasses.dataclass(frozen=True)
class DataGrid:
    tau_ref: float
    taus: tuple[float, ...]
    n_min: float
    n_max: float
    num_points: int
    fit_n_min: float
    fit_n_max: float
    num_seeds: int
    num_quanta_poisson: int
    num_joint_params: int


@dataclasses.dataclass(frozen=True)
class Tolerance:
    tail_slope_rel: float
    data_slope_rel: float
    poisson_slope_rel: float
    finite_k_expected: float
    finite_k_abs: float
    alpha_relation_rel: float
    half_shift_rel: float
    explicit_constant_rel: float


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    model = Model(**{**config.model.to_dict(), "gammas": tuple(config.model.gammas)})
    pgrid = ParamsGrid(**config.params.to_dict())
    dgrid = DataGrid(**{**config.data.to_dict(), "taus": tuple(config.data.taus)})
    tol = Tolerance(**config.tolerance.to_dict())
    mesh = sharding.data_mesh(config.num_devices or None)
    with jax.enable_x64(config.dtype == "float64"):
        sim = _simulate(model, pgrid, dgrid, config.steps.batch, config.seed, mesh)
        fits = _fit_all(sim, model, pgrid, dgrid, config.steps.batch, config.fit.num_bootstrap)
    writer = MetricsWriter(workdir)
    for i, g in enumerate(model.gammas):
        row = {
            k: v[i] for k, v in fits.items() if isinstance(v, list) and len(v) == len(model.gammas)
        }
        check_finite(i, row, writer)
        writer.write(i, gamma=g, **row)
    plot_names = _plots(sim, fits, model, dgrid, workdir)
    return _results(sim, fits, model, pgrid, dgrid, tol, config, plot_names)


def simulate_grid_sharded(
    mesh: jax.sharding.Mesh, gammas, num_params, data_GD, taus, a, b, *, key, **static
) -> quanta.QuantaGrid:
    """``jit(quanta.simulate_grid)`` with the γ axis split over the ``data`` mesh axis.

    Sharded axis: γ (axis 0 of ``gammas``, ``data_GD`` and every output). ``simulate_grid``
    draws all Poisson counts in one vmap over the flattened (γ, D, seed) grid, and only the
    leading axis of that reshape keeps its sharding: with D sharded instead, XLA replicated the
    sampler on every device (checked in the compiled HLO on 4 CPU devices), with γ sharded each
    device samples its own γ rows. γ is padded to a multiple of the device count by
    ``sharding.pad_population`` (rows repeated), and the padding is sliced off: the keys are
    split from one key over the (γ, D, seed) grid in row-major order (threefry
    partitionable), so the first G rows are bit-identical to an unpadded, unsharded run.
    Without padding the outputs are NamedShardings with γ over ``data``.
    """
    data_GD = jnp.broadcast_to(data_GD, (len(gammas), np.shape(data_GD)[-1]))
    (gammas, data_GD), unpad = sharding.pad_population((gammas, data_GD), mesh, what="number of γ")
    sim = jax.jit(
        quanta.simulate_grid,
        static_argnames=("num_seeds", "num_quanta_poisson", "dtype"),
        out_shardings=sharding.batch_sharding(mesh),  # every QuantaGrid field: γ over data
    )
    return unpad(sim(gammas, num_params, data_GD, taus, a, b, key=key, **static))


def _simulate(model, pgrid, dgrid, batch, seed, mesh):
    a, b = model.loss_learned, model.loss_unlearned
    gammas = jnp.asarray(model.gammas)
    num_params = (
        jnp.geomspace(pgrid.n_min, pgrid.n_max, pgrid.num_points) * model.params_per_quantum
    )
    n_targets = jnp.geomspace(dgrid.n_min, dgrid.n_max, dgrid.num_points)
    data_GD = jax.vmap(
        lambda g: jax.vmap(lambda n: quanta.data_for_quanta(n, g, dgrid.tau_ref))(n_targets)
    )(gammas)
    grid = simulate_grid_sharded(
        mesh,
        gammas,
        num_params,
        data_GD,
        jnp.asarray(dgrid.taus),
        a,
        b,
        num_seeds=dgrid.num_seeds,
        num_quanta_poisson=dgrid.num_quanta_poisson,
        num_quanta_finite=model.num_quanta_finite,
        params_per_quantum=model.params_per_quantum,
        key=jax.random.key(seed),
    )
    steps_GD = data_GD / batch
    tau = dgrid.tau_ref
    per_gd = lambda f, x: jax.jit(jnp.vectorize(f))(x, gammas[:, None])  # over (γ, D) pairs
    out = dict(
        num_params=num_params,
        data_GD=data_GD,
        steps_GD=steps_GD,
        loss_steps=per_gd(lambda s, g: quanta.loss_of_steps(s, batch, g, tau, a, b), steps_GD),
        loss_data_at_steps=per_gd(
            lambda d, g: quanta.loss_of_data(d, g, tau, a, b), steps_GD * batch
        ),
        loss_explicit=per_gd(lambda d, g: quanta.loss_of_data_asymptotic(d, g, tau, a, b), data_GD),
        n_ref=per_gd(lambda d, g: quanta.learned_from_data(d, g, tau), data_GD),
        half_shift_ratio=jax.vmap(
            lambda g: quanta.tail_mass_asymptotic(10.0, g) / quanta.tail_mass(10.0, g)
        )(gammas),
        **grid._asdict(),
    )
    out = {k: np.asarray(v) for k, v in out.items()}
    check_finite(0, {k: out[k] for k in ("loss_data_poisson", "loss_params", "loss_data")})
    return out


def _fit_all(sim, model, pgrid, dgrid, batch, num_bootstrap):
    a = model.loss_learned
    fit = jax.jit(quanta.fit_power_law)
    fit_ci = jax.jit(quanta.fit_power_law, static_argnames=("num_bootstrap",))
    keys = jax.random.split(jax.random.key(1), len(model.gammas) * len(dgrid.taus))
    n_window = (pgrid.n_min * model.params_per_quantum, pgrid.n_max * model.params_per_quantum)
    out = {k: [] for k in ("alpha_N", "alpha_N_finite", "alpha_D", "alpha_S", "alpha_D_poisson")}
    out.update(poisson_lo=[], poisson_hi=[], poisson_by_tau={}, windows={})
    x_N = jnp.asarray(sim["num_params"])
    for i, g in enumerate(model.gammas):
        out["alpha_N"].append(-float(fit(x_N, sim["loss_params"][i] - a, window=n_window).exponent))
        f = fit(x_N, sim["loss_params_finite"][i] - a, window=n_window)
        out["alpha_N_finite"].append(-float(f.exponent))
        for u, tau in enumerate(dgrid.taus):
            lo, hi = (
                float(quanta.data_for_quanta(n, g, tau)) for n in (dgrid.fit_n_min, dgrid.fit_n_max)
            )
            x_D = jnp.asarray(sim["data_GD"][i])
            det = fit(x_D, sim["loss_data"][i, :, u] - a, window=(lo, hi))
            mean = sim["loss_data_poisson"][i, :, u].mean(-1) - a
            poi = fit_ci(
                x_D,
                mean,
                window=(lo, hi),
                num_bootstrap=num_bootstrap,
                key=keys[i * len(dgrid.taus) + u],
            )
            out["poisson_by_tau"][(g, tau)] = (
                -float(det.exponent),
                -float(poi.exponent),
                -float(poi.ci_high),
                -float(poi.ci_low),
                int(poi.num_points),
            )
            out["windows"][(g, tau)] = (lo, hi)
            if tau == dgrid.tau_ref:
                out["alpha_D"].append(-float(det.exponent))
                out["alpha_D_poisson"].append(-float(poi.exponent))
                out["poisson_lo"].append(-float(poi.ci_high))
                out["poisson_hi"].append(-float(poi.ci_low))
                s_win = (lo / batch, hi / batch)
                f = fit(jnp.asarray(sim["steps_GD"][i]), sim["loss_steps"][i] - a, window=s_win)
                out["alpha_S"].append(-float(f.exponent))
    return out


def _plots(sim, fits, model, dgrid, workdir):
    names = []
    u_ref = dgrid.taus.index(dgrid.tau_ref)
    colors = [f"C{i}" for i in range(len(model.gammas))]
    bits = lambda x: np.asarray(quanta.to_bits(x))
    fig, axes = plots.new_figure(3)
    ax_n, ax_d, ax_s = axes[0]
    for i, g in enumerate(model.gammas):
        c = colors[i]
        ax_n.loglog(sim["num_params"], bits(sim["loss_params"][i]), c, label=f"γ={g}")
        ax_n.loglog(sim["num_params"], bits(sim["loss_params_finite"][i]), c, ls="--")
        x = sim["data_GD"][i]
        ax_d.loglog(x, bits(sim["loss_data"][i, :, u_ref]), c, label=f"γ={g}")
        ax_d.loglog(x, bits(sim["loss_data_poisson"][i, :, u_ref].mean(-1)), c, marker=".", ls="")
        ax_d.loglog(x, bits(sim["loss_explicit"][i]), c, ls=":")
        ax_s.loglog(sim["steps_GD"][i], bits(sim["loss_steps"][i]), c, label=f"γ={g}")
    ax_n.set(xlabel=f"parameters N (C = {model.params_per_quantum:g})", ylabel="loss (bits)")
    ax_n.set_title(f"L(N): exact (solid), K = {model.num_quanta_finite:.0e} (dashed)", fontsize=9)
    ax_d.set(xlabel="data D", ylabel="loss (bits)")
    ax_d.set_title(f"L(D), τ = {dgrid.tau_ref:g}: floor, Poisson (dots), explicit (:)", fontsize=9)
    ax_s.set(xlabel="steps S", ylabel="loss (bits)")
    ax_s.set_title("L(S) = L(D = S·B)", fontsize=9)
    ax_n.legend(fontsize=7)
    names.append(plots.save_figure(fig, workdir, "laws.png"))

    fig, ax = plots.new_figure(size=(6.0, 4.2))
    g = np.asarray(model.gammas)
    grid = np.linspace(0.05, 0.85, 50)
    ax.plot(grid, grid, "k-", lw=0.8, label="theory α_N = γ")
    ax.plot(grid, grid / (grid + 1), "k--", lw=0.8, label="theory α_D = α_S = γ/(γ+1)")
    ax.plot(g, fits["alpha_N"], "o", label="sim α_N (exact tail)")
    ax.plot(g, fits["alpha_N_finite"], "x", label="sim α_N (finite K)")
    ax.plot(g, fits["alpha_D"], "s", mfc="none", label="sim α_D (floor rule)")
    ax.errorbar(
        g,
        fits["alpha_D_poisson"],
        yerr=[
            np.subtract(fits["alpha_D_poisson"], fits["poisson_lo"]),
            np.subtract(fits["poisson_hi"], fits["alpha_D_poisson"]),
        ],
        fmt="d",
        ms=3,
        label="sim α_D (Poisson, 95% CI)",
    )
    pg = sorted(PAPER_FITS)
    for j, (name, m) in enumerate([("α_N", "^"), ("α_S", "v"), ("α_D", "<")]):
        ax.plot(pg, [PAPER_FITS[x][j] for x in pg], m, color="gray", label=f"paper fit {name}")
    ax.set(xlabel="γ", ylabel="exponent α", title="fitted exponents vs γ")
    ax.legend(fontsize=7)
    names.append(plots.save_figure(fig, workdir, "exponents_vs_gamma.png"))

    i = int(np.argmin(np.abs(g - 0.4)))
    fig, ax = plots.new_figure()
    num_n = len(sim["num_params"])
    for p in np.linspace(0, num_n - 1, dgrid.num_joint_params).round().astype(int):
        n = sim["num_params"][p]
        ax.loglog(sim["data_GD"][i], bits(sim["loss_joint"][i, p, :, u_ref]), label=f"N = {n:.0f}")
        ax.loglog(sim["data_GD"][i], bits(sim["loss_joint_poisson"][i, p, :, u_ref, 0]), "k.", ms=2)
    ax.set(xlabel="data D", ylabel="loss (bits)")
    ax.set_title(f"L(N, D) at γ = {g[i]:g}: n = min(N/C, n(D)); dots: Poisson", fontsize=9)
    ax.legend(fontsize=7)
    names.append(plots.save_figure(fig, workdir, "joint_law.png"))
    return names


def _results(sim, fits, model, pgrid, dgrid, tol, config, plot_names):
    claims, figures = [], {}
    gs = model.gammas
    for i, g in enumerate(gs):
        figures[f"alpha_N_g{g}"] = fits["alpha_N"][i]
        figures[f"alpha_N_finiteK_g{g}"] = fits["alpha_N_finite"][i]
        figures[f"alpha_D_g{g}"] = fits["alpha_D"][i]
        figures[f"alpha_D_poisson_g{g}"] = fits["alpha_D_poisson"][i]
        figures[f"alpha_S_g{g}"] = fits["alpha_S"][i]
    win = f"n in [{pgrid.n_min:g}, {pgrid.n_max:g}]"
    dwin = f"τ = {dgrid.tau_ref:g}, D with n(D) in [{dgrid.fit_n_min:g}, {dgrid.fit_n_max:g}]"

    def add(name, expected, measured, tolerance, agree, source=SPEC):
        kw = dict(expected=expected, measured=measured, tolerance=tolerance, agree=agree)
        claims.append(report.claim(name, source=source, **kw))

    rel = lambda x, t: abs(x / t - 1)
    for i, g in enumerate(gs):
        if g not in ACCEPTANCE_GAMMAS:
            continue
        th = g / (g + 1)
        a_n, a_d, a_s, a_p = (
            fits[k][i] for k in ("alpha_N", "alpha_D", "alpha_S", "alpha_D_poisson")
        )
        t_tail, t_data, t_poi = tol.tail_slope_rel, tol.data_slope_rel, tol.poisson_slope_rel
        add(f"L(N) exact-tail slope, γ = {g}, {win}", f"{-g:.4f}", -a_n, f"rel {t_tail}",
            rel(a_n, g) <= t_tail)  # fmt: skip
        add(f"L(D) floor-rule slope, γ = {g}, {dwin}", f"{-th:.4f}", -a_d, f"rel {t_data}",
            rel(a_d, th) <= t_data)  # fmt: skip
        add(f"L(S) slope (B = {config.steps.batch}), γ = {g}, same window as D/B", f"{-th:.4f}",
            -a_s, f"rel {t_data}", rel(a_s, th) <= t_data)  # fmt: skip
        add(f"L(D) Poisson-count slope (mean of {dgrid.num_seeds} seeds), γ = {g}, {dwin}",
            f"{-th:.4f}", -a_p, f"rel {t_poi}", rel(a_p, th) <= t_poi)  # fmt: skip
    if 0.2 in gs:
        slope = -fits["alpha_N_finite"][gs.index(0.2)]
        add(f"finite-K slope (K = {model.num_quanta_finite:.0e}), γ = 0.2, {win}",
            f"{tol.finite_k_expected} (vs −0.2 exact)", slope, f"abs {tol.finite_k_abs}",
            abs(slope - tol.finite_k_expected) <= tol.finite_k_abs)  # fmt: skip
    a_n, a_d = np.asarray(fits["alpha_N"]), np.asarray(fits["alpha_D"])
    worst = float(np.max(np.abs(a_d / (a_n / (a_n + 1)) - 1)))
    add("α_D = α_N / (α_N + 1) over the γ grid (max rel. deviation)", "0", worst,
        f"rel {tol.alpha_relation_rel}", worst <= tol.alpha_relation_rel,
        source="paper (α_D = α_N/(α_N+1)); spec acceptance 6")  # fmt: skip
    half = float(np.max(np.abs(sim["half_shift_ratio"] - 1)))
    add("half-shift asymptotic vs exact tail at n = 10 (max over γ)", "< 1e-3", half,
        f"rel {tol.half_shift_rel}", half <= tol.half_shift_rel)  # fmt: skip
    same = bool(np.array_equal(sim["loss_steps"], sim["loss_data_at_steps"]))
    add("loss_of_steps(S, B) == loss_of_data(S·B) on the whole grid", "bitwise equal",
        "equal" if same else "differs", "exact", same)  # fmt: skip
    mask = sim["n_ref"] >= 100
    u_ref = dgrid.taus.index(dgrid.tau_ref)
    expl = float(
        np.max(np.abs(sim["loss_explicit"][mask] / sim["loss_data"][..., u_ref][mask] - 1))
    )
    add("explicit L(D) = (b−a)/(γζ)·(τζ/D)^{γ/(γ+1)} vs simulation where n(D) ≥ 100",
        "within 1%", expl, f"rel {tol.explicit_constant_rel}",
        expl <= tol.explicit_constant_rel)  # fmt: skip
    if 0.4 in gs:
        i = gs.index(0.4)
        for name, sim_v, paper_v in [
            ("α_N", fits["alpha_N"][i], PAPER_FITS[0.4][0]),
            ("α_D", fits["alpha_D"][i], PAPER_FITS[0.4][2]),
        ]:
            add(f"paper's sparse-parity fit of {name} at γ = 0.4 vs theory simulation",
                f"{paper_v}", sim_v, "reported only (the toy task is not simulated here)", None,
                source="Michaud et al. 2023, appendix figure (read off)")  # fmt: skip
    rows = []
    for i, g in enumerate(gs):
        paper = PAPER_FITS.get(round(g, 3), (None, None, None))
        rows.append(
            [
                g,
                g,
                fits["alpha_N"][i],
                fits["alpha_N_finite"][i],
                paper[0] if paper[0] is not None else "–",
                g / (g + 1),
                fits["alpha_D"][i],
                f"{fits['alpha_D_poisson'][i]:.4f} [{fits['poisson_lo'][i]:.4f}, "
                f"{fits['poisson_hi'][i]:.4f}]",
                fits["alpha_S"][i],
                paper[1] if paper[1] is not None else "–",
                paper[2] if paper[2] is not None else "–",
            ]
        )
    header = [
        "γ",
        "theory α_N",
        "sim α_N",
        f"sim α_N (K={model.num_quanta_finite:.0e})",
        "paper α_N",
        "theory α_D=α_S",
        "sim α_D (floor)",
        "sim α_D (Poisson, 95% CI)",
        "sim α_S",
        "paper α_S",
        "paper α_D",
    ]
    tau_rows = []
    for (g, tau), (det, poi, lo, hi, npts) in fits["poisson_by_tau"].items():
        w = fits["windows"][(g, tau)]
        tau_rows.append(
            [
                g,
                tau,
                f"[{w[0]:.3g}, {w[1]:.3g}]",
                npts,
                -g / (g + 1),
                -det,
                -poi,
                f"[{-hi:.4f}, {-lo:.4f}]",
            ]
        )
    tau_header = ["γ", "τ", "D window", "points", "theory", "floor rule", "Poisson", "95% CI"]
    notes = [
        "Notation: γ (Su) = α (paper) = alpha_code − 1 (reference script); exponents α are "
        "reported positive (L ∝ x^-α), slopes negative.",
        f"Finite K biases slopes: normalising over K = {model.num_quanta_finite:.0e} quanta gives "
        f"α_N = {', '.join(f'{x:.4f}' for x in fits['alpha_N_finite'])} over {win}, against the "
        f"exact-tail {', '.join(f'{x:.4f}' for x in fits['alpha_N'])} "
        f"(γ = {', '.join(f'{x:g}' for x in gs)}). The bias is largest at small γ, where K^-γ is "
        "not small.",
        "The Poisson-count slope depends on τ, the D window and the seeds (table 'Poisson slope vs "
        "τ'); the spec quotes −0.2923 at γ = 0.4 for an unstated τ/window, while this run gets "
        f"{-fits['alpha_D_poisson'][gs.index(0.4)] if 0.4 in gs else float('nan'):.4f} at "
        f"τ = {dgrid.tau_ref:g}. Both are within the 3 % tolerance of −0.2857.",
        "The paper's sparse-parity fits (last columns) deviate from these theory exponents "
        "(compressed range, 5–20 % off at γ = 0.4); that comparison is for the trained networks "
        "(experiment sparse_parity), not for this simulation.",
        f"Poisson counts are sampled for the first K = {dgrid.num_quanta_poisson} quanta; the "
        "exact Hurwitz remainder covers k > K and a Chernoff bound guards the truncation.",
    ]
    summary = (
        f"Quanta model simulated in float64 for γ ∈ {{{', '.join(f'{g:g}' for g in gs)}}}: L(N) "
        f"on {pgrid.num_points} N in [{pgrid.n_min:g}, {pgrid.n_max:g}]·C, L(D) and L(S) on "
        f"{dgrid.num_points} D per γ at τ ∈ {{{', '.join(f'{t:g}' for t in dgrid.taus)}}} with "
        f"{dgrid.num_seeds} Poisson seeds, K = {dgrid.num_quanta_poisson} sampled quanta, and the "
        f"finite-K (K = {model.num_quanta_finite:.0e}) normalisation beside the exact tail; "
        "one jit-compiled simulate_grid call."
    )
    return {
        "summary": summary,
        "figures": figures,
        "claims": claims,
        "tables": {
            "Exponents vs γ (theory, simulation, paper's sparse-parity fits)": (
                report.markdown_table(header, rows)
            ),
            "Poisson slope vs τ": report.markdown_table(tau_header, tau_rows),
        },
        "plots": plot_names,
        "notes": notes,
    }
