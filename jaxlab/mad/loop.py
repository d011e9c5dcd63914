"""The generic self-consuming loop: generation t fits a model to real and synthetic data.

Generation 1 fits the model to ``n_init`` real samples R_1 (no bias). Generation t ≥ 2 first
draws ``n_syn`` synthetic samples S_t from G_{t−1} with bias λ, then fits G_t on D_t:

* ``fully_synthetic``: D_t = pool;
* ``augment``: D_t = a fixed real set (the first ``n_real`` rows of R_1) + pool;
* ``fresh``: D_t = ``n_real`` new real samples + pool;

where the pool is S_t (``replace``), S_{t−K+1..t} (``last_k``, K = ``k_last``) or S_2..S_t
(``accumulate``). The pool is a fixed-size buffer of generations with a 0/1 mask passed to the
model's weighted fit, so shapes stay static under ``jit`` and ``vmap``.

The kind may be static (a name) or traced (an index), see :func:`run_loop`.

A model is any hashable object with ``fit(x_ND, w_N, *, key) -> params`` and
``sample(params, num, lam, *, key) -> x_ND`` (:class:`jaxlab.mad.GaussianModel`,
:class:`jaxlab.mad.MixtureModel`, :class:`jaxlab.mad.flow.FlowModel`). :func:`run_loop` runs one
chain; vmap it over keys (and λ) at the call site, and shard the chain axis with
:func:`jaxlab.sharding.shard_population`.

References: Alemohammad et al. (2023), "Self-Consuming Generative Models Go MAD",
arXiv:2307.01850, §4–6 and Appendix G; Su Jianlin (2023), https://kexue.fm/archives/9687.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float, Int

KINDS = ("fully_synthetic", "augment", "fresh")
POOLS = ("replace", "accumulate", "last_k")


def kind_index(kind: str) -> int:
    """Position of ``kind`` in :data:`KINDS` (a traced loop kind for :func:`run_loop`)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return KINDS.index(kind)


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Sizes and pool of a loop (hashable: a static argument). The kind is an argument of
    :func:`run_loop`, so that loops of different kinds can share one compiled program.

    Attributes:
      generations: G, fitted generations t = 1..G (G_1 is the real-data fit).
      n_init: Real samples of G_1.
      n_syn: Synthetic samples drawn from G_{t−1} at each t ≥ 2.
      n_real: Real samples in D_t (fresh each generation, or the fixed first rows of R_1 for
        ``augment``); ignored by a static ``fully_synthetic`` kind.
      pool: One of :data:`POOLS`.
      k_last: K for ``pool="last_k"``.
    """

    generations: int = 10
    n_init: int = 100
    n_syn: int = 100
    n_real: int = 0
    pool: str = "replace"
    k_last: int = 1

    def __post_init__(self):
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.generations < 1 or self.n_init < 1 or self.n_syn < 1:
            raise ValueError("generations, n_init and n_syn must be >= 1")
        if not 0 <= self.n_real <= self.n_init:
            raise ValueError(f"n_real must be in [0, n_init = {self.n_init}], got {self.n_real}")
        if self.pool == "last_k" and self.k_last < 1:
            raise ValueError(f"k_last must be >= 1, got {self.k_last}")

    @property
    def slots(self) -> int:
        """Generations of synthetic samples the pool holds."""
        return {"replace": 1, "last_k": self.k_last, "accumulate": max(self.generations - 1, 1)}[
            self.pool
        ]


def run_loop(
    model,
    config: LoopConfig,
    kind: str | Int[ArrayLike, ""],
    lam: Float[ArrayLike, ""],
    sample_real: Callable[[int, Array], Float[Array, "N D"]],
    metric: Callable[..., dict],
    *,
    key: Array,
    return_params: bool = False,
):
    """Runs one chain of the loop for ``config.generations`` generations (``lax.scan``).

    Args:
      model: A hashable model with ``fit`` and ``sample`` (see the module docstring).
      config: The loop's sizes and pool.
      kind: A :data:`KINDS` name (static), or its index (:func:`kind_index`, traced and
        vmappable: every kind then carries an ``n_real`` real part, weighted 0 when fully
        synthetic, so fully synthetic loops see exactly ``n_syn`` synthetic samples either way).
      lam: Sampling bias λ used from t = 2 on (vmappable).
      sample_real: ``sample_real(num, key) -> x_ND`` draws from the true distribution.
      metric: ``metric(params, lam, key) -> dict`` of arrays, evaluated on every G_t.
      key: PRNG key; generation t uses ``fold_in(key, t)``.
      return_params: Also return the stacked params of G_1..G_G.

    Returns:
      ``metrics`` (each leaf with a leading G axis), or ``(metrics, params)``.
    """
    static = isinstance(kind, str)
    if static:
        kind_index(kind)
    if (not static or kind != "fully_synthetic") and config.n_real < 1:
        raise ValueError(f"n_real must be >= 1 for kind {kind!r}, got {config.n_real}")
    k_first = jax.random.fold_in(key, 1)
    k_real, k_fit, k_metric = jax.random.split(k_first, 3)
    real_init = sample_real(config.n_init, k_real)
    dtype, dim = real_init.dtype, real_init.shape[1]
    params = model.fit(real_init, jnp.ones((config.n_init,), dtype), key=k_fit)
    first = metric(params, lam, k_metric)
    slots = config.slots
    pool = jnp.zeros((slots, config.n_syn, dim), dtype)
    mask = jnp.zeros((slots,), dtype)
    fixed_real = real_init[: config.n_real]

    def step(carry, t):
        params, pool, mask = carry
        k_syn, k_real, k_fit, k_metric = jax.random.split(jax.random.fold_in(key, t), 4)
        slot = (t - 2) % slots
        pool = pool.at[slot].set(model.sample(params, config.n_syn, lam, key=k_syn))
        mask = mask.at[slot].set(1)
        x = pool.reshape(slots * config.n_syn, dim)
        w = jnp.repeat(mask, config.n_syn, total_repeat_length=slots * config.n_syn)
        if static and kind != "fully_synthetic":
            real = fixed_real if kind == "augment" else sample_real(config.n_real, k_real)
            x = jnp.concatenate([real, x])
            w = jnp.concatenate([jnp.ones((config.n_real,), dtype), w])
        elif not static:
            is_fresh = jnp.asarray(kind) == kind_index("fresh")
            real = jnp.where(is_fresh, sample_real(config.n_real, k_real), fixed_real)
            has_real = (jnp.asarray(kind) != kind_index("fully_synthetic")).astype(dtype)
            x = jnp.concatenate([real, x])
            w = jnp.concatenate([jnp.full((config.n_real,), has_real, dtype), w])
        params = model.fit(x, w, key=k_fit)
        out = metric(params, lam, k_metric)
        return (params, pool, mask), (out, params) if return_params else out

    ts = jnp.arange(2, config.generations + 1)
    _, rest = jax.lax.scan(step, (params, pool, mask), ts)
    stack = lambda a, b: jnp.concatenate([a[None], b])
    if return_params:
        outs, ps = rest
        return jax.tree.map(stack, first, outs), jax.tree.map(stack, params, ps)
    return jax.tree.map(stack, first, rest)


def _draw_stats_1d(mean, var, m: int, key):
    """Exact law of the statistics (count, Σx, Σx²) of m i.i.d. draws of N(mean, var), O(1).

    x̄ ~ N(mean, var/m) and Σ(x − x̄)² ~ var·χ²_{m−1} = var·2·Gamma((m−1)/2), independent
    (Cochran's theorem); then Σx = m x̄ and Σx² = Σ(x − x̄)² + m x̄².
    """
    k_mean, k_scatter = jax.random.split(key)
    dtype = jnp.result_type(mean)
    xbar = mean + jnp.sqrt(var / m) * jax.random.normal(k_mean, (), dtype)
    if m > 1:
        scatter = var * 2.0 * jax.random.gamma(k_scatter, (m - 1) / 2, (), dtype)
    else:
        scatter = jnp.zeros((), dtype)
    return jnp.stack([jnp.asarray(m, dtype), m * xbar, scatter + m * xbar * xbar])


def _fit_stats_1d(stats, ddof: int):
    count, total, sumsq = stats[0], stats[1], stats[2]
    mean = total / count
    return mean, (sumsq - count * mean * mean) / (count - ddof)


def run_loop_stats_1d(
    config: LoopConfig,
    kind: str,
    lam: Float[ArrayLike, ""],
    *,
    key: Array,
    estimator: str = "unbiased",
    dtype=None,
) -> dict:
    """The 1-D Gaussian loop of :func:`run_loop` run on sufficient statistics: O(1) a generation.

    A Gaussian fit reads a sample only through (count, Σx, Σx²), and for m i.i.d. draws of
    N(μ, σ²) these have an exact law that costs two scalar draws, not m:

        x̄ ~ N(μ, σ²/m),   Σ(x − x̄)² ~ σ² χ²_{m−1},   independent.

    Every set the loop fits (R_1, each synthetic S_t drawn with variance λσ²_{t−1}, fresh real
    sets, the fixed real part of ``augment``: the first ``n_real`` rows of R_1, drawn as its own
    block) is replaced by its statistics; pools add them up. So each chain has the same law as
    :func:`run_loop` with :class:`jaxlab.mad.GaussianModel` and truth N(0, 1), whatever
    ``n_init``, ``n_syn`` and ``n_real`` (the fully synthetic replace loop is
    :func:`jaxlab.mad.exact_chain_1d`); the random streams differ, so chains are equal in law,
    not draw for draw. Key layout as :func:`run_loop` (generation t uses ``fold_in(key, t)``).

    Args:
      config: The loop's sizes and pool (:class:`LoopConfig`).
      kind: A :data:`KINDS` name (static).
      lam: Sampling bias λ from t = 2 on (vmappable).
      key: PRNG key.
      estimator: ``"unbiased"`` (1/(m − 1)) or ``"mle"`` (1/m) variance, as
        :class:`jaxlab.mad.GaussianModel`.
      dtype: Float dtype (default: float64 under x64, else float32).

    Returns:
      ``{"mu": [G], "var": [G]}``, the fitted mean and variance of G_1..G_G.

    References: Alemohammad et al. (2023), arXiv:2307.01850, Appendix A; Su Jianlin (2023),
    https://kexue.fm/archives/9687.
    """
    kind_index(kind)
    if estimator not in ("unbiased", "mle"):
        raise ValueError(f"estimator must be 'unbiased' or 'mle', got {estimator!r}")
    if kind != "fully_synthetic" and config.n_real < 1:
        raise ValueError(f"n_real must be >= 1 for kind {kind!r}, got {config.n_real}")
    ddof = 1 if estimator == "unbiased" else 0
    dtype = jnp.result_type(float) if dtype is None else dtype
    lam = jnp.asarray(lam, dtype)
    zero, one = jnp.zeros((), dtype), jnp.ones((), dtype)
    k_real, _, _ = jax.random.split(jax.random.fold_in(key, 1), 3)
    if kind == "augment":  # R_1 = the fixed real rows + the rest, two independent blocks
        k_fixed, k_rest = jax.random.split(k_real)
        fixed = _draw_stats_1d(zero, one, config.n_real, k_fixed)
        rest = config.n_init - config.n_real
        real_init = fixed + (_draw_stats_1d(zero, one, rest, k_rest) if rest else 0.0)
    else:
        fixed = None
        real_init = _draw_stats_1d(zero, one, config.n_init, k_real)
    first = _fit_stats_1d(real_init, ddof)
    slots = config.slots

    def step(carry, t):
        (mu, var), pool, mask = carry
        k_syn, k_fresh, _, _ = jax.random.split(jax.random.fold_in(key, t), 4)
        slot = (t - 2) % slots
        pool = pool.at[slot].set(_draw_stats_1d(mu, lam * var, config.n_syn, k_syn))
        mask = mask.at[slot].set(1)
        data = jnp.sum(mask[:, None] * pool, axis=0)
        if kind == "augment":
            data = data + fixed
        elif kind == "fresh":
            data = data + _draw_stats_1d(zero, one, config.n_real, k_fresh)
        params = _fit_stats_1d(data, ddof)
        return (params, pool, mask), params

    init = (first, jnp.zeros((slots, 3), dtype), jnp.zeros((slots,), dtype))
    _, (mus, vars_) = jax.lax.scan(step, init, jnp.arange(2, config.generations + 1))
    return {
        "mu": jnp.concatenate([first[0][None], mus]),
        "var": jnp.concatenate([first[1][None], vars_]),
    }
