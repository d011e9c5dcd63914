# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # RoPE as a base-β number, and how to extend it
#
# Su Jianlin, 《Transformer升级之路》 10–12 (kexue.fm/archives/9675, /9706, /9708). Everything
# below calls `jaxlab.rope` and `jaxlab.attention_scale`; the 8× extrapolation experiment is
# `jaxlab run configs/rope_extrapolation.py:quick --workdir runs/rope_extrapolation`.

# %%
import os

QUICK = os.environ.get("JAXLAB_QUICK") == "1"

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxlab import attention_scale, rope
from jaxlab.rope import rerope

# %% [markdown]
# ## 1. RoPE's angles are the digits of the position
#
# Pair $m$ rotates by $n/\beta^{m-1}$ with $\beta = b^{2/d}$. For $d = 8$ and $b = 10^4$,
# $\beta = 10$: the floor of each angle, mod 10, is a decimal digit of $n$.

# %%
d, base, n = 8, 1e4, 1234
beta = base ** (2 / d)
angles = n * np.asarray(rope.base_inv_freq(d, base), np.float64)
print("beta =", beta)
print("angles n/beta^(m-1):", angles)
print("floor(angle) mod beta:", np.floor(angles) % beta)
print("beta_digits:", np.asarray(rope.beta_digits(float(n), beta, d // 2)))

# %% [markdown]
# ## 2. The scalings as per-digit multipliers (d = 128, k = 8)
#
# NTK-aware keeps the lowest digit ($g_0 = 1$) and interpolates the highest exactly like PI;
# NTK-fixed divides once more by λ; NTK-mixed moves more of the extension onto the low digits.

# %%
d, k = 128, 8.0
f0 = np.asarray(rope.base_inv_freq(d, 1e4), np.float64)
kinds = {
    "PI": rope.RopeScaling("linear", factor=k),
    "NTK-aware": rope.RopeScaling("ntk_aware", factor=k),
    "NTK-old": rope.RopeScaling("ntk_old", factor=k),
    "NTK-fixed": rope.RopeScaling("ntk_fixed", factor=k),
    "NTK-mixed b=0.625": rope.RopeScaling("ntk_mixed", factor=k, mix_b=0.625),
    "YaRN (L0=4096)": rope.RopeScaling("yarn", factor=k, original_max_position_embeddings=4096),
    "llama3 (L0=8192)": rope.RopeScaling("llama3", factor=k, original_max_position_embeddings=8192),
}
fig, ax = plt.subplots(figsize=(6, 4))
m = np.array([1, 2, 16, 32, 48, 64])
for name, scaling in kinds.items():
    g = np.asarray(rope.rope_frequencies(scaling, d, 1e4)[0], np.float64) / f0
    ax.plot(np.arange(1, d // 2 + 1), g, label=name)
    print(f"{name:20s}", np.round(g[m - 1], 4))
ax.set_yscale("log")
ax.set_xlabel("pair m")
ax.set_ylabel("multiplier g")
ax.legend(fontsize=7)
plt.show()
print("NTK-aware base:", 1e4 * k ** (d / (d - 2)))

# %% [markdown]
# ## 3. Dynamic NTK with a traced length; YaRN's magnitude
#
# HF's dynamic scaling uses the effective $k = s\ell/L_0 - (s-1)$; the frequencies are a
# `jnp.where` of the current length, so one compilation serves every length.

# %%
dyn = rope.RopeScaling("dynamic", factor=8.0, max_position_embeddings=4096)
for ell in (2048, 4096, 8192, 32768):
    f = rope.rope_frequencies(dyn, 128, 1e4, seq_len=jnp.int32(ell))[0]
    print(ell, "effective base", float(f[1]) ** (-64.0))
print("YaRN mu(s):", [round(rope.yarn_mscale(s), 4) for s in (2, 4, 8, 16, 32, 40)])

# %% [markdown]
# ## 4. ReRoPE: relative positions clipped at the window
#
# ReRoPE logits equal RoPE logits at the relative position $\min(i-j, w)$; Leaky compresses
# beyond $w$ by $1/k$. Below: logits of one random query/key pair repeated over positions.

# %%
length, d = 64, 16
rng = np.random.default_rng(0)
q = jnp.asarray(np.tile(rng.standard_normal(d), (length, 1)), jnp.float32)
inv_freq = rope.base_inv_freq(d, 100.0)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
for ax, (title, kw) in zip(
    axes,
    [
        ("RoPE", dict(window=length)),
        ("ReRoPE w=16", dict(window=16)),
        ("Leaky w=16, k=4", dict(window=16, leaky_k=4.0)),
    ],  # fmt: skip
    strict=True,
):
    logits = rerope.rerope_logits(q, q, inv_freq=inv_freq, **kw)
    ax.imshow(np.where(np.isfinite(logits), logits, np.nan))
    ax.set_title(title)
plt.show()

# %% [markdown]
# ## 5. log n: pre-training and post-hoc factors (L = 512)

# %%
pos = jnp.arange(4096, dtype=jnp.int32)
fig, ax = plt.subplots(figsize=(5, 3.5))
for mode in ("pretrain", "posthoc"):
    ax.plot(np.asarray(pos) + 1, attention_scale.logn_factor(pos, 512, mode), label=mode)
ax.set_xscale("log", base=2)
ax.set_xlabel("n = position + 1")
ax.set_ylabel("q multiplier")
ax.legend()
plt.show()
print("log n† at n = 4096, L = 512:", float(attention_scale.logn_factor(pos, 512, "posthoc")[-1]))

# %% [markdown]
# ## 6. The 8× extrapolation experiment
#
# Quick mode only prints the command (the run takes about a minute on 2 CPU cores).

# %%
if QUICK:
    print("jaxlab run configs/rope_extrapolation.py:quick --workdir runs/rope_extrapolation")
else:
    import importlib.util
    import pathlib

    from jaxlab.experiments import rope_extrapolation

    spec = importlib.util.spec_from_file_location("cfg", "configs/rope_extrapolation.py")
    cfg_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg_module)
    results = rope_extrapolation.run(
        cfg_module.get_config("quick"), pathlib.Path("runs/rope_extrapolation_notebook")
    )
    for title, table in results["tables"].items():
        print(title)
        print(table)
