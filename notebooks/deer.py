# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Nonlinear RNNs in parallel: DEER, quasi-DEER, Picard and Su's constant-A sweeps
#
# A recurrence $y_t = f(y_{t-1}, x_t)$ looks inherently sequential. DEER (Lim et al., ICLR 2024)
# treats the whole trajectory as the unknown of a fixed-point problem and linearises around the
# current guess $y^{(k)}$:
#
# $$y^{(k+1)}_t = J_t\,y^{(k+1)}_{t-1} + f(y^{(k)}_{t-1}, x_t) - J_t\,y^{(k)}_{t-1}.$$
#
# The evaluations of $f$ and $J_t$ are parallel over $t$, and the linear recurrence is a prefix
# scan (`jax.lax.associative_scan`, depth $O(\log T)$). $J_t = \partial f/\partial y$ gives
# Newton; its diagonal gives quasi-DEER; $J_t = 0$ is a Picard/Jacobi sweep; a constant matrix is
# Su Jianlin's perturbation reading (kexue.fm/archives/9783). Whatever $J_t$ is, if
# $y^{(k)}_{t-1}$ is exact then so is $y^{(k+1)}_t$: after $k$ sweeps the first $k$ states are
# exact, so every mode finishes in at most $T$ sweeps.
#
# Run as a script: `JAXLAB_QUICK=1 MPLBACKEND=Agg python notebooks/deer.py`.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxlab import deer
from jaxlab.deer import cells

QUICK = os.environ.get("JAXLAB_QUICK") == "1"
jax.config.update("jax_enable_x64", True)
T = 300 if QUICK else 2000
N = 4

# %% [markdown]
# ## One random tanh-RNN, every mode
#
# Spectral scale 1.0, float64, tolerance 1e-10. `deer` returns the states and how many sweeps it
# needed; `sequential` is the `lax.scan` reference.

# %%
key = jax.random.key(0)
params = cells.init_tanh_rnn(N, N, scale=1.0, dtype=jnp.float64, key=key)
xs = jax.random.normal(jax.random.fold_in(key, 1), (T, N), jnp.float64)
y0 = jnp.zeros(N, jnp.float64)
ref = deer.sequential(cells.tanh_rnn, y0, xs, params)
for mode in ["newton", "quasi", "picard", "su"]:
    res = deer.deer(
        cells.tanh_rnn,
        y0,
        xs,
        params,
        method=deer.method_from_name(mode, A=params.W, scan="sequential"),
        atol=1e-10,
        rtol=0.0,
    )
    err = float(jnp.max(jnp.abs(res.value - ref)))
    its, ok = int(res.iterations), bool(res.converged)
    print(f"{mode:7s} sweeps {its:5d}  converged {ok}  error {err:.1e}")

# %% [markdown]
# ## The convergence picture
#
# Left: the error of each iterate against `lax.scan` (Newton is quadratic, the others linear).
# Right: where along the sequence iterate $k$ is still wrong; the exact prefix grows by at least
# one state per sweep (the black line is $t = k$).

# %%
K = 60
traces = {
    mode: np.asarray(
        deer.deer_trace(
            cells.tanh_rnn,
            y0,
            xs,
            params,
            num_iters=K,
            method=deer.method_from_name(mode, A=params.W, scan="sequential"),
        )
    )
    for mode in ["newton", "quasi", "picard", "su"]
}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
for mode, tr in traces.items():
    err = np.max(np.abs(tr - np.asarray(ref)[None]), axis=2)  # [K, T]
    ax1.semilogy(np.arange(1, K + 1), np.maximum(err.max(axis=1), 1e-17), label=mode)
    first_wrong = [(np.argmax(e > 1e-12) if (e > 1e-12).any() else T) for e in err]
    ax2.plot(np.arange(1, K + 1), first_wrong, label=mode)
ax2.plot([1, K], [1, K], "k--", lw=1)
ax1.set(xlabel="sweep k", ylabel="max error vs lax.scan")
ax2.set(xlabel="sweep k", ylabel="first inexact step", yscale="log")
ax1.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Speed: a CPU loses, a GPU should win
#
# On a CPU the sequential scan is cheap and the associative scan does about twice the work plus
# dense $D \times D$ products, so DEER loses. The table in `BENCHMARKS.md`
# (`python benchmarks/deer.py --quick`, 2-core CPU) has DEER 5-27x *slower* than `lax.scan` for a
# GRU with batch 16, T = 1000. The reference implementation reports 18x (T = 1k), 138x (10k) and
# 1,122x (100k) *faster* on a V100 for hidden size 1. A small side-by-side run on this machine:

# %%
gp = cells.init_gru(4, 4, key=key)
xb = jax.random.normal(key, (16, 1000 if QUICK else 10_000, 4), jnp.float32)
z = jnp.zeros(4, jnp.float32)
run_scan = jax.jit(jax.vmap(lambda x: deer.sequential(cells.gru, z, x, gp)))
run_deer = jax.jit(jax.vmap(lambda x: deer.deer(cells.gru, z, x, gp).value))
for name, fn in [("lax.scan", run_scan), ("DEER newton", run_deer)]:
    out = jax.block_until_ready(fn(xb))
    t0 = time.perf_counter()
    for _ in range(3):
        out = jax.block_until_ready(fn(xb))
    print(f"{name:12s} {1e3 * (time.perf_counter() - t0) / 3:8.2f} ms on {jax.devices()[0]}")
print("max abs difference:", float(jnp.max(jnp.abs(run_scan(xb) - run_deer(xb)))))
