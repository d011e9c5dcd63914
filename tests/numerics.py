"""The one tolerance table for the test suite (STYLE 2.9).

Loosening an entry needs a comment with the reason.
"""

import numpy as np

TOL = {
    "float64": dict(rtol=1e-10, atol=1e-12),  # references, algebraic identities
    "float32": dict(rtol=1e-5, atol=1e-6),  # default
    "bfloat16": dict(rtol=1e-2, atol=1e-2),  # dtype-preservation tests only
}


def tol(dtype) -> dict:
    """Tolerances for ``dtype`` (a numpy/jax dtype or its name)."""
    return TOL[np.dtype(dtype).name]


def solver_tol(solver_tol: float) -> dict:
    """Iterative solvers (DEER, Newton): 10x the solver's own tolerance."""
    return dict(rtol=10 * solver_tol, atol=10 * solver_tol)


# Named tolerances outside the dtype table: each is a literal a test needs for a stated reason,
# moved here verbatim (values unchanged). Use as ``assert_allclose(a, b, **NAMED["key"])``.
NAMED = {
    # --- float64 closed forms -----------------------------------------------------------------
    "identity64": dict(rtol=1e-12),  # float64 closed-form identities (a few ulps of cancellation)
    "limit64": dict(rtol=1e-8),  # float64 limit taken at a finite parameter (e.g. mix_b=1e-9)
    "reference64": dict(rtol=1e-10, atol=1e-10),  # float64 vs an independent reference
    "reference64_abs": dict(atol=1e-10),  # float64 vs reference where logits hit zero/-inf
    "leaky_limit64": dict(atol=1e-8),  # leaky_k=1e12 approximates the no-leak limit to O(1/k)
    "stationary64": dict(rtol=1e-9),  # float64 identity at a root solved to residual < 1e-10
    "bessel64": dict(atol=1e-9, rtol=0),  # float64 vs scipy Bessel form (ive/gammaln accuracy)
    # --- float32 vs external or float64 references ---------------------------------------------
    "hf_fp32": dict(rtol=1e-6, atol=0),  # float32 vs HF torch fixtures: same float32 formula
    "hf_apply_fp32": dict(rtol=1e-5, atol=1e-5),  # float32 rotations vs torch: sin/cos ulps
    "rotation_fp32": dict(rtol=1e-5, atol=2e-5),  # float32 sin/cos at positions ~1e3 vs float64
    "rotation_fp32_abs": dict(atol=2e-5),  # as rotation_fp32, absolute only
    "elementwise_fp32": dict(rtol=1e-6),  # float32 elementwise log/sqrt vs float64 (few ulps)
    "elementwise_fp32_abs": dict(rtol=1e-6, atol=1e-7),  # as elementwise_fp32, with zeros present
    "entropy_fp32": dict(atol=1e-6),  # float32 log-sum-exp entropy vs exact log(n)
    # --- spec acceptance tolerances (the spec quotes values to a fixed number of digits) -------
    "spec_4dp": dict(atol=5e-5),  # spec table printed to 4 decimals: half a unit in the last digit
    "spec_mscale": dict(atol=1e-4),  # spec lists YaRN mscale to 4 decimals
    "spec_alpha_star": dict(atol=1e-3, rtol=0),  # spec acceptance: alpha* within 1e-3
    "spec_alpha_star_2dp": dict(atol=1e-2, rtol=0),  # spec quotes alpha*(2048, 8192) to 2 digits
    "spec_support_1dp": dict(atol=0.05, rtol=0),  # spec quotes 1 + 2 alpha*^2 to 1 decimal
    "spec_alpha_cosine": dict(atol=0.02, rtol=0),  # spec acceptance: cosine alpha* within 0.02
    "spec_alpha_cosine_1dp": dict(atol=0.1, rtol=0),  # spec quotes cosine alpha* to 1 decimal
    "post_gradmax": dict(atol=1e-3 / 8, rtol=0),  # post's alpha* to 3 digits, times 1/sqrt(d=64)
    "post_cosine": dict(atol=0.01, rtol=0),  # post's cosine scale rounded to 4 digits
    # --- iterative solvers (DEER) --------------------------------------------------------------
    "solver_tight64": dict(atol=1e-12, rtol=0.0),  # solver setting: iterate to float64 roundoff
    "solver_tight32": dict(atol=1e-7, rtol=0.0),  # solver setting: iterate to float32 roundoff
    "solver_counts64": dict(atol=1e-10, rtol=0.0),  # solver setting for iteration-count tests
    "solver_fp32": dict(atol=1e-6, rtol=1e-6),  # solver setting: float32 DEER stopping tolerance
    "deer_fp32_abs": dict(atol=1e-5),  # float32 DEER at its default tolerance vs lax.scan
    "deer_fp32_rel": dict(rtol=1e-5),  # as deer_fp32_abs, relative, on a summed loss
    "recompute64": dict(rtol=1e-12, atol=1e-12),  # float64: same ops recomputed or regrouped
    "damped_newton64": dict(rtol=1e-8, atol=1e-8),  # sigmasq=1e12 damping: Newton up to O(1e-12)
    "vmap_fp32": dict(rtol=1e-6, atol=1e-6),  # float32 batched rows vs single: fusion order
    # XLA cost-analysis FLOP ratios vs the leading-order power law (doubling n or T): the
    # lower-order terms (O(T n^2) offsets, scan bookkeeping) pull a ratio below 2^p by < 20%
    # (n >= 16 for scans, n >= 32 for whole sweeps, T >= 128); the work-efficient scan's
    # odd/even split adds < 15% per doubling of T.
    "cost_ratio": dict(rtol=0.2),
    # --- tokenizer DPs and Monte Carlo bands ----------------------------------------------------
    "spec_6dp": dict(atol=1e-6),  # spec quotes log Z to 6 decimals
    "dp_fp32": dict(rtol=1e-5),  # float32 lattice DP (sums, log-sum-exp) vs float64 Python
    "entropy_dp_fp32": dict(rtol=1e-4, atol=1e-5),  # float32 entropy DP: p log p cancellation
    "batching_fp32": dict(rtol=1e-6),  # float32: same DP batched vs one row (reduction order)
    "mc_20k": dict(atol=0.012),  # Monte Carlo frequencies, n=20000: ~4 standard errors
    "mc_5k": dict(atol=0.03),  # Monte Carlo frequencies, n=5000: ~4 standard errors
    "alpha_limit": dict(atol=0.01),  # log Z / alpha at alpha=200 -> Viterbi: O(log #segs / alpha)
    # --- attention and models ------------------------------------------------------------------
    "attention_fp32": dict(rtol=1e-4, atol=1e-5),  # float32 attention vs float64 NumPy reference
    "reorder_fp32": dict(rtol=1e-5, atol=1e-5),  # float32: same math, other op order (decode)
    "reorder_fp32_abs": dict(atol=1e-5),  # as reorder_fp32, absolute only
    # Must-differ checks (``assert not np.allclose``): a change must move outputs by more.
    "differs": dict(atol=1e-3),  # np.allclose's default rtol=1e-5 is kept
    "differs_fine": dict(atol=1e-4),  # np.allclose's default rtol=1e-5 is kept
    # --- EMO loss --------------------------------------------------------------------------------
    "lp64": dict(atol=1e-8, rtol=0),  # float64 closed form vs POT's LP solver (its own tolerance)
    "finite_diff64": dict(rtol=1e-6, atol=1e-9),  # float64 central differences: O(h^2) error
    "zero_sum64": dict(atol=1e-12),  # float64 identity: gradient rows sum to zero
    "loss_fp32": dict(atol=1e-6, rtol=1e-6),  # float32 O(1) loss vs float64 reference
    "loss_fp32_abs": dict(atol=1e-6, rtol=0),  # as loss_fp32, absolute only
    "saturation_fp32": dict(atol=1e-6),  # float32 softmax saturated at logits 1e4: exact 0/1
    "bf16_rel": dict(rtol=1e-2),  # bfloat16 logits (8-bit mantissa) vs float32, relative only
    # --- float32 training runs compared across layouts, devices, restarts -----------------
    "train_fp32": dict(rtol=1e-4, atol=1e-6),  # reduction-order rounding compounds over steps
    "train_fp32_params": dict(rtol=1e-4, atol=1e-5),  # as train_fp32, on the trained parameters
    "shard_loss_fp32": dict(rtol=1e-5),  # float32 loss, 1 vs 4 shards: reduction order
    "shard_grad_norm_fp32": dict(rtol=1e-4),  # float32 global grad norm: squares summed per shard
    "resume_fp32": dict(rtol=1e-6, atol=1e-7),  # float32 resumed vs uninterrupted training run
    # --- quanta, MAD, evaluation ---------------------------------------------------------------
    "polyfit64": dict(rtol=1e-8),  # float64 least-squares slopes vs polyfit or planted values
    "zeta_scipy64": dict(rtol=1e-13),  # float64 Hurwitz zeta vs scipy: both near machine precision
    "zeta_series64": dict(rtol=1e-12),  # float64 Hurwitz zeta vs a Euler-Maclaurin series
    "asymptotic": dict(rtol=0.01),  # leading-order asymptotic form vs simulation at n >= 100
    "lstsq_fp32": dict(rtol=1e-5),  # float32 least-squares power-law fit of exact data
    "scipy64": dict(rtol=1e-10),  # float64 log-density vs scipy.stats
    "em_weights": dict(atol=0.02),  # EM on a finite sample: 25 weights of 1/25 within 0.02
    "flow_roundtrip_fp32": dict(rtol=1e-4, atol=1e-4),  # float32: 4 layers, scales up to e^2
    "histogram64": dict(atol=1e-12),  # float64 normalised histograms vs the mauve package
    "mean_fp32": dict(rtol=1e-5),  # float32 means (bootstrap, accuracies) vs float64 NumPy
}

# Scalar factors that scale a tolerance computed in the test.
MC_COV_REL = 0.05  # Monte Carlo, 40000 draws: a component covariance within 5% of its value
BOOTSTRAP_SE_FRAC = 0.3  # bootstrap interval ends within 0.3 standard errors of mean +- 1.96 se
