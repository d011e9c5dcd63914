"""Self-consuming generative loops ("Model Autophagy Disorder"): Gaussian theory, loops, metrics.

Modules, by concept:

* ``loop``: :func:`run_loop`, the generic loop driver (fully synthetic / augment / fresh data;
  replace / accumulate / last-K pools; sampling bias λ), one chain, vmapped at the call site;
  :func:`run_loop_stats_1d`, the same loop for the 1-D Gaussian on sufficient statistics (equal
  in law, O(1) per generation instead of O(n)).
* ``gaussian``: the Gaussian model (unbiased fit, eigh sampling of rank-deficient covariances),
  sufficient statistics, the exact 1-D chain sampler and the closed-form 1-D laws.
* ``mixture``: the 2-D grid mixture truth, biased mixture sampling, EM in JAX.
* ``metrics``: W_2² in closed form, Fréchet distance, k-NN precision/recall, modes covered.
* ``flow``: a small RealNVP normalizing flow in Flax NNX trained with optax (the only module of
  the package that imports flax; import it as ``jaxlab.mad.flow``).

Example::

    import jax
    from jaxlab import mad
    cfg = mad.LoopConfig(generations=20, n_init=100, n_real=100, n_syn=900)

References: Su Jianlin (2023), https://kexue.fm/archives/9687; Alemohammad et al. (2023),
"Self-Consuming Generative Models Go MAD", arXiv:2307.01850.
"""

from jaxlab.mad import gaussian, loop, metrics, mixture
from jaxlab.mad.gaussian import (
    ESTIMATORS,
    Gaussian,
    GaussianModel,
    GaussianStats,
    exact_chain_1d,
    expected_var,
    fit_gaussian,
    gamma_marsaglia_tsang,
    gaussian_stats,
    log_var_drift,
    mean_cov_factor,
    median_var,
    merge_stats,
    sample_gaussian,
    sqrt_factor,
    standard_normal,
    stats_to_gaussian,
)
from jaxlab.mad.loop import KINDS, POOLS, LoopConfig, kind_index, run_loop, run_loop_stats_1d
from jaxlab.mad.metrics import (
    frechet_distance,
    gaussian_summary,
    knn_precision_recall,
    knn_radii,
    modes_covered,
    sample_quality,
    w2_squared,
    w2_squared_to_standard,
)
from jaxlab.mad.mixture import (
    Mixture,
    MixtureModel,
    fit_mixture_em,
    grid_mixture,
    kmeans_pp_init,
    log_prob,
    sample_mixture,
)

__all__ = [
    "gaussian",
    "loop",
    "metrics",
    "mixture",
    "KINDS",
    "POOLS",
    "LoopConfig",
    "kind_index",
    "run_loop",
    "run_loop_stats_1d",
    "ESTIMATORS",
    "Gaussian",
    "GaussianModel",
    "GaussianStats",
    "exact_chain_1d",
    "expected_var",
    "fit_gaussian",
    "gamma_marsaglia_tsang",
    "gaussian_stats",
    "log_var_drift",
    "mean_cov_factor",
    "median_var",
    "merge_stats",
    "sample_gaussian",
    "sqrt_factor",
    "standard_normal",
    "stats_to_gaussian",
    "frechet_distance",
    "gaussian_summary",
    "knn_precision_recall",
    "knn_radii",
    "modes_covered",
    "sample_quality",
    "w2_squared",
    "w2_squared_to_standard",
    "Mixture",
    "MixtureModel",
    "fit_mixture_em",
    "grid_mixture",
    "kmeans_pp_init",
    "log_prob",
    "sample_mixture",
]
