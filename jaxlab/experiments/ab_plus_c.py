"""N = ab + c: exact O(N^{1/4}) minimiser of a + b + c, brute-force checked; Su's Algorithm A bug.

Exhaustive comparison of every exact path (Python ``min_abc``, vmapped ``min_abc_jax``,
Algorithm B, Algorithm C with the bound stop, fixed Algorithm A) with vectorised brute force for
0 <= N <= n_max; the failure sets of the published Algorithm A interval; the post's worked table;
random N against brute force and Python vs JAX on int64; iteration and overshoot statistics; a
quick in-process timing table (not a benchmark: see benchmarks/ab_plus_c.py). Source: Su,
kexue.fm/archives/9775; the library side is :mod:`jaxlab.ab_plus_c.survey`.
"""

import pathlib

import jax
import ml_collections
import numpy as np

from jaxlab import plots, report, sharding
from jaxlab.ab_plus_c import exact, survey
from jaxlab.ab_plus_c.cli import parse_n
from jaxlab.metrics import MetricsWriter, Progress

POST = "kexue.fm/archives/9775"
DERIVED = "kexue.fm/archives/9775 (statistics derived by exhaustive computation)"

NOTES = [
    "Su's eq. (1) lacks the '+1': S = N + 1 - (a - 1)(b - 1); at N = 130, (10, 13) it gives "
    "22, not 23. Tests and claims use brute force, never eq. (1).",
    "The published Algorithm A interval (sqrt(N/2), sqrt N] is wrong for 28 N >= 4, all "
    "N = 2k^2 + r with optimum (k, 2k, r); 'N > 100' does not save it (129, 2890). "
    "Starting the scan at floor(sqrt(N/2)) fixes it.",
    "Iteration counts: 'bound-based' is the proof loop over p in (2 sqrt N, U(N)] (-> 2 N^{1/4}); "
    "'integer rule' is what min_abc runs (stop once p > best S), about S* - ceil(2 sqrt N) + 1 "
    "steps; its growth exponent is reported with a 95% interval over the random N.",
    "min_abc_jax never forms 4N, so it covers N < 2^62. Under vmap the while loop runs as long "
    "as the slowest lane, so a batch costs its largest iteration count times its size.",
    "The timing table is one quick in-process measurement on a shared CPU; "
    "benchmarks/ab_plus_c.py has the careful numbers.",
]


