# %% [markdown]
# # Unigram tokenization: Viterbi, exact sampling, and Su's biased v1 sampler
#
# A SentencePiece-compatible unigram tokenizer in JAX (`jaxlab.tokenizer`): lattice on the
# host, dynamic programs on the device. We check the exact samplers against enumeration on
# the spec's "abcd" toy, reproduce the bias of Su's first Viterbi Sampling
# (kexue.fm/archives/9768) that the follow-up post (kexue.fm/archives/9811) fixed, and compare
# ids with the `sentencepiece` package.
#
# Run: `JAXLAB_QUICK=1 MPLBACKEND=Agg .venv/bin/python notebooks/tokenizer.py`

# %%
import os
import tempfile
import time

QUICK = os.environ.get("JAXLAB_QUICK") == "1"

import jax
import matplotlib.pyplot as plt
import numpy as np
import sentencepiece

from jaxlab.tokenizer import reference, spm
from jaxlab.tokenizer.corpus import stdlib_split
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import from_pieces

N = 10_000 if QUICK else 100_000

# %% [markdown]
# ## The toy: every segmentation of "abcd"
#
# Counts a, b, c, d: 10; ab 6, bc 4, cd 6, abc 3, bcd 3, abcd 1 (log p = log count / 63).
# The exact law is P(w)^alpha / Z. FFBS and the one-pass sampler should match it; v1 should not.

# %%
toy = reference.toy_vocab()
tok = Tokenizer(from_pieces(toy))
print("log Z (alpha=1):", tok.log_partition(["abcd"], 1.0)[0], "spec: -3.055608")
exact = reference.exact_distribution("abcd", toy, 1.0)
freqs = {}
for method in ("ffbs", "online", "v1"):
    out = tok.tokenize(["abcd"] * N, alpha=1.0, key=jax.random.key(0), method=method)
    fit = reference.goodness_of_fit(out, exact)
    freqs[method] = fit["freqs"]
    print(
        f"{method:7s} chi-square p = {fit['pvalue']:.3g}, max |error| = {fit['max_abs_error']:.4f}"
    )

labels = ["|".join(w) for w in exact]
x = np.arange(len(labels))
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.bar(x - 0.3, list(exact.values()), 0.2, label="exact")
for j, m in enumerate(("ffbs", "online", "v1")):
    ax.bar(x + (j - 0.5) * 0.2, freqs[m], 0.2, label=m)
ax.set_xticks(x, labels, rotation=30)
ax.legend()
ax.set_title(f'"abcd", alpha = 1, {N} draws each')
plt.show()

# %% [markdown]
# ## v1's signature: three equally good candidates come out 1/4, 1/4, 1/2

# %%
three = {"a": -1.0, "bc": -2.0, "ab": -1.5, "c": -1.5, "abc": -3.0}
out = Tokenizer(from_pieces(three)).tokenize(
    ["abc"] * N, alpha=1.0, key=jax.random.key(1), method="v1"
)
print(np.array(reference.frequencies(out, [("abc",), ("a", "bc"), ("ab", "c")])) / N)

# %% [markdown]
# ## A SentencePiece model: identical ids, and sampling at several temperatures

# %%
train, test = stdlib_split(max_train_bytes=300_000 if QUICK else 3_000_000)
work = tempfile.mkdtemp()
with open(f"{work}/train.txt", "w") as f:
    f.write(train)
path = spm.train_sentencepiece(f"{work}/train.txt", f"{work}/sp", 2000 if QUICK else 8000)
sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
stok = Tokenizer(spm.from_sentencepiece(path))
lines = test.split("\n")[: 2000 if QUICK else 20000]
same = sum(a == b for a, b in zip(stok.encode(lines), sp.encode(lines), strict=True))
print(f"ids equal to SentencePiece on {same}/{len(lines)} lines")
line = "    def __init__(self, loop=None):"
for alpha in (None, 0.0, 0.1, 1.0):  # None: Viterbi
    key = None if alpha is None else jax.random.key(2)
    print(f"alpha={alpha!s:4}:", stok.tokenize([line], alpha=alpha, key=key)[0])

# %% [markdown]
# ## Entropy of the segmentation distribution and bytes per token against alpha

# %%
alphas = np.array([0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
sample_lines = lines[:500]
nbytes = len("\n".join(sample_lines).encode())
ent = [stok.entropy(sample_lines, a).sum() / nbytes for a in alphas]
bpt = [
    nbytes / sum(map(len, stok.encode(sample_lines, alpha=a, key=jax.random.key(3))))
    for a in alphas
]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
a1.semilogx(alphas, ent, "o-")
a1.set_xlabel("alpha")
a1.set_ylabel("segmentation entropy (nats / byte)")
a2.semilogx(alphas, bpt, "o-")
a2.axhline(nbytes / sum(map(len, stok.encode(sample_lines))), ls="--", color="k")
a2.set_xlabel("alpha")
a2.set_ylabel("bytes / token")
plt.show()

# %% [markdown]
# ## Speed, side by side (one process; a shared CPU makes these noisy; see benchmarks/)

# %%
for name, fn in {
    "SentencePiece Viterbi": lambda: sp.encode(lines, num_threads=1),
    "jaxlab Viterbi": lambda: stok.encode(lines),
    "SentencePiece FFBS 0.1": lambda: sp.encode(
        lines, enable_sampling=True, nbest_size=-1, alpha=0.1, num_threads=1
    ),
    "jaxlab FFBS 0.1": lambda: stok.encode(lines, alpha=0.1, key=jax.random.key(4)),
}.items():
    fn()
    t0 = time.perf_counter()
    fn()
    mb_s = len("\n".join(lines).encode()) / (time.perf_counter() - t0) / 1e6
    print(f"{name:24s} {mb_s:.2f} MB/s")
