"""Quanta-model theory: vmapped L(N), L(D), L(S) simulations; slopes vs −γ and −γ/(γ+1).

One jit-compiled :func:`jaxlab.quanta.simulate_grid` call covers γ × N × D × τ × seeds;
:func:`jaxlab.quanta.sweep.fit_exponents` (vmapped over γ) fits the log–log slopes, with
bootstrap intervals for the Poisson variant; they are compared with the theory exponents
α_N = γ and α_D = α_S = γ/(γ+1) (Su, kexue.fm/archives/9607; Michaud et al. 2023,
arXiv:2303.13506), and the sweep table shows the paper's sparse-parity fits beside them.
Notation: γ (Su) = α (paper) = alpha_code − 1 (reference script).
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab import plots, quanta, report, sharding
from jaxlab.metrics import MetricsWriter, check_finite
from jaxlab.quanta import sweep

SU = "Su, kexue.fm/archives/9607"
PAPER = "Michaud et al. 2023, arXiv:2303.13506"
SOURCE = f"{SU}; {PAPER}"
PAPER_FITS = sweep.PAPER_FITS  # γ -> (α_N, α_S, α_D), the paper's sparse-parity fits
ACCEPTANCE_GAMMAS = (0.083, 0.2, 0.4, 0.8)


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    gammas = tuple(config.model.gammas)
    mesh = sharding.data_mesh(config.num_devices or None)
    with jax.enable_x64(config.dtype == "float64"):
        sim = _simulate(config, mesh)
        fits = _fit(config, sim)
    writer = MetricsWriter(workdir)
    for i, g in enumerate(gammas):
        row = {k: float(v[i]) for k, v in fits.items() if np.ndim(v) == 1}
        check_finite(i, row, writer)
        writer.write(i, gamma=g, **row)
    return _results(config, sim, fits, _plots(config, sim, fits, workdir))


def _simulate(config, mesh) -> dict:
    m, p, d = config.model, config.params, config.data
    a, b = m.loss_learned, m.loss_unlearned
    gammas = jnp.asarray(m.gammas)
    num_params = jnp.geomspace(p.n_min, p.n_max, p.num_points) * m.params_per_quantum
    n_targets = jnp.geomspace(d.n_min, d.n_max, d.num_points)
    data_GD = jax.vmap(
        lambda g: jax.vmap(lambda n: quanta.data_for_quanta(n, g, d.tau_ref))(n_targets)
    )(gammas)
    grid = quanta.simulate_grid_sharded(
        mesh, gammas, num_params, data_GD, jnp.asarray(d.taus), a, b,
        num_seeds=d.num_seeds, num_quanta_poisson=d.num_quanta_poisson,
        num_quanta_finite=m.num_quanta_finite, params_per_quantum=m.params_per_quantum,
        key=jax.random.key(config.seed),
    )  # fmt: skip
    laws = functools.partial(sweep.data_laws, batch=config.steps.batch, tau=d.tau_ref, a=a, b=b)
    half = lambda g: quanta.tail_mass_asymptotic(10.0, g) / quanta.tail_mass(10.0, g)
    out = dict(
        num_params=num_params,
        data_GD=data_GD,
        half_shift_ratio=jax.vmap(half)(gammas),
        **jax.jit(jax.vmap(laws))(gammas, data_GD)._asdict(),
        **grid._asdict(),
    )
    out = {k: np.asarray(v) for k, v in out.items()}
    check_finite(0, {k: out[k] for k in ("loss_data_poisson", "loss_params", "loss_data")})
    return out


def _fit(config, sim) -> dict:
    m, p, d = config.model, config.params, config.data
    u_ref = tuple(d.taus).index(d.tau_ref)
    fit = functools.partial(
        sweep.fit_exponents,
        taus=tuple(d.taus), tau_ref=u_ref, a=m.loss_learned, batch=config.steps.batch,
        params_window=(p.n_min * m.params_per_quantum, p.n_max * m.params_per_quantum),
        quanta_window=(d.fit_n_min, d.fit_n_max), num_bootstrap=config.fit.num_bootstrap,
    )  # fmt: skip
    keys = jax.random.split(jax.random.key(1), len(m.gammas))
    ex = jax.jit(jax.vmap(fit, in_axes=(0, None, 0, 0, 0, 0, 0, 0)))(
        jnp.asarray(m.gammas), sim["num_params"], sim["loss_params"], sim["loss_params_finite"],
        sim["data_GD"], sim["loss_data"], sim["loss_data_poisson"], sim["loss_steps"], key=keys,
    )  # fmt: skip
    out = {k: np.asarray(v) for k, v in ex._asdict().items()}
    for name in ("alpha_D", "alpha_D_poisson", "poisson_lo", "poisson_hi"):
        out[name] = out[name + "_U"][:, u_ref]
    return out


def _plots(config, sim, fits, workdir) -> list[str]:
    m, d = config.model, config.data
    gs, u_ref = np.asarray(m.gammas), tuple(d.taus).index(d.tau_ref)
    bits = lambda x: np.asarray(quanta.to_bits(x))
    fig, axes = plots.new_figure(3)
    ax_n, ax_d, ax_s = axes[0]
    for i, g in enumerate(gs):
        c, x = f"C{i}", sim["data_GD"][i]
        ax_n.loglog(sim["num_params"], bits(sim["loss_params"][i]), c, label=f"γ={g}")
        ax_n.loglog(sim["num_params"], bits(sim["loss_params_finite"][i]), c, ls="--")
        ax_d.loglog(x, bits(sim["loss_data"][i, :, u_ref]), c)
        ax_d.loglog(x, bits(sim["loss_data_poisson"][i, :, u_ref].mean(-1)), c, marker=".", ls="")
        ax_d.loglog(x, bits(sim["loss_explicit"][i]), c, ls=":")
        ax_s.loglog(sim["steps"][i], bits(sim["loss_steps"][i]), c)
    ax_n.set(xlabel=f"parameters N (C = {m.params_per_quantum:g})", ylabel="loss (bits)")
    ax_n.set_title(f"L(N): exact (solid), K = {m.num_quanta_finite:.0e} (dashed)", fontsize=9)
    ax_d.set(xlabel="data D", ylabel="loss (bits)")
    ax_d.set_title(f"L(D), τ = {d.tau_ref:g}: floor, Poisson (dots), explicit (:)", fontsize=9)
    ax_s.set(xlabel="steps S", ylabel="loss (bits)")
    ax_s.set_title("L(S) = L(D = S·B)", fontsize=9)
    ax_n.legend(fontsize=7)
    names = [plots.save_figure(fig, workdir, "laws.png")]

    fig, ax = plots.new_figure(size=(6.0, 4.2))
    grid = np.linspace(0.05, 0.85, 50)
    ax.plot(grid, grid, "k-", lw=0.8, label="theory α_N = γ")
    ax.plot(grid, grid / (grid + 1), "k--", lw=0.8, label="theory α_D = α_S = γ/(γ+1)")
    ax.plot(gs, fits["alpha_N"], "o", label="sim α_N (exact tail)")
    ax.plot(gs, fits["alpha_N_finite"], "x", label="sim α_N (finite K)")
    ax.plot(gs, fits["alpha_D"], "s", mfc="none", label="sim α_D (floor rule)")
    mid, lo, hi = fits["alpha_D_poisson"], fits["poisson_lo"], fits["poisson_hi"]
    err = [mid - lo, hi - mid]
    ax.errorbar(gs, mid, yerr=err, fmt="d", ms=3, label="sim α_D (Poisson, CI)")
    pg = sorted(PAPER_FITS)
    for j, (name, mk) in enumerate([("α_N", "^"), ("α_S", "v"), ("α_D", "<")]):
        ax.plot(pg, [PAPER_FITS[x][j] for x in pg], mk, color="gray", label=f"paper fit {name}")
    ax.set(xlabel="γ", ylabel="exponent α", title="fitted exponents vs γ")
    ax.legend(fontsize=7)
    names.append(plots.save_figure(fig, workdir, "exponents_vs_gamma.png"))

    i = int(np.argmin(np.abs(gs - 0.4)))
    fig, ax = plots.new_figure()
    for p in np.linspace(0, len(sim["num_params"]) - 1, d.num_joint_params).round().astype(int):
        x, n = sim["data_GD"][i], sim["num_params"][p]
        ax.loglog(x, bits(sim["loss_joint"][i, p, :, u_ref]), label=f"N = {n:.0f}")
        ax.loglog(x, bits(sim["loss_joint_poisson"][i, p, :, u_ref, 0]), "k.", ms=2)
    ax.set(xlabel="data D", ylabel="loss (bits)")
    ax.set_title(f"L(N, D) at γ = {gs[i]:g}: n = min(N/C, n(D)); dots: Poisson", fontsize=9)
    ax.legend(fontsize=7)
    names.append(plots.save_figure(fig, workdir, "joint_law.png"))
    return names


def _results(config, sim, fits, plot_names) -> dict:
    m, p, d, tol = config.model, config.params, config.data, config.tolerance
    gs, u_ref = tuple(m.gammas), tuple(d.taus).index(d.tau_ref)
    win = f"n in [{p.n_min:g}, {p.n_max:g}]"
    dwin = f"τ = {d.tau_ref:g}, D with n(D) in [{d.fit_n_min:g}, {d.fit_n_max:g}]"
    claims = []
    for i, g in enumerate(gs):
        if g in ACCEPTANCE_GAMMAS:
            th = g / (g + 1)
            claims += [
                report.within(f"L(N) exact-tail slope, γ = {g}, {win}", -fits["alpha_N"][i], -g,
                              rel=tol.tail_slope_rel, source=SOURCE),
                report.within(f"L(D) floor-rule slope, γ = {g}, {dwin}", -fits["alpha_D"][i],
                              -th, rel=tol.data_slope_rel, source=SOURCE),
                report.within(f"L(D) Poisson-count slope ({d.num_seeds} seeds), γ = {g}, {dwin}",
                              -fits["alpha_D_poisson"][i], -th, rel=tol.poisson_slope_rel,
                              source=SOURCE),
            ]  # fmt: skip
    same = bool(np.array_equal(sim["loss_steps"], sim["loss_data_at_steps"]))
    gap = float(np.max(np.abs(fits["alpha_S"] - fits["alpha_D"])))
    claims.append(report.holds(
        f"L(S) = L(D = S·B) with B = {config.steps.batch}, so α_S = α_D (holds by construction: "
        "loss_of_steps is loss_of_data at D = S·B)", same, source=SU,
        expected="holds by construction", measured=f"losses bitwise equal: {same}; "
        f"max |α_S − α_D| over γ = {gap:.1e}"))  # fmt: skip
    if 0.2 in gs:
        claims.append(report.within(
            f"finite-K slope (K = {m.num_quanta_finite:.0e}) of L(N), γ = 0.2, {win}",
            -fits["alpha_N_finite"][gs.index(0.2)], tol.finite_k_expected, abs=tol.finite_k_abs,
            source=f"{SU} (normalising over K quanta: tail ∝ n^-γ − K^-γ)"))  # fmt: skip
    a_n, a_d = fits["alpha_N"], fits["alpha_D"]
    worst = float(np.max(np.abs(a_d / (a_n / (a_n + 1)) - 1)))
    half = float(np.max(np.abs(sim["half_shift_ratio"] - 1)))
    mask = sim["learned"] >= 100
    expl = np.abs(sim["loss_explicit"][mask] / sim["loss_data"][..., u_ref][mask] - 1).max()
    sim_up = {k: sweep.increasing(fits[k]) for k in ("alpha_N", "alpha_D", "alpha_S")}
    pg = sorted(PAPER_FITS)
    paper_up = {n: sweep.increasing([PAPER_FITS[x][j] for x in pg])
                for j, n in enumerate(("α_N", "α_S", "α_D"))}  # fmt: skip
    claims += [
        report.at_most("α_D = α_N/(α_N + 1) over the γ grid: max rel. deviation", worst,
                       tol.alpha_relation_rel, source=PAPER),
        report.at_most("half-shift asymptotic vs exact tail at n = 10 (max rel. over γ)", half,
                       tol.half_shift_rel, source=SU, sanity=True),
        report.at_most("explicit L(D) = (b−a)/(γζ)·(τζ/D)^{γ/(γ+1)} vs simulation where "
                       "n(D) ≥ 100 (max rel.)", expl, tol.explicit_constant_rel, source=SOURCE),
        report.holds("simulated exponents increase with γ across the sweep", all(sim_up.values()),
                     source=PAPER, expected="α_N, α_D, α_S increasing",
                     measured=", ".join(f"{k}: {v}" for k, v in sim_up.items())),
        report.reported("paper's sparse-parity fits increase with γ (its sweep, read off)",
                        ", ".join(f"{k}: {v}" for k, v in paper_up.items()), source=PAPER,
                        expected="increasing", why="the paper's own table (networks not trained "
                        "here); α_D's 0.275 -> 0.274 dip is inside the ±0.005 read-off"),
    ]  # fmt: skip
    dash = lambda v: "–" if v is None else v
    rows = []
    for i, g in enumerate(gs):
        pf = PAPER_FITS.get(round(g, 3), (None,) * 3)
        rows.append([g, g, fits["alpha_N"][i], fits["alpha_N_finite"][i], dash(pf[0]), g / (g + 1),
                     fits["alpha_D"][i], f"{fits['alpha_D_poisson'][i]:.4f} "
                     f"[{fits['poisson_lo'][i]:.4f}, {fits['poisson_hi'][i]:.4f}]",
                     fits["alpha_S"][i], dash(pf[1]), dash(pf[2])])  # fmt: skip
    header = ["γ", "theory α_N", "sim α_N", f"sim α_N (K={m.num_quanta_finite:.0e})", "paper α_N",
              "theory α_D=α_S", "sim α_D (floor)", "sim α_D (Poisson, 95% CI)", "sim α_S",
              "paper α_S", "paper α_D"]  # fmt: skip
    tau_rows = [
        [g, tau, f"[{fits['window_lo_U'][i, u]:.3g}, {fits['window_hi_U'][i, u]:.3g}]",
         int(fits["points_U"][i, u]), -g / (g + 1), -fits["alpha_D_U"][i, u],
         -fits["alpha_D_poisson_U"][i, u],
         f"[{-fits['poisson_hi_U'][i, u]:.4f}, {-fits['poisson_lo_U'][i, u]:.4f}]"]
        for i, g in enumerate(gs) for u, tau in enumerate(d.taus)
    ]  # fmt: skip
    tau_header = ["γ", "τ", "D window", "points", "theory", "floor rule", "Poisson", "95% CI"]
    keys = {"alpha_N": "alpha_N", "alpha_N_finite": "alpha_N_finiteK", "alpha_D": "alpha_D",
            "alpha_D_poisson": "alpha_D_poisson", "alpha_S": "alpha_S"}  # fmt: skip
    figures = {f"{n}_g{g}": float(fits[k][i]) for i, g in enumerate(gs) for k, n in keys.items()}
    notes = [
        f"Finite K = {m.num_quanta_finite:.0e} steepens the L(N) fits (tail ∝ n^-γ − K^-γ): "
        f"α_N = {', '.join(f'{x:.4f}' for x in fits['alpha_N_finite'])} against the exact-tail "
        f"{', '.join(f'{x:.4f}' for x in fits['alpha_N'])}; largest at small γ.",
        "The Poisson-count slope depends on τ, the D window and the seeds (table 'Poisson slope "
        "vs τ').",
        "The paper's columns are fits to trained sparse-parity networks (experiment "
        "sparse_parity), not to this simulation: 5–20 % off theory at γ = 0.4.",
    ]  # fmt: skip
    summary = (
        f"Quanta model in {config.dtype} for γ ∈ {{{', '.join(f'{g:g}' for g in gs)}}}: L(N) on "
        f"{p.num_points} N in [{p.n_min:g}, {p.n_max:g}]·C, L(D) and L(S) on {d.num_points} D "
        f"per γ at τ ∈ {{{', '.join(f'{t:g}' for t in d.taus)}}} with {d.num_seeds} Poisson "
        f"seeds and {d.num_quanta_poisson} sampled quanta; one jit-compiled simulate_grid call."
    )
    return dict(
        summary=summary, figures=figures, claims=claims, plots=plot_names, notes=notes,
        tables={
            "Exponents vs γ (the α sweep: theory, simulation, paper's sparse-parity fits)":
                report.markdown_table(header, rows),
            "Poisson slope vs τ": report.markdown_table(tau_header, tau_rows),
        },
    )  # fmt: skip
