# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # N = ab + c: the smallest a + b + c
#
# Su Jianlin, 《自然数集中 N = ab + c 时 a + b + c 的最小值》 (2023), https://kexue.fm/archives/9775.
# Given an integer N >= 0, find a, b, c >= 0 with N = ab + c and S = a + b + c as small as
# possible. This notebook derives the exact O(N^{1/4}) algorithm that `jaxlab.ab_plus_c`
# implements, shows why the obvious guess fails (N = 130), and why Su's first O(sqrt N)
# algorithm is subtly wrong (N = 129). Run: `JAXLAB_QUICK=1 MPLBACKEND=Agg python notebooks/abc.py`.

# %%
import math
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxlab import ab_plus_c as abc
from jaxlab.ab_plus_c import vectorized as abc_jax

QUICK = os.environ.get("JAXLAB_QUICK") == "1"
N_SWEEP = 20_000 if QUICK else 200_000

# %% [markdown]
# ## The trade-off
#
# Put c = N - ab. Then
#
# $$S = N - ab + a + b = N + 1 - (a - 1)(b - 1)
#    = N + 1 - (\sqrt{ab} - 1)^2 + (\sqrt a - \sqrt b)^2,$$
#
# so we want ab close to N *and* a close to b. (Su's eq. (1) drops the "+1"; harmless for the
# argument, wrong as a test oracle.) Check the identity and the missing "+1" at N = 130:

# %%
N, a, b = 130, 10, 13
c = N - a * b
print("S =", a + b + c, "  N + 1 - (a-1)(b-1) =", N + 1 - (a - 1) * (b - 1))
lhs = N + 1 - (math.sqrt(a * b) - 1) ** 2 + (math.sqrt(a) - math.sqrt(b)) ** 2
print("sqrt form:", lhs, "  without the +1 (eq. (1) as printed):", lhs - 1)

# %% [markdown]
# ## The naive guess and the counterexample N = 130
#
# The obvious candidate is a, b around sqrt N: the better of (r, r) and (r, r + 1), r = isqrt(N).
# For N = 130: (11, 11, 9) with S = 31, since (11, 12) would need 132 > 130. But (10, 13, 0)
# gives S = 23. Brute force over a (with b = floor(N / a), which is optimal for fixed a):

# %%
print("naive:", abc.naive_guess(130), "  optimum:", abc.min_abc(130))
for a in range(1, math.isqrt(130) + 1):
    b, c = divmod(130, a)
    print(f"a={a:2d} b={b:3d} c={c:2d} S={a + b + c}")

# %% [markdown]
# ## Bounds
#
# For N >= 4, S* >= ceil(2 sqrt N): with p = a + b, if p <= 2 sqrt N then
# S >= p + N - p^2/4 >= 2 sqrt N (concave in p), otherwise S >= p > 2 sqrt N.
# An upper bound comes from Algorithm C below: S* <= U(N) = 2 sqrt N + 2 + sqrt(1 + 4 sqrt N).

# %%
for N in (101, 130, 1000, 2023, 10**12 + 1):
    print(N, abc.lower_bound(N), abc.min_abc(N).s, round(abc.upper_bound(N), 2))

# %% [markdown]
# ## Su's Algorithm A, O(sqrt N), and its bug
#
# For fixed a the best b is floor(N/a), so S(a) = (a - 1){N/a} + a + N/a. With {N/a} = 0 the
# minimum is at a = sqrt N, with {N/a} -> 1 at a = sqrt(N/2); Su scans a in (sqrt(N/2), sqrt N].
# That misses optima (k, 2k, r) at N = 2k^2 + r: a = k sits exactly on (or just below)
# sqrt(N/2). N = 129 = 2·8^2 + 1:

# %%
print("open interval:", abc.algorithm_a(129, "open"), "  optimum:", abc.min_abc(129))
print("failures of the open interval, 4 <= N <= 2e5:", abc.ALGORITHM_A_OPEN_FAILURES)
print("fixed (start at floor(sqrt(N/2))):", abc.algorithm_a(129, "fixed"))

# %% [markdown]
# ## Algorithm C: p = a + b, q = b - a
#
# With p = a + b, q = b - a (same parity), 4c = 4N - p^2 + q^2 and S = p + c, i.e.
# 4S = 4N + q^2 + 4 - (p - 2)^2. For fixed p the best q is the smallest one with
# q^2 >= p^2 - 4N and the right parity, q = ceil(sqrt(p^2 - 4N)) (+1). Start at
# p = floor(2 sqrt N) (q = p mod 2) and increase p while p <= best S (since S >= p). All square
# roots are exact integer ones. The walk for N = 130:

# %%
N = 130
p = math.isqrt(4 * N)
q = p % 2
print(f"p={p} q={q} S={p + (4 * N - p * p + q * q) // 4}  (baseline)")
best = p + (4 * N - p * p + q * q) // 4
while (p := p + 1) <= best:
    m = p * p - 4 * N
    q = math.isqrt(m) + (math.isqrt(m) ** 2 < m)
    q += (q ^ p) & 1
    s = p + (q * q - m) // 4
    best = min(best, s)
    print(f"p={p} q={q} S={s}  (a, b) = ({(p - q) // 2}, {(p + q) // 2})")
print("min_abc:", abc.min_abc(N, return_stats=True))

# %% [markdown]
# ## Exhaustive check and the gap S* - ceil(2 sqrt N)
#
# The vmapped JAX path (int64, x64 enabled locally) against vectorised brute force.

# %%
with jax.enable_x64(True):
    out = jax.jit(jax.vmap(abc_jax.min_abc_jax))(np.arange(N_SWEEP + 1, dtype=np.int64))
    s_jax = np.asarray(out.s)
s_star = abc.s_star_range(0, N_SWEEP + 1)
print("min_abc_jax == brute force for all N <=", N_SWEEP, ":", bool((s_jax == s_star).all()))
n = np.arange(101, N_SWEEP + 1)
gap = s_star[101:] - np.array([abc.lower_bound(int(k)) for k in n])
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.scatter(n, gap, s=0.3, alpha=0.3)
ax.set(xlabel="N", ylabel="S* - ceil(2 sqrt N)")
plt.show()

# %% [markdown]
# ## Iterations
#
# The proof bound gives about 2 N^{1/4} steps ("bound-based"); the integer stopping rule that
# `min_abc` uses takes about S* - ceil(2 sqrt N) + 1, far fewer. Large N run on Python integers.

# %%
for e in (6, 12, 20, 30) if QUICK else (6, 12, 20, 30, 36):
    N = 10**e + 12345 * 10 ** (e // 3) + 7
    t = abc.min_abc(N, return_stats=True)
    n14 = N**0.25
    print(f"N=1e{e}: bound-based/N^1/4 = {abc.bound_iterations(N) / n14:.4f}, integer rule = "
          f"{t.iterations} steps, S* - ceil(2 sqrt N) = {t.s - abc.lower_bound(N)}")  # fmt: skip
