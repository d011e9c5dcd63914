# %% [markdown]
# # Self-consuming generative loops ("Model Autophagy Disorder")
#
# Su Jianlin's post (kexue.fm/archives/9687) and Alemohammad et al. (2023, arXiv:2307.01850):
# a generative model trained on its own samples loses diversity, and its mean drifts, even when
# it has perfect capacity. This notebook uses `jaxlab.mad`: the exact 1-D Gaussian laws, the
# three loop types in d dimensions, and an EM mixture on the 2-D 25-mode grid. Run it with
# `JAXLAB_QUICK=1 MPLBACKEND=Agg .venv/bin/python notebooks/mad.py`; the full experiments are
# `jaxlab run configs/mad_gaussian.py:quick` and `jaxlab run configs/mad_learned.py:quick`.

# %%
import os

QUICK = os.environ.get("JAXLAB_QUICK") == "1"

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxlab import mad

CHAINS = 2_000 if QUICK else 20_000
GENERATIONS = 100 if QUICK else 200

# %% [markdown]
# ## 1. The 1-D fully synthetic loop: the median collapses, the mean does not
#
# With n samples per generation, σ_t² = λ σ_{t−1}² χ²_{n−1}/(n−1), so ln σ_t² is a random walk
# with drift ln λ + ψ((n−1)/2) − ln((n−1)/2) ≈ ln λ − 1/(n−1): the median decays like
# exp(t[ψ − ln]) while E σ_t² = λ^{t−1} (G_1 fit to real data, bias from t = 2). The mean μ_t is
# a random walk with Var μ_t = t/n at λ = 1.

# %%
with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(0), CHAINS)
    mu, var = jax.jit(jax.vmap(lambda k: mad.exact_chain_1d(100, 1.0, GENERATIONS, key=k)))(keys)
    t = np.arange(1, GENERATIONS + 1)
    predicted = np.asarray(mad.median_var(t, 100, 1.0))
mu, var = np.asarray(mu), np.asarray(var)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].semilogy(t, np.median(var, 0), label="median σ²")
axes[0].semilogy(t, var.mean(0), label="mean σ²")
axes[0].semilogy(t, predicted, "k--", label="exp(t[ψ − ln])")
axes[0].legend()
axes[1].plot(t, mu.var(0), label="Var μ_t")
axes[1].plot(t, t / 100, "k--", label="t/n")
axes[1].legend()
plt.show()
print(f"t = {GENERATIONS}: median σ² {np.median(var[:, -1]):.3f} vs {predicted[-1]:.3f}")

# %% [markdown]
# ## 2. Three loops in d dimensions
#
# Fully synthetic, synthetic augmentation (a fixed real set) and fresh data (new real samples
# each generation). The loop kind is a traced index, so all kinds and both λ run as one vmapped
# program. The fresh-data loop converges to a limit that does not depend on G_1's data.

# %%
d = 20 if QUICK else 100
cfg = mad.LoopConfig(generations=20 if QUICK else 40, n_init=100, n_syn=900, n_real=100)
kinds = jnp.repeat(jnp.arange(3), 2)
lams = jnp.tile(jnp.array([1.0, 0.8]), 3)
with jax.enable_x64(True):
    run = lambda k, kind, lam: mad.run_loop(
        mad.GaussianModel(), cfg, kind, lam, mad.standard_normal(d), mad.gaussian_summary, key=k
    )
    keys = jax.random.split(jax.random.key(1), 6)
    out = jax.jit(jax.vmap(run))(keys, kinds, lams.astype(jnp.float64))
fig, ax = plt.subplots(figsize=(5, 3.5))
for c in range(6):
    ax.semilogy(np.asarray(out["w2"][c]), label=f"{mad.KINDS[int(kinds[c])]}, λ={float(lams[c])}")
ax.set(xlabel="generation", ylabel="W_2² to N(0, I)")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# ## 3. An EM mixture on the 25-mode grid, fully synthetic
#
# Bias λ < 1 shrinks every component; precision (quality) holds while recall (diversity) falls.

# %%
truth = mad.grid_mixture()
reference = mad.sample_mixture(truth, 1000, key=jax.random.key(2))
model = mad.MixtureModel(num_components=25, num_iters=30)
metric = mad.sample_quality(model, reference, truth.means, radius=0.6, min_count=5)
real = lambda num, k: mad.sample_mixture(truth, num, key=k)
cfg = mad.LoopConfig(generations=5 if QUICK else 15, n_init=1000, n_syn=1000)
run = lambda k, lam: mad.run_loop(model, cfg, "fully_synthetic", lam, real, metric, key=k)
res = jax.jit(jax.vmap(run, in_axes=(None, 0)))(jax.random.key(3), jnp.array([1.0, 0.5]))
for i, lam in enumerate((1.0, 0.5)):
    print(
        f"λ = {lam}: precision {np.round(np.asarray(res['precision'][i]), 3)}, "
        f"recall {np.round(np.asarray(res['recall'][i]), 3)}, modes {np.asarray(res['modes'][i])}"
    )
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
for i, lam in enumerate((1.0, 0.5)):
    x = np.asarray(res["samples"][i, -1])
    axes[i].scatter(*np.asarray(reference).T, s=1, c="lightgray")
    axes[i].scatter(*x.T, s=1)
    axes[i].set_title(f"λ = {lam}, last generation")
plt.show()
