"""Diagnostics of DEER's convergence for the ``deer_convergence`` report (host-side summaries).

* :func:`error_ratios`: the errors ``e_k = max |y^(k) - y*|`` of a sweep trace against the
  sequential solution and the ratios ``e_{k+1} / e_k^2``. Newton's method converges
  quadratically near the solution, ``e_{k+1} <= C e_k^2`` (Lim et al., arXiv:2309.12252,
  section 3; spec acceptance 4), so the ratios stay bounded; a linearly converging mode
  (``e_{k+1} ~ r e_k``) has ratios ``~ r / e_k`` that grow without bound as ``e_k -> 0``.
* :func:`finite_difference_check`: DEER's implicit gradient of a scalar loss with respect to
  the inputs ``xs`` and the initial state ``y0`` against central finite differences along random
  directions (float64, ``h = 1e-6``; spec acceptance 5).
* :func:`gru_su_summary`: Su's constant-A GRU mode, ``A = (I + U_h / 2) / 2`` (gates at 1/2;
  kexue.fm/archives/9783), against Newton on the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.deer import cells, methods, solver


def error_ratios(trace, reference, *, floor: float = 1e-9, start: float = 1e-2) -> dict:
    """Errors of each iterate and the quadratic ratios ``e_{k+1} / e_k^2`` in the tail.

    Args:
      trace: Iterates ``[K, T, D]`` (y^(1)..y^(K)).
      reference: The exact states ``[T, D]``.
      floor: Pairs with ``e_{k+1}`` below this are left out (rounding, not convergence, sets
        them: float64 errors bottom out near 1e-15 times the condition number).
      start: The tail begins at the first ``e_k <= start`` (near the solution).

    Returns:
      dict(errors [K], ratios (the tail's e_{k+1}/e_k^2), max_ratio (nan if the tail has no
      pair), pairs (how many)).
    """
    e = np.max(np.abs(np.asarray(trace) - np.asarray(reference)[None]), axis=(1, 2))
    ratios = [
        e[k + 1] / e[k] ** 2
        for k in range(len(e) - 1)
        if e[k] <= start and e[k + 1] >= floor and e[k] > 0
    ]
    return dict(
        errors=e,
        ratios=np.asarray(ratios),
        max_ratio=float(max(ratios)) if ratios else float("nan"),
        pairs=len(ratios),
    )


def finite_difference_check(
    cell: str,
    params,
    xs,
    weights,
    *,
    key: jax.Array,
    num_directions: int = 3,
    h: float = 1e-6,
    tol: float = 1e-12,
) -> dict:
    """DEER's gradient w.r.t. ``xs`` and ``y0`` against central finite differences (float64).

    The loss is ``sum(weights * sin(y))`` of the DEER solution (Newton, ``atol=tol``). For each
    of ``num_directions`` random unit directions v (per argument) the directional derivative
    ``<grad, v>`` is compared with ``(L(x + h v) - L(x - h v)) / (2h)``. Call under
    ``jax.enable_x64(True)``.

    Returns:
      dict(xs, y0): the largest relative error ``|fd - <g, v>| / max(|<g, v>|, |fd|)`` over the
      directions, per argument.
    """
    step = cells.CELLS[cell][0]
    y0 = jnp.zeros((params.b.shape[-1],), xs.dtype) + 0.1

    def loss(x, y):
        out = solver.deer(step, y, x, params, method=methods.Newton(), atol=tol, rtol=0.0)
        return jnp.sum(weights * jnp.sin(out.value))

    f = jax.jit(loss)
    gx, gy = jax.jit(jax.grad(loss, argnums=(0, 1)))(xs, y0)
    out = {}
    for name, arg, g in (("xs", xs, gx), ("y0", y0, gy)):
        worst = 0.0
        for i in range(num_directions):
            v = jax.random.normal(jax.random.fold_in(key, i), arg.shape, arg.dtype)
            v = v / jnp.linalg.norm(v)
            if name == "xs":
                fd = (f(xs + h * v, y0) - f(xs - h * v, y0)) / (2 * h)
            else:
                fd = (f(xs, y0 + h * v) - f(xs, y0 - h * v)) / (2 * h)
            ad = jnp.vdot(g, v)
            rel = abs(float(fd - ad)) / max(abs(float(ad)), abs(float(fd)), 1e-300)
            worst = max(worst, rel)
        out[name] = worst
    return out


def gru_su_summary(rows: Sequence[Sequence], scales: Sequence[float]) -> dict:
    """Su's GRU mode against Newton from the runner's GRU table rows.

    Args:
      rows: ``[mode, sweeps(scale 1), error(scale 1), sweeps(scale 2), ...]`` per mode.
      scales: The scales, in column order.

    Returns:
      dict(su_sweeps, newton_sweeps, su_max_error): lists over ``scales`` and the largest error.
    """
    by_mode = {r[0]: r[1:] for r in rows}
    if "su" not in by_mode or "newton" not in by_mode:
        raise ValueError(f"rows must include the 'su' and 'newton' modes, got {sorted(by_mode)}")
    su, nt = by_mode["su"], by_mode["newton"]
    return dict(
        su_sweeps=[int(su[2 * i]) for i in range(len(scales))],
        newton_sweeps=[int(nt[2 * i]) for i in range(len(scales))],
        su_max_error=float(max(su[1::2])),
    )


def newton_tail(
    hidden: int,
    length: int,
    scale: float,
    num_draws: int,
    num_iters: int,
    *,
    key: jax.Array,
    modes: Sequence[str] = ("newton", "quasi", "picard"),
    scan_method: str = "sequential",
    floor: float = 1e-12,
    start: float = 0.1,
) -> dict[str, dict]:
    """:func:`error_ratios` of each mode over ``num_draws`` float64 tanh-RNNs, from y = 0.

    Call under ``jax.enable_x64(True)``.

    Returns:
      ``{mode: dict(max_ratio, pairs)}`` pooled over the draws (max_ratio nan without pairs).
    """
    from jaxlab.deer import population as pop

    params, xs = pop.draw_population(
        "tanh", hidden, length, scale, num_draws, dtype=jnp.float64, key=key
    )
    out = {}
    for mode in modes:
        ratios = []
        for i in range(num_draws):
            p, x = jax.tree.map(lambda a, i=i: a[i], (params, xs))
            tr, _ = pop.trace_steps("tanh", mode, p, x, num_iters, scan_method=scan_method)
            fit = error_ratios(tr, pop.reference("tanh", p, x), floor=floor, start=start)
            ratios += fit["ratios"].tolist()
        out[mode] = dict(max_ratio=float(max(ratios)) if ratios else float("nan"),
                         pairs=len(ratios))  # fmt: skip
    return out


def extra_claims(config, fd, tails, gru_rows, *, post: str, paper: str) -> list[dict]:
    """Report rows for Newton's quadratic tail (:func:`newton_tail`), the finite-difference
    gradients (:func:`finite_difference_check`) and Su's GRU mode (:func:`gru_su_summary`);
    tolerances from ``config.tolerance``."""
    from jaxlab import report

    tol, tq, gg = config.tolerance, config.tail, config.gru
    nt = tails["newton"]
    lin = {m: v["max_ratio"] for m, v in tails.items() if m != "newton"}
    su = gru_su_summary(gru_rows, gg.scales)
    scales = ", ".join(f"{s:g}" for s in gg.scales)
    return [
        report.at_most(f"Newton's tail: max e_(k+1) / e_k^2 over {nt['pairs']} pairs of "
                       f"{tq.draws} draws (scale {tq.scale:g}; e_k <= 0.1, e_(k+1) >= 1e-12)",
                       nt["max_ratio"], tol.newton_quadratic_ratio, source=paper),
        report.at_least("linear modes on the same draws: max e_(k+1) / e_k^2 grows without"
                        f" bound ({', '.join(lin)}; min over modes)",
                        min(lin.values()), tol.linear_ratio_min, source=paper, sanity=True),
        report.at_most("implicit gradient w.r.t. xs and y0 vs central finite differences "
                       "(float64, h = 1e-6, 3 random directions each): max relative error",
                       max(fd.values()), tol.fd_rel, source=paper),
        report.at_most(f"Su's GRU constant A = (I + U_h/2)/2, float32 default tolerances, scales "
                       f"{scales}: max abs error vs lax.scan (sweeps {su['su_sweeps']}, Newton "
                       f"{su['newton_sweeps']})", su["su_max_error"], tol.gru_linear_error,
                       source=post),
    ]  # fmt: skip


def plots(surveys, traces, modes, first_cell, workdir) -> list[str]:
    """The runner's two figures: max |step| per sweep (first draw of the first cell) and sweeps
    against the spectral radius of every drawn W."""
    from jaxlab import plots as jplots

    fig, ax = jplots.new_figure()
    for mode, steps in traces.items():
        ax.semilogy(np.arange(1, len(steps) + 1), np.maximum(steps, 1e-17), label=mode)
    n, t = first_cell[:2]
    ax.set(xlabel="sweep k", ylabel="max |y(k) - y(k-1)|", title=f"tanh-RNN n={n}, T={t}")
    ax.legend()
    names = [jplots.save_figure(fig, workdir, "deer_steps.png")]
    fig, ax = jplots.new_figure()
    for i, mode in enumerate(modes):
        pts = [(s.radius, s.stats[mode].iterations) for s in surveys.values() if mode in s.stats]
        if pts:
            r, k = (np.concatenate(v) for v in zip(*pts, strict=True))
            ax.semilogy(r, k, "o", ms=3, color=f"C{i}", label=mode, alpha=0.6)
    ax.set(xlabel="spectral radius of W", ylabel="sweeps", title="Sweeps vs the drawn W")
    ax.legend()
    names.append(jplots.save_figure(fig, workdir, "deer_sweeps_vs_radius.png"))
    return names
