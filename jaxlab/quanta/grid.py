"""A whole quanta-model grid (γ × N × D × τ × seeds) as one vmapped, jit-able program.

Built from the single-configuration laws in :mod:`jaxlab.quanta`; the ``quanta_theory``
experiment jits :func:`simulate_grid` once and fits the slopes of every law from its output.

References:
  Michaud, Liu, Girit, Tegmark, "The Quantization Model of Neural Scaling", NeurIPS 2023,
  https://arxiv.org/abs/2303.13506; Su Jianlin (2023), https://kexue.fm/archives/9607.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import zeta
from jaxtyping import Real

from jaxlab import sharding
from jaxlab.array_types import Array, ArrayLike, Float
from jaxlab.quanta.theory import (
    learned_from_data,
    loss_of_parameters,
    loss_of_quanta,
    poisson_losses_for_capacities,
)


def _float(x, dtype=None) -> Array:
    return jnp.asarray(x, dtype=jnp.result_type(float) if dtype is None else dtype)


class QuantaGrid(NamedTuple):
    """Losses of :func:`simulate_grid`; axes: gamma, params, data, tau, seed (in that order)."""

    loss_params: Float[Array, "gamma params"]  # exact tail, unlimited data
    loss_params_finite: Float[Array, "gamma params"]  # normalised over num_quanta_finite quanta
    loss_data: Float[Array, "gamma data tau"]  # floor rule, unlimited parameters
    loss_data_poisson: Float[Array, "gamma data tau seed"]  # Poisson counts, unlimited parameters
    loss_joint: Float[Array, "gamma params data tau"]  # floor rule, n = min(n(N), n(D))
    loss_joint_poisson: Float[Array, "gamma params data tau seed"]  # Poisson, capacity n(N)


def simulate_grid(
    gamma: Real[ArrayLike, " gamma"],
    num_params: Real[ArrayLike, " params"],
    data: Real[ArrayLike, " data"] | Real[ArrayLike, "gamma data"],
    tau: Real[ArrayLike, " tau"],
    a: Real[ArrayLike, ""] = 0.0,
    b: Real[ArrayLike, ""] = 1.0,
    *,
    num_seeds: int,
    num_quanta_poisson: int,
    num_quanta_finite: Real[ArrayLike, ""] = 1e7,
    params_per_quantum: Real[ArrayLike, ""] = 1.0,
    max_truncation: float = 1e-3,
    dtype=None,
    key: Array,
) -> QuantaGrid:
    """Simulates the whole γ × N × D × τ × seed grid by nested vmaps (jit it at the call site).

    The Poisson counts for (γ_i, D_j, seed s) use ``jax.random.split(key, (G, D, S))[i, j, s]``
    and are shared by every τ and N, so ``loss_data_poisson[i, j, u, s]`` equals
    ``loss_of_data_poisson(data[j], gamma[i], tau[u], a, b, num_quanta=num_quanta_poisson,
    key=keys[i, j, s])`` and the joint array the same call with ``capacity=⌊N/C⌋``.

    Args:
      gamma: Zipf exponents γ, shape (G,).
      num_params: Parameter counts N, shape (P,).
      data: Sample counts D, shape (D,) shared by every γ, or (G, D) for a grid per γ (e.g.
        D chosen so that n(D) spans the same range for each γ); pass S·B for the steps law.
      tau: Learning thresholds τ ≥ 1, shape (U,).
      a: Loss floor of a learned quantum.
      b: Loss of an unlearned quantum.
      num_seeds: S, static.
      num_quanta_poisson: K quanta whose counts are sampled (static; see
        :func:`loss_of_data_poisson` for the NaN returned when K is too small).
      num_quanta_finite: K of the biased finite-K normalisation in ``loss_params_finite``.
      params_per_quantum: C in n = ⌊N/C⌋.
      max_truncation: See :func:`loss_of_data_poisson`.
      dtype: Float dtype (float64 under x64 by default).
      key: PRNG key.

    Returns:
      A :class:`QuantaGrid` of losses.

    Examples:
      >>> grid = jax.jit(simulate_grid, static_argnames=("num_seeds", "num_quanta_poisson"))(
      ...     jnp.array([0.4]), jnp.array([10.0, 100.0]), jnp.array([1e4]), jnp.array([4.0]),
      ...     num_seeds=2, num_quanta_poisson=1000, key=jax.random.key(0))
      >>> grid.loss_joint_poisson.shape
      (1, 2, 1, 1, 2)
    """
    dt = jnp.result_type(float) if dtype is None else dtype
    gamma, num_params, data, tau = (_float(x, dt) for x in (gamma, num_params, data, tau))
    data_GD = jnp.broadcast_to(data, (gamma.shape[0], data.shape[-1]))
    keys = jax.random.split(key, (gamma.shape[0], data.shape[-1], num_seeds))
    caps = jnp.floor(num_params / _float(params_per_quantum, dt))  # n(N), as quanta_of_parameters
    caps_C = jnp.concatenate([jnp.full((1,), jnp.inf, dt), caps])  # inf: unlimited N
    k = jnp.arange(1, num_quanta_poisson + 1, dtype=dt)
    p_GK = jax.vmap(lambda g: k ** -(g + 1) / zeta(g + 1, jnp.ones_like(g)))(gamma)
    # All counts in one flat vmap: nesting the sampler's while loops in 3 vmaps compiles slowly.
    lam_GDSK = jnp.broadcast_to(
        (data_GD[:, :, None] * p_GK[:, None, :])[:, :, None, :], keys.shape + k.shape
    )
    sample = lambda key_, lam: jax.random.poisson(key_, lam, dtype=jnp.int32)
    counts_GDSK = jax.vmap(sample)(keys.reshape(-1), lam_GDSK.reshape(-1, k.shape[0]))
    counts_GDSK = counts_GDSK.reshape(lam_GDSK.shape)

    def per_gamma(g, data_D, counts_DSK, p_K):
        by_params = lambda **kw: jax.vmap(
            lambda N: loss_of_parameters(N, g, a, b, params_per_quantum=params_per_quantum, **kw)
        )(num_params)
        of_quanta = jnp.vectorize(lambda n: loss_of_quanta(n, g, a, b, dtype=dt))

        def per_data(d, counts_SK):
            n_U = jax.vmap(lambda t: learned_from_data(d, g, t, dtype=dt))(tau)
            losses = poisson_losses_for_capacities
            per_seed = lambda counts_K: jax.vmap(
                lambda t: losses(counts_K, p_K, d, g, t, caps_C, a, b, max_truncation)
            )(tau)
            loss_UCS = jnp.moveaxis(jax.vmap(per_seed)(counts_SK), 0, -1)
            joint_PU = of_quanta(jnp.minimum(caps[:, None], n_U[None, :]))
            return of_quanta(n_U), joint_PU, loss_UCS[:, 0], jnp.swapaxes(loss_UCS[:, 1:], 0, 1)

        det_DU, joint_DPU, free_DUS, capped_DPUS = jax.vmap(per_data)(data_D, counts_DSK)
        return (
            by_params(dtype=dt),
            by_params(num_quanta=num_quanta_finite, dtype=dt),
            det_DU,
            free_DUS,
            jnp.swapaxes(joint_DPU, 0, 1),
            jnp.swapaxes(capped_DPUS, 0, 1),
        )

    return QuantaGrid(*jax.vmap(per_gamma)(gamma, data_GD, counts_GDSK, p_GK))


def simulate_grid_sharded(
    mesh: jax.sharding.Mesh, gammas, num_params, data_GD, taus, a, b, *, key, **static
) -> QuantaGrid:
    """``jit(simulate_grid)`` with the γ axis split over the ``data`` mesh axis.

    Sharded axis: γ (axis 0 of ``gammas``, ``data_GD`` and every output). ``simulate_grid``
    draws all Poisson counts in one vmap over the flattened (γ, D, seed) grid, and only the
    leading axis of that reshape keeps its sharding: with D sharded instead, XLA replicated the
    sampler on every device (checked in the compiled HLO on 4 CPU devices), with γ sharded each
    device samples its own γ rows. γ is padded to a multiple of the device count by
    ``sharding.pad_population`` (rows repeated), and the padding is sliced off: the keys are
    split from one key over the (γ, D, seed) grid in row-major order (threefry
    partitionable), so the first G rows are bit-identical to an unpadded, unsharded run.
    Without padding the outputs are NamedShardings with γ over ``data``.
    """
    data_GD = jnp.broadcast_to(data_GD, (len(gammas), np.shape(data_GD)[-1]))
    (gammas, data_GD), unpad = sharding.pad_population((gammas, data_GD), mesh, what="number of γ")
    sim = jax.jit(
        simulate_grid,
        static_argnames=("num_seeds", "num_quanta_poisson", "dtype"),
        out_shardings=sharding.batch_sharding(mesh),  # every QuantaGrid field: γ over data
    )
    return unpad(sim(gammas, num_params, data_GD, taus, a, b, key=key, **static))
