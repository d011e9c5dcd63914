# %% [markdown]
# # The quantization model of neural scaling
#
# Su Jianlin's post (kexue.fm/archives/9607) and Michaud et al. (2023) explain power-law scaling
# by discrete "quanta" of ability used with Zipf frequencies p_k ∝ k^{-(γ+1)} and learned
# most-frequent first. **Notation:** Su's γ = the paper's α = the reference script's
# `alpha` − 1. This notebook runs the theory with `jaxlab.quanta` in float64: the exact
# (Hurwitz-zeta) tail, the finite-K bias, the data law with a learning threshold τ (deterministic
# and with Poisson counts), and the `quanta_theory` experiment. Run it with
# `JAXLAB_QUICK=1 MPLBACKEND=Agg .venv/bin/python notebooks/quanta.py`.

# %%
import os
import pathlib
import tempfile

QUICK = os.environ.get("JAXLAB_QUICK") == "1"

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxlab import launch, quanta
from jaxlab.experiments import RUNNERS

jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## 1. Loss after learning the top n quanta
#
# L(n) = a + (b − a) T_γ(n) with the exact tail T_γ(n) = ζ(γ+1, n+1)/ζ(γ+1). Normalising the
# frequencies over K quanta instead gives a tail ∝ n^{-γ} − K^{-γ}, which bends the log–log
# curve. Below: fitted slopes over n ∈ [10, 1e4] for both.

# %%
gammas = jnp.array([0.083, 0.2, 0.4, 0.8])
n = jnp.geomspace(10, 1e4, 40)
exact = jax.vmap(lambda g: jax.vmap(lambda m: quanta.tail_mass(m, g))(n))(gammas)
finite = jax.vmap(lambda g: jax.vmap(lambda m: quanta.tail_mass_finite(m, g, 1e7))(n))(gammas)
for g, e, f in zip(gammas, exact, finite, strict=True):
    se = quanta.fit_power_law(n, e).exponent
    sf = quanta.fit_power_law(n, f).exponent
    print(f"γ = {float(g):5.3f}: exact slope {float(se):+.4f}, K = 1e7 slope {float(sf):+.4f}")

fig, ax = plt.subplots(figsize=(5, 3.5))
for g, e, f in zip(gammas, exact, finite, strict=True):
    (line,) = ax.loglog(n, e, label=f"γ = {float(g)}")
    ax.loglog(n, f, "--", color=line.get_color())
ax.set(
    xlabel="quanta learned n", ylabel="tail mass T(n)", title="exact (solid) vs K = 1e7 (dashed)"
)
ax.legend()
plt.show()

# %% [markdown]
# ## 2. Data: quantum k is learned once it has been seen τ times
#
# With D samples quantum k is seen D p_k times (floor rule) or a Poisson(D p_k) number of times.
# n(D) = ⌊(D/(τ ζ(γ+1)))^{1/(γ+1)}⌋, so L(D) ∝ D^{-γ/(γ+1)}: data has the smaller exponent.

# %%
gamma, tau = 0.4, 10.0
data = jax.vmap(lambda m: quanta.data_for_quanta(m, gamma, tau))(jnp.geomspace(20, 1000, 16))
floor = jax.vmap(lambda d: quanta.loss_of_data(d, gamma, tau))(data)
keys = jax.random.split(jax.random.key(0), (4, data.shape[0]))
poisson = jax.jit(
    jax.vmap(
        jax.vmap(lambda d, k: quanta.loss_of_data_poisson(d, gamma, tau, num_quanta=8192, key=k)),
        in_axes=(None, 0),
    )
)(data, keys)
fit_floor = quanta.fit_power_law(data, floor)
fit_poisson = quanta.fit_power_law(data, poisson.mean(0), num_bootstrap=200, key=jax.random.key(1))
print(f"theory {-gamma / (gamma + 1):+.4f}")
print(f"floor rule {float(fit_floor.exponent):+.4f}")
print(
    f"Poisson (4 seeds) {float(fit_poisson.exponent):+.4f} "
    f"[{float(fit_poisson.ci_low):+.4f}, {float(fit_poisson.ci_high):+.4f}]"
)

# %% [markdown]
# ## 3. The whole grid in one program, and the experiment
#
# `quanta.simulate_grid` vmaps γ × N × D × τ × seeds; the `quanta_theory` experiment fits every
# slope and checks them against the theory (its REPORT section has the tables and plots).

# %%
config = launch.load_config("quanta_theory:quick" if QUICK else "quanta_theory")
workdir = pathlib.Path(tempfile.mkdtemp(prefix="quanta_theory_"))
results = RUNNERS["quanta_theory"](config, workdir)
for c in results["claims"]:
    print(f"{str(c['agree']):5}  {c['name']}: expected {c['expected']}, measured {c['measured']}")
print(next(iter(results["tables"].values())))
print("plots in", workdir, results["plots"])

# %% [markdown]
# ## 4. Trained networks (multitask sparse parity)
#
# The `sparse_parity` experiment trains the paper's toy task and fits the same exponents with
# `quanta.fit_power_law`: `jaxlab run configs/sparse_parity.py:quick --workdir runs/sparse_parity`.
# With finitely many subtasks K the tail is ∝ n^-γ − K^-γ, so L(N) steepens as the learned count
# n nears K: `quanta.parity_sweep.finite_k_alpha` turns learned counts into the predicted slope
# (the experiment feeds it the counts it measures).

# %%
params = np.geomspace(1e3, 1e5, 12)
learned = np.round(params / 1e3).astype(int)  # n ∝ N: 1 ... 100 subtasks learned
for num_tasks in (120, 500, 10**6):
    alpha = quanta.parity_sweep.finite_k_alpha(params, learned, num_tasks, 1.4, (1e3, 1e5))
    print(f"K = {num_tasks:>7}: predicted α_N = {alpha:.3f} (γ = 0.4)")
