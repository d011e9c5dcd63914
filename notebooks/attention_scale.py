# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Attention scale: gradient maximisation, entropy invariance, and what simulation says
#
# Su Jianlin, 《从梯度最大化看Attention的Scale操作》 (kexue.fm/archives/9812) and
# 《从熵不变性看Attention的Scale操作》 (kexue.fm/archives/8823). Everything below calls
# `jaxlab.attention_scale`; the experiments are
# `jaxlab run configs/attention_scale.py:quick --workdir runs/attention_scale` and
# `jaxlab run configs/attention_extrapolation.py:quick --workdir runs/attn_extrap`.

# %%
import math
import os

QUICK = os.environ.get("JAXLAB_QUICK") == "1"

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxlab import attention_scale as ats

NUM_DRAWS = 1_000 if QUICK else 10_000

# %% [markdown]
# ## 1. The gradient identity
#
# For $p = \mathrm{softmax}(\alpha s)$,
# $\tfrac12\|\partial p/\partial s\|_1 = \alpha(1-\sum p_i^2)$.
# `jax.jacfwd` on one side, the closed form on the other (float64).

# %%
with jax.enable_x64(True):
    s = jax.random.normal(jax.random.key(0), (17,), jnp.float64)
    for alpha in (0.1, 1.0, 3.0):
        lhs = float(ats.softmax_jacobian_half_l1(s, jnp.float64(alpha)))
        rhs = float(ats.jacobian_objective(s, jnp.float64(alpha)))
        print(f"alpha={alpha}: jacfwd {lhs:.15f}  closed form {rhs:.15f}")

# %% [markdown]
# ## 2. Su's mean-field optimum α*(n)
#
# Normal scores: $f(\alpha) = \alpha(1 - e^{\alpha^2}/n)$, maximised where
# $\alpha^2 + \ln(1 + 2\alpha^2) = \ln n$. Cosine scores in $\mathbb R^d$ use the exact MGF of the
# cosine, computed in log space.

# %%
ns = np.array([64, 128, 512, 1024, 4096, 20000], np.float64)
with jax.enable_x64(True):
    a_normal = np.asarray(jax.vmap(ats.alpha_star_normal)(jnp.asarray(ns)))
    a_cos = np.asarray(jax.vmap(lambda n: ats.alpha_star_cosine(n, 128))(jnp.asarray(ns)))
for n, a, c in zip(ns, a_normal, a_cos, strict=True):
    print(
        f"n={int(n):6d}  α*={a:.3f} (0.84√ln n={0.84 * math.sqrt(math.log(n)):.3f})  "
        f"α*_cos={c:.2f} (3.5 ln n={3.5 * math.log(n):.2f})"
    )

# %% [markdown]
# ## 3. The exact objective has no interior maximum
#
# Simulating $\mathbb E[\alpha(1-\sum p^2)]$ with i.i.d. normal scores: the mean keeps rising to a
# plateau; the median peaks at α ≈ 5–8, far beyond the mean-field α* (grey line). Su's numbers are
# a property of his approximation; the qualitative advice (α = 1 is too small) survives.

# %%
alphas = jnp.arange(0.25, 12.01, 0.25, dtype=jnp.float32)
run_mc = jax.jit(ats.exact_objective_mc, static_argnames=("n", "num_draws"))
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, n in zip(axes, (64, 512, 4096), strict=True):
    mean, median = run_mc(alphas, n=n, num_draws=NUM_DRAWS, key=jax.random.key(n))
    ax.plot(alphas, mean, label="exact, mean")
    ax.plot(alphas, median, label="exact, median")
    ax.plot(alphas, ats.meanfield_objective_normal(alphas, float(n)), "--", label="mean field")
    ax.axvline(float(ats.alpha_star_normal(float(n))), color="gray", lw=0.8)
    ax.set_ylim(-0.5, 4.5)
    ax.set_title(f"n = {n}")
    ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# ## 4. Entropy invariance and the 0.24 constant
#
# With $\|q\| = \|k\| = \sqrt d$, $\lambda\,q\cdot k = t\cos\theta$ with $t = \lambda d$. The
# entropy-invariant scale $\log_{512}(n)/\sqrt d$ slows the growth of the entropy with $n$ only a
# little near the standard scale; the "0.24" is $-\tfrac12\ln\varphi$, the λ = 1 Laplace limit.

# %%
d = 64
grid = np.array([16, 64, 256, 1024, 4096])
rules = {
    "standard": ats.ScaleRule(),
    "entropy-invariant": ats.ScaleRule("logn"),
    "gradient-max α*(n)": None,
    "fixed α = 2.5": ats.ScaleRule("fixed", alpha=2.5),
}
fig, ax = plt.subplots(figsize=(5, 3.6))
for name, rule in rules.items():
    h = []
    for n in grid:
        r = rule or ats.ScaleRule("gradmax", n=float(n))
        t = float(ats.logit_scale(r, d, float(n))) * d
        h.append(float(ats.meanfield_entropy(float(n), t, d)))
    ax.plot(grid, h, "o-", label=name)
ax.plot(grid, np.log(grid), "k:", label="ln n")
ax.set_xscale("log")
ax.set_xlabel("n")
ax.set_ylabel("entropy (nats)")
ax.legend(fontsize=7)
plt.show()
with jax.enable_x64(True):
    per_dim = [float(ats.entropy_correction_per_dim(dd, dtype=jnp.float64)) for dd in (64, 128)]
    print("correction per dim at λ=1, d=64/128:", np.round(per_dim, 4))
    print("Laplace limit −½ ln φ =", float(ats.laplace_entropy_constant(jnp.float64)))

# %% [markdown]
# ## 5. Scale rules as config values
#
# Each rule is a frozen, hashable `ScaleRule`; `logit_scale` gives the per-row multiplier that
# `jaxlab.attention` applies (n = keys attended per causal row).

# %%
n_keys = jnp.arange(1, 9)
for rule in (
    ats.ScaleRule(),
    ats.ScaleRule("mup"),
    ats.ScaleRule("logn", base_len=4),
    ats.ScaleRule("gradmax", max_len=1024),
    ats.ScaleRule("yarn", factor=4.0),
    ats.ScaleRule("llama4", floor_scale=4.0),
):
    print(rule.to_dict(), np.round(np.asarray(ats.logit_scale(rule, 64, n_keys)), 4))
