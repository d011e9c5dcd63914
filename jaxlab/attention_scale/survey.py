"""The attention-scale survey: the numbers and tables behind the experiment, from the library.

Each function computes one block of results (α* tables and Su's fits, the gradient identity's
errors, the mean-field entropy table, the exact objective by Monte Carlo, entropy vs n per scale
rule) or shapes them into ``(header, rows)`` for a markdown table. No claims are made here.

References: Su (2023) kexue.fm/archives/9812; Su (2021) kexue.fm/archives/8823.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.attention_scale.monte_carlo import entropy_mc, exact_objective_mc
from jaxlab.attention_scale.rules import ScaleRule, logit_scale
from jaxlab.attention_scale.theory import (
    SU_GRID,
    alpha_star_cosine,
    alpha_star_normal,
    fit_through_origin,
    jacobian_objective,
    meanfield_entropy,
    meanfield_objective_normal,
    softmax_jacobian_half_l1,
)


def alpha_survey(table_ns, cosine_dims) -> dict:
    """Mean-field α* (float64) on ``table_ns`` (normal; cosine per d) and on Su's grid, the fits.

    Returns ``normal``, ``cosine`` ({d: array}), ``grid``, ``grid_normal``, ``grid_cos`` (d = 128),
    the fit constants ``c_normal`` (α* = c √ln n) and ``c_cos`` (α*_cos = c ln n), the effective
    support ``1 + 2α*²`` and ``identity``, the max relative error of ``n e^{−α*²} = 1 + 2α*²``.
    """
    ns = np.asarray(table_ns, np.float64)
    with jax.enable_x64(True):
        normal = np.asarray(jax.vmap(alpha_star_normal)(jnp.asarray(ns)))
        cosine = {
            d: np.asarray(jax.jit(jax.vmap(lambda n, d=d: alpha_star_cosine(n, d)))(ns))
            for d in cosine_dims
        }
        grid = np.asarray(SU_GRID, np.float64)
        grid_normal = np.asarray(jax.vmap(alpha_star_normal)(jnp.asarray(grid)))
        grid_cos = np.asarray(jax.jit(jax.vmap(lambda n: alpha_star_cosine(n, 128)))(grid))
        c_normal = float(fit_through_origin(np.sqrt(np.log(grid)), grid_normal))
        c_cos = float(fit_through_origin(np.log(grid), grid_cos))
    support = 1 + 2 * normal**2
    identity = float(np.max(np.abs(ns * np.exp(-(normal**2)) / support - 1)))
    return dict(normal=normal, cosine=cosine, grid=grid, grid_normal=grid_normal,
                grid_cos=grid_cos, c_normal=c_normal, c_cos=c_cos, support=support,
                identity=identity)  # fmt: skip


def alpha_table(table_ns, cosine_dims, survey: dict) -> tuple[list, list]:
    """``(header, rows)``: α* per n beside the scale rules (0.84√ln n, log_512 n, ln n, ...)."""
    normal, cosine, support = survey["normal"], survey["cosine"], survey["support"]
    rows = [[n, normal[i], 0.84 * math.sqrt(math.log(n)), math.log(n) / math.log(512),
             math.log(n), *[cosine[d][i] for d in cosine_dims], 3.5 * math.log(n),
             math.log(n) / 0.24, support[i]] for i, n in enumerate(table_ns)]  # fmt: skip
    header = ["n", "α* normal", "0.84√ln n", "log_512 n", "ln n",
              *[f"α*_cos d={d}" for d in cosine_dims], "3.5 ln n", "ln n/0.24",
              "1 + 2α*²"]  # fmt: skip
    return header, rows


def gradient_identity_errors(key, ns=(2, 17, 512), alphas=(0.1, 1.0, 10.0)) -> tuple:
    """Max errors of ½‖∂p/∂s‖₁ (jacfwd) vs α(1 − Σp²) in float64 on normal scores.

    Returns ``(rel, one_hot)``: the max relative error, and the max absolute error over the cases
    where the softmax is nearly one-hot (1 − max p < 1e-3), where autodiff loses relative precision.
    """
    with jax.enable_x64(True):
        rel, one_hot = 0.0, 0.0
        for n in ns:
            s = jax.random.normal(jax.random.fold_in(key, n), (n,), jnp.float64)
            for a in alphas:
                lhs = float(softmax_jacobian_half_l1(s, jnp.float64(a)))
                rhs = float(jacobian_objective(s, jnp.float64(a)))
                if 1 - float(jnp.max(jax.nn.softmax(a * s))) < 1e-3:
                    one_hot = max(one_hot, abs(lhs - rhs))
                else:
                    rel = max(rel, abs(lhs / rhs - 1))
    return rel, one_hot


def meanfield_entropy_pair(d, ns=(64, 512, 4096)) -> dict:
    """{n: (entropy at the standard 1/√d scale, at the entropy-invariant log_512 n/√d)}, float64."""
    with jax.enable_x64(True):
        return {n: (float(meanfield_entropy(float(n), math.sqrt(d), d)),
                    float(meanfield_entropy(float(n), math.log(n) / math.log(512) * math.sqrt(d),
                                            d))) for n in ns}  # fmt: skip


def _run_mc():
    static = ("n", "num_draws", "kind", "d", "batch_size")
    return jax.jit(exact_objective_mc, static_argnames=static)


def normal_objective_survey(ns, alphas, num_draws, *, key) -> dict:
    """The exact objective (normal scores) on the α grid per n, key ``fold_in(key, 10 + i)``.

    The grid is extended by α*, 4α* and 30 (common random numbers). Returns {n: dict} with
    ``alpha_star``, the ``mean`` and ``median`` curves on ``alphas``, ``at_alpha_star``,
    ``at_4alpha_star``, ``at_30`` (means) and ``median_argmax`` (the α maximising the median).
    """
    run_mc, out = _run_mc(), {}
    for i, n in enumerate(ns):
        a_star = float(alpha_star_normal(float(n)))
        grid = np.concatenate([alphas, [a_star, 4 * a_star, 30.0]])
        mean, median = map(np.asarray, run_mc(jnp.asarray(grid, jnp.float32), n=n,
                                              num_draws=num_draws,
                                              key=jax.random.fold_in(key, 10 + i)))  # fmt: skip
        out[n] = dict(alpha_star=a_star, mean=mean[:-3], median=median[:-3],
                      at_alpha_star=mean[-3], at_4alpha_star=mean[-2], at_30=mean[-1],
                      median_argmax=float(alphas[np.argmax(median[:-3])]))  # fmt: skip
    return out


def cosine_objective_rows(ns, taus, d, num_draws, *, key) -> list:
    """Rows ``[n, mean-field α*_cos, argmax of the median, argmax of the mean]`` (cosine scores)."""
    run_mc, rows = _run_mc(), []
    for i, n in enumerate(ns):
        mean, median = map(np.asarray, run_mc(jnp.asarray(taus, jnp.float32), n=n,
                                              num_draws=num_draws, kind="cosine", d=d,
                                              key=jax.random.fold_in(key, 50 + i)))  # fmt: skip
        a_mf = float(alpha_star_cosine(float(n), d))
        rows.append([n, a_mf, float(taus[np.argmax(median)]), float(taus[np.argmax(mean)])])
    return rows


def objective_table(survey: dict) -> tuple[list, list]:
    """``(header, rows)``: the exact objective vs the mean field (``normal_objective_survey``)."""
    header = ["n", "mean-field α*", "argmax of the median", "mean at α = α_max", "mean-field f(α*)"]
    rows = [[n, r["alpha_star"], r["median_argmax"], float(r["mean"][-1]),
             float(meanfield_objective_normal(r["alpha_star"], float(n)))]
            for n, r in survey.items()]  # fmt: skip
    return header, rows


def entropy_curves(d, ns, mc_ns, mc_draws, fixed_alpha, *, key) -> dict:
    """Entropy vs n per rule: {rule: (mean field on ``ns``, Monte Carlo on ``mc_ns``)}.

    The rule's multiplier λ of q·k gives t = λ d (the 8823 model).
    """
    rules = {"standard 1/√d": lambda n: ScaleRule(),
             "entropy-invariant log_512 n/√d": lambda n: ScaleRule("logn"),
             "gradient-max α*(n)/√d": lambda n: ScaleRule("gradmax", n=float(n)),
             f"fixed α = {fixed_alpha}": lambda n: ScaleRule("fixed", alpha=fixed_alpha),
             "μP 1/d": lambda n: ScaleRule("mup"),
             "Chiang–Cholak ln n/√d": lambda n: ScaleRule("chiang_cholak")}  # fmt: skip

    def t_of(make, n):
        return float(logit_scale(make(n), d, float(n))) * d

    return {
        name: ([float(meanfield_entropy(float(n), t_of(make, n), d)) for n in ns],
               [float(entropy_mc(t_of(make, n), n, d, mc_draws,
                                 key=jax.random.fold_in(key, 100 * j + i)))
                for i, n in enumerate(mc_ns)])
        for j, (name, make) in enumerate(rules.items())
    }  # fmt: skip


def entropy_table(entropy: dict, ns, mc_ns) -> tuple[list, list]:
    """``(header, rows)`` of ``entropy_curves`` output, with a last ``ln n (uniform)`` row."""
    header = ["rule", *[f"n={n} mean field" for n in ns], *[f"n={n} Monte Carlo" for n in mc_ns]]
    rows = [[name, *mf, *mc_] for name, (mf, mc_) in entropy.items()]
    rows.append(["ln n (uniform)", *[math.log(n) for n in ns], *[math.log(n) for n in mc_ns]])
    return header, rows
