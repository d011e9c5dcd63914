"""Attention scale: gradient maximisation, entropy invariance, and the scale rules themselves.

Modules, by concept:

* ``theory``: the Jacobian objective ``½‖∂p/∂s‖₁ = α(1 − Σp²)`` exactly and in Su's mean field
  (normal and cosine scores, the cosine MGF in log space), α*(n) by Newton / bisection, the
  least-squares fits on Su's grid, the mean-field entropy and the 0.24 constant.
* ``monte_carlo``: the exact objective by simulation (mean and median over draws: the mean has
  no interior maximum), attention entropy and its Monte Carlo estimate.
* ``rules``: :class:`ScaleRule` (1/√d, μP, fixed α, log-n, gradient-max, cosine, YaRN, Llama 4)
  and :func:`logit_scale`, the per-row multiplier ``jaxlab.attention`` applies; the log-n query
  factor :func:`logn_factor` used by the RoPE extrapolation experiment.
* ``survey``: the experiment's result blocks from the above (α* tables and fits, the gradient
  identity's errors, the exact objective on an α grid, entropy vs n per rule) and their
  ``(header, rows)`` tables; the runner only turns them into claims, tables and plots.

Example::

    from jaxlab.attention_scale import ScaleRule, alpha_star_normal, logit_scale
    alpha_star_normal(512.0)                      # 2.008 (Su: α* ≈ 0.84 √ln n)
    logit_scale(ScaleRule("logn"), 64, n_keys)    # log_512(n)/√64 per row

References: Su (2023) kexue.fm/archives/9812; Su (2021) kexue.fm/archives/8823, (2020) /7695.
"""

from jaxlab.attention_scale import monte_carlo, rules, survey, theory
from jaxlab.attention_scale.monte_carlo import (
    SCORE_KINDS,
    attention_entropy,
    bootstrap_mean_ci,
    entropy_mc,
    exact_objective_mc,
    sample_scores,
)
from jaxlab.attention_scale.rules import (
    KINDS,
    LOGN_MODES,
    ScaleRule,
    cosine_temperature,
    gradmax_alpha,
    logit_scale,
    logn_factor,
    logn_ratio,
    query_scale,
    rope_attention_factor,
    yarn_factor,
)
from jaxlab.attention_scale.survey import (
    alpha_survey,
    alpha_table,
    cosine_objective_rows,
    entropy_curves,
    entropy_table,
    gradient_identity_errors,
    meanfield_entropy_pair,
    normal_objective_survey,
    objective_table,
)
from jaxlab.attention_scale.theory import (
    SU_GRID,
    alpha_star_cosine,
    alpha_star_normal,
    entropy_correction_per_dim,
    fit_through_origin,
    jacobian_objective,
    laplace_entropy_constant,
    log_mgf_cosine,
    meanfield_entropy,
    meanfield_objective_cosine,
    meanfield_objective_normal,
    softmax_jacobian_half_l1,
)

__all__ = [
    "theory",
    "monte_carlo",
    "rules",
    "SU_GRID",
    "jacobian_objective",
    "softmax_jacobian_half_l1",
    "meanfield_objective_normal",
    "alpha_star_normal",
    "log_mgf_cosine",
    "meanfield_objective_cosine",
    "alpha_star_cosine",
    "fit_through_origin",
    "meanfield_entropy",
    "entropy_correction_per_dim",
    "laplace_entropy_constant",
    "SCORE_KINDS",
    "sample_scores",
    "exact_objective_mc",
    "attention_entropy",
    "entropy_mc",
    "bootstrap_mean_ci",
    "KINDS",
    "LOGN_MODES",
    "ScaleRule",
    "logit_scale",
    "query_scale",
    "logn_ratio",
    "logn_factor",
    "yarn_factor",
    "cosine_temperature",
    "gradmax_alpha",
    "rope_attention_factor",
    "survey",
    "alpha_survey",
    "alpha_table",
    "gradient_identity_errors",
    "meanfield_entropy_pair",
    "normal_objective_survey",
    "cosine_objective_rows",
    "objective_table",
    "entropy_curves",
    "entropy_table",
]