def _holds(name, ok, expected, source=POST, measured=None):
    measured = bool(ok) if measured is None else measured
    return report.holds(name, bool(ok), source=source, expected=expected, measured=measured)


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    sw, rnd, it, tol, tm = (
        config.sweep,
        config.random,
        config.iters,
        config.tolerance,
        config.timing,
    )
    writer = MetricsWriter(workdir)
    mesh = sharding.data_mesh(config.num_devices or None)  # every vmapped min_abc_jax call
    k_random, k_time = jax.random.split(jax.random.key(config.seed))
    progress = Progress("ab_plus_c", 4, unit="phase", min_interval=0.0)
    ex = survey.exhaustive(sw.n_max, sw.bound_stop_max, mesh)
    fails = {f"algorithm_a_{k}_failures": len(v) for k, v in ex.fails.items()}
    writer.write(1, phase="exhaustive", **ex.checks, **fails)
    progress.update(1, "exhaustive")
    n_max, fails, ok, b = sw.n_max, ex.fails, ex.checks, survey.bound_checks(ex)
    closed, late = set(fails["closed"]), [n for n in fails["open"] if n >= 92_459]
    gap, over = survey.gap_and_overshoot(ex, sw.gap_from)
    gap_msg = f"{int(gap.min())} … {int(gap.max())}, zero for {int((gap == 0).sum())}"
    worked, worked_ok = survey.worked_rows()
    # fmt: off
    claims = [
        _holds(f"min_abc == brute force, 0 ≤ N ≤ {n_max}", ok["min_abc"], "all equal"),
        _holds(f"min_abc_jax (jit, vmap) == brute force, 0 ≤ N ≤ {n_max}", ok["min_abc_jax"],
               "all equal"),
        _holds("min_abc_jax == min_abc, incl. iterations, p, q (sanity check)",
               ok["jax_equals_python"], "same"),
        _holds(f"Algorithm B == brute force, 4 ≤ N ≤ {n_max}", ok["algorithm_b"], "all equal"),
        _holds(f"Algorithm C, bound stop == brute force, 4 ≤ N ≤ {sw.bound_stop_max}",
               ok["algorithm_c_bound"], "all equal"),
        _holds("Algorithm A, open interval: failing N",
               tuple(fails["open"]) == exact.ALGORITHM_A_OPEN_FAILURES, "the 28 listed", DERIVED,
               len(fails["open"])),
        _holds("Algorithm A, closed interval: failing N",
               len(closed) == 16 and {19, 129, 2890} <= closed <= set(fails["open"]),
               "16 of the 28, incl. 19, 129, 2890", DERIVED, len(closed)),
        _holds("Algorithm A, start ⌊√(N/2)⌋: failing N", not fails["fixed"], "none", DERIVED,
               str(len(fails["fixed"]))),
        _holds(f"Algorithm A, open interval: failing N in [92,459, {n_max}]", not late,
               "none (provably exact from 92,459)", DERIVED, str(len(late))),
        _holds("worked-example table", worked_ok, "every listed value"),
        _holds("⌈2√N⌉ ≤ S* ≤ U(N) and p* ≤ U(N)", b["in_bounds"], "for every N"),
        _holds("S* − ⌈2√N⌉ + 1 ≤ integer-rule iterations ≤ bound-based", b["iterations_ok"],
               "for every N"),
        report.within(f"max bound-based iterations, N ≤ {n_max}",
                      float(b["max_bound_iterations"]), float(tol.max_bound_iterations), abs=0.0,
                      source=DERIVED),
        report.within(f"bound-based iterations / N^(1/4) → 2, mean of {it.ratio_window} N from"
                      f" {it.ratio_points[0]:g} (the post: 2.07)",
                      survey.mean_ratio(it.ratio_points[0], it.ratio_window), 2.0,
                      abs=tol.ratio_near_1e6, source=DERIVED),
        report.within(f"bound-based iterations / N^(1/4) → 2, mean of {it.ratio_window} N from"
                      f" {it.ratio_points[1]:g} (the post: 2.001)",
                      survey.mean_ratio(it.ratio_points[1], it.ratio_window), 2.0,
                      abs=tol.ratio_near_2e13, source=DERIVED),
        _holds(f"S* − ⌈2√N⌉, {sw.gap_from} ≤ N ≤ {n_max}", gap_msg == "0 … 35, zero for 13608",
               "0 … 35, zero for 13608", DERIVED, gap_msg),
        report.within(f"max (p* − 2√N) / N^(1/4), {sw.gap_from} ≤ N ≤ {n_max} (2 decimals)",
                      float(over.max()), tol.overshoot_max, abs=0.005, source=DERIVED),
    ]
    # fmt: on
    figs = dict(gap_max=int(gap.max()), gap_zero_count=int((gap == 0).sum()))
    figs.update(overshoot_max=float(over.max()), max_bound_iterations=b["max_bound_iterations"])
    writer.write(2, phase="bounds", gap_max=figs["gap_max"], overshoot_max=figs["overshoot_max"])
    progress.update(2, "bounds")

    r = survey.random_checks(rnd, mesh, key=k_random)
    large = r["large"]
    its_n = list(r["overshoot_n"]) + [x.N for x in large]
    its = list(r["overshoot_iterations"]) + [x.iterations for x in large]
    slope, s_lo, s_hi = survey.loglog_slope(its_n, its)
    figs.update(integer_rule_iterations_loglog_slope=slope, overshoot_random_max=r["overshoot_max"])
    figs.update(int64_max_lane_iterations=r["max_lane_iterations"])
    large_ok = all(x.ok for x in large)
    # fmt: off
    claims += [
        _holds(f"{r['num_bruteforce']} log-uniform N in [{rnd.lo:g}, {rnd.hi:g}] == brute force",
               r["bruteforce_ok"], "all equal (B and C)"),
        _holds(f"{r['num_int64']} random int64 N < 2^62: min_abc_jax == min_abc (sanity check)",
               r["jax_ok"], "same records"),
        _holds(f"random N up to 1e{max(rnd.large_exponents)}: Algorithm B == C, bounds hold",
               large_ok, "agree"),
        report.at_most(f"max (p* − 2√N) / N^(1/4), {rnd.num_overshoot} log-uniform N in"
                       " [1e8, 1e16]", float(r["overshoot_max"]), float(tol.overshoot_random),
                       source=DERIVED),
        _holds(f"{r['num_algorithm_a']} log-uniform N in [92,459, {rnd.algorithm_a_hi:g}]: "
               "Algorithm A (open interval) == min_abc", r["algorithm_a_ok"],
               "exact from N = 92,459 (proved in the post)", POST),
        report.reported("integer-rule iterations ~ N^k, log-log OLS over the random N: k [95% CI]",
                        f"{slope:.3f} [{s_lo:.3f}, {s_hi:.3f}] ({len(its)} N in [1e8, "
                        f"1e{max(rnd.large_exponents)}]); 1/6 "
                        f"{'inside' if s_lo <= 1 / 6 <= s_hi else 'outside'} the interval",
                        source="measured here", expected="~1/6 (our note, not the post's)",
                        why="an empirical note of ours, not a claim of the source"),
    ]
    # fmt: on
    writer.write(3, phase="random", disagree=sum(c["agree"] is False for c in claims))
    progress.update(3, "random")
    tables = {
        "Worked examples": report.markdown_table(survey.WORKED_HEADER, worked),
        "Algorithm A (open interval) failures, 4 ≤ N ≤ 2e5": report.markdown_table(
            survey.FAILURE_HEADER, survey.failure_rows(fails)
        ),
        "Large N on the Python path": report.markdown_table(
            survey.LARGE_HEADER, survey.large_rows(large)
        ),
        "Timing (quick in-process measurement, one run; see benchmarks/ab_plus_c.py)": (
            report.markdown_table(
                survey.TIMING_HEADER,
                survey.timing_rows(
                    tm.exponents,
                    tm.samples,
                    tm.jax_batch,
                    tm.algorithm_a_max_exponent,
                    mesh,
                    key=k_time,
                ),
            )
        ),
    }
    if config.query:
        rows = []
        for item in config.query:
            n = parse_n(str(item))
            t = exact.min_abc(n, return_stats=True)
            print(f"N={n} a={t.a} b={t.b} c={t.c} a+b+c={t.s}")
            rows.append([n, t.a, t.b, t.c, t.s, t.iterations])
        tables["Queried N"] = report.markdown_table(["N", "a", "b", "c", "S*", "iterations"], rows)
    writer.write(4, phase="done", claims_disagree=sum(c["agree"] is False for c in claims))
    progress.update(4, "done")
    return dict(
        summary=(
            f"Every exact path against vectorised brute force for 0 ≤ N ≤ {n_max}; the Algorithm A"
            f" failure sets; the worked table; {rnd.num_bruteforce} random N up to {rnd.hi:g}"
            f" against brute force; {r['num_int64']} int64 N (Python vs JAX); {len(large)} random"
            f" N up to 1e{max(rnd.large_exponents)} (Algorithms B vs C); {rnd.num_overshoot}"
            " random N in [1e8, 1e16] for the overshoot."
        ),
        figures=figs,
        claims=claims,
        tables=tables,
        plots=_plots(workdir, ex, sw.gap_from, it.max_exponent, gap, over, large),
        notes=list(NOTES),
    )


