# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # EMO: what an earth-mover cost does to a language-model loss
#
# Ren et al., arXiv:2310.04691 (ICLR 2024); Su Jianlin, https://kexue.fm/archives/9797.
# With cost $C_{ij} = 1 - \hat e_i^\top \hat e_j$ from the row-normalised LM head, the transport
# cost to a one-hot target is $\mathrm{EMO} = 1 - \langle \sum_i p_i \hat e_i, \hat e_t\rangle$.
# Everything below calls `jaxlab.emo`; the fine-tuning experiment is
# `jaxlab run configs/emo_finetune.py:quick --workdir runs/emo_finetune`.

# %%
import os

QUICK = os.environ.get("JAXLAB_QUICK") == "1"

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxlab import data, emo, train
from jaxlab.models import lm_config

# %% [markdown]
# ## 1. A cost from a trained head: near-synonym bytes cost less
#
# Train the tiny byte LM briefly with cross-entropy and read its head. Bytes that the model uses
# in the same contexts (digits, vowels, brackets) get nearby head rows, hence a small cost.

# %%
steps = 150 if QUICK else 1500
cfg = lm_config(num_layers=2, embed_dim=64, num_heads=4, mlp_dim=256, train_len=64)
tcfg = train.TrainConfig(batch_size=16, seq_len=64, num_steps=steps, warmup_steps=20, log_every=50)
corpus = data.load_corpus(data.DataConfig(max_bytes=1_000_000))
out = os.environ.get("JAXLAB_NOTEBOOK_OUT", "/tmp")
fit = train.fit(cfg, tcfg, corpus, f"{out}/emo_notebook", metrics_file=False, name="emo notebook")
cost_emb = emo.cost_embedding(fit.model.head_embeddings())
cost = np.asarray(emo.transport_cost(cost_emb))

groups = {
    "digits": b"0123456789",
    "vowels": b"aeiou",
    "consonants": b"bcdfgklmnprst",
    "brackets": b"()[]{}",
}
names = list(groups)
block = np.array(
    [[cost[np.ix_(list(groups[a]), list(groups[b]))].mean() for b in names] for a in names]
)
print("mean cost between groups (rows/cols:", names, ")")
print(np.round(block, 3))
# Rare bytes keep near-initial head rows, so only bytes seen often are candidates.
common = np.flatnonzero(np.bincount(corpus.train, minlength=256) >= 200)
for ch in b"e3(":
    cand = common[common != ch]
    order = cand[np.argsort(cost[ch, cand])][:5]
    print(f"cheapest substitutes for {chr(ch)!r}:", [chr(int(i)) for i in order])

# %%
fig, ax = plt.subplots(figsize=(4.5, 3.8))
im = ax.imshow(block, cmap="viridis")
ax.set_xticks(range(len(names)), names, rotation=30)
ax.set_yticks(range(len(names)), names)
ax.set_title("mean transport cost 1 - cos")
fig.colorbar(im)
plt.show()

# %% [markdown]
# ## 2. The same mistake costs less when it is a near-synonym
#
# Put probability 0.9 on a wrong byte. Cross-entropy only sees $p_t = 0.1$; EMO charges
# $0.9\,C_{jt}$, small when $j$ is a near-synonym of the target.

# %%
target = ord("3")
for wrong in (ord("7"), ord("e"), ord("(")):
    z = jnp.full((256,), -30.0).at[wrong].set(jnp.log(0.9)).at[target].set(jnp.log(0.1))
    ce = float(emo.cross_entropy_from_logits(z, jnp.array(target)))
    val = float(emo.emo_from_logits(z, jnp.array(target), cost_emb))
    print(f"target '3', mass 0.9 on {chr(wrong)!r}: CE {ce:.3f} nats, EMO {val:.3f}")

# %% [markdown]
# ## 3. The gradient picture
#
# On logits, $\partial\mathrm{EMO}/\partial z_j = p_j(C_{jt} - \mathrm{EMO})$ while cross-entropy
# gives $p_j - \delta_{jt}$. Move mass from the target to one wrong byte: CE's push stays
# O(1) even for a confident mistake; EMO's vanishes as $p$ saturates on any single token
# (Su's point: pure EMO cannot fix confident mistakes, hence the mix with MLE).

# %%
p_wrong = np.linspace(0.01, 0.999, 60)
rows = []
for wrong in (ord("7"), ord("(")):
    g_ce, g_emo = [], []
    for pw in p_wrong:
        z = jnp.full((256,), -40.0).at[wrong].set(jnp.log(pw)).at[target].set(jnp.log(1 - pw))
        lab = jnp.array(target)
        g_ce.append(float(jnp.linalg.norm(jax.grad(emo.cross_entropy_from_logits)(z, lab))))
        g_emo.append(float(jnp.linalg.norm(jax.grad(emo.emo_from_logits)(z, lab, cost_emb))))
    rows.append((wrong, g_ce, g_emo))

fig, ax = plt.subplots(figsize=(5.5, 3.6))
for wrong, _, g_emo in rows:
    ax.plot(p_wrong, g_emo, label=f"EMO, wrong byte {chr(wrong)!r}")
ax.plot(p_wrong, rows[0][1], "k--", label="CE (any wrong byte)")
ax.set_xlabel("probability on the wrong byte")
ax.set_ylabel("|gradient w.r.t. logits|")
ax.legend()
plt.show()
ce_end, emo_near, emo_far = rows[0][1][-1], rows[0][2][-1], rows[1][2][-1]
print(f"at p_wrong = 0.999: CE |g| = {ce_end:.3f}, EMO |g| = {emo_near:.4f} / {emo_far:.4f}")

# %% [markdown]
# ## 4. Mixing with MLE: the value hides the mix
#
# The paper's recipe ½(MLE + sg(MLE/EMO)·EMO) has value MLE exactly; only the gradient changes
# (½∇MLE + ½(MLE/EMO)∇EMO). The effective weights are what a log should show.

# %%
z = jax.random.normal(jax.random.key(0), (8, 256)) * 3
labels = jax.random.randint(jax.random.key(1), (8,), 0, 256)
for name in ("paper_emo", "mode2_fixed"):
    loss, m = emo.emo_loss(z, labels, cost_emb, preset=emo.PRESETS[name])
    print(name, {"loss": round(float(loss), 4), **{k: round(float(v), 4) for k, v in m.items()}})