def _plots(workdir, ex, gap_from, max_exponent, gap, over, large) -> list[str]:
    N, sel = ex.N, ex.N >= gap_from
    fig, ax = plots.new_figure()
    ax.scatter(N[sel], gap, s=0.3, alpha=0.3, rasterized=True)
    ax.set(xlabel="N", ylabel="S* − ⌈2√N⌉", title="Gap to the lower bound (exact, every N)")
    names = [plots.save_figure(fig, workdir, "gap.png")]
    fig, ax = plots.new_figure()
    grid = np.unique(np.logspace(2, max_exponent, 200))
    n_bound = np.array([exact.bound_iterations(int(g)) for g in grid], float)
    big = np.array([r.N for r in large], float)
    ax.loglog(grid, n_bound, label="bound-based loop")
    ax.loglog(N[4::37], np.maximum(ex.py.iterations[4::37], 0.5), ".", ms=1, label="integer rule")
    ax.loglog(big, [r.iterations for r in large], "o", ms=3, label="integer rule, random large N")
    ax.loglog(grid, 2 * grid**0.25, "k--", lw=0.8, label="2 N^{1/4}")
    ax.set(xlabel="N", ylabel="iterations", title="Iterations of Algorithm C")
    ax.legend(fontsize=7)
    names.append(plots.save_figure(fig, workdir, "iterations.png"))
    fig, ax = plots.new_figure()
    ax.scatter(N[sel], over, s=0.3, alpha=0.3, rasterized=True, label="N ≤ n_max")
    ax.scatter(big, [r.overshoot for r in large], s=8, color="C3", label="random large N")
    ax.set_xscale("log")
    ax.set(xlabel="N", ylabel="(p* − 2√N) / N^{1/4}", title="Optimal p beyond 2√N")
    ax.legend(fontsize=7)
    names.append(plots.save_figure(fig, workdir, "overshoot.png"))
    return names
