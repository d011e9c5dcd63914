"""The γ sweep of the quanta model: per-γ derived laws and fitted exponents α_N, α_D, α_S.

Everything here is written for one γ (one row of a :func:`jaxlab.quanta.simulate_grid` output)
and vmapped over γ at the call site. Exponents are returned positive (L − a ∝ x^{-α}).

* :func:`data_laws` evaluates the floor-rule data law at D = S·B (the steps law), the explicit
  asymptotic L(D) and n(D) on one γ's D grid.
* :func:`fit_exponents` fits α_N (exact tail and finite K), α_D (floor rule and Poisson seed mean,
  per τ, with bootstrap intervals) and α_S in the windows of the experiment.

References:
  Michaud, Liu, Girit, Tegmark, "The Quantization Model of Neural Scaling", NeurIPS 2023,
  https://arxiv.org/abs/2303.13506; Su Jianlin (2023), https://kexue.fm/archives/9607.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from jaxlab.array_types import Array, ArrayLike, Float, Int, PRNGKeyArray
from jaxlab.quanta.theory import (
    data_for_quanta,
    fit_power_law,
    learned_from_data,
    loss_of_data,
    loss_of_data_asymptotic,
    loss_of_steps,
)

# Michaud et al. (2023), arXiv:2303.13506, appendix figure of the sparse-parity fits, read off
# to ±0.005: γ -> (α_N, α_S, α_D). The reference row that simulations are set beside.
PAPER_FITS = {
    0.1: (0.229, 0.228, 0.275),
    0.2: (0.283, 0.267, 0.274),
    0.3: (0.339, 0.307, 0.297),
    0.4: (0.378, 0.346, 0.308),
    0.5: (0.454, 0.376, 0.335),
    0.6: (0.503, 0.422, 0.357),
    0.7: (0.571, 0.468, 0.373),
    0.8: (0.608, 0.482, 0.404),
}


class DataLaws(NamedTuple):
    """:func:`data_laws` of one γ on its D grid."""

    steps: Float[Array, " D"]  # S = D / B
    loss_steps: Float[Array, " D"]  # loss_of_steps(S, B)
    loss_data_at_steps: Float[Array, " D"]  # loss_of_data(S·B), equal to loss_steps by definition
    loss_explicit: Float[Array, " D"]  # (b−a)/(γζ)·(τζ/D)^{γ/(γ+1)}
    learned: Float[Array, " D"]  # n(D) at τ


def data_laws(
    gamma: Real[ArrayLike, ""],
    data: Real[ArrayLike, " D"],
    *,
    batch: int,
    tau: float,
    a: float,
    b: float,
) -> DataLaws:
    """The steps law at S = D/B, the explicit data law and n(D) for one γ (vmap over γ)."""
    data = jnp.asarray(data)
    steps = data / batch
    per_d = lambda f: jax.vmap(f)(data)
    return DataLaws(
        steps=steps,
        loss_steps=jax.vmap(lambda s: loss_of_steps(s, batch, gamma, tau, a, b))(steps),
        loss_data_at_steps=jax.vmap(lambda s: loss_of_data(s * batch, gamma, tau, a, b))(steps),
        loss_explicit=per_d(lambda d: loss_of_data_asymptotic(d, gamma, tau, a, b)),
        learned=per_d(lambda d: learned_from_data(d, gamma, tau)),
    )


class Exponents(NamedTuple):
    """:func:`fit_exponents` of one γ; ``_U`` fields have one entry per τ."""

    alpha_N: Float[Array, ""]  # exact tail
    alpha_N_finite: Float[Array, ""]  # finite-K normalisation
    alpha_S: Float[Array, ""]  # steps law at the reference τ
    alpha_D_U: Float[Array, " U"]  # floor rule
    alpha_D_poisson_U: Float[Array, " U"]  # Poisson counts, seed mean
    poisson_lo_U: Float[Array, " U"]  # bootstrap interval of alpha_D_poisson
    poisson_hi_U: Float[Array, " U"]
    points_U: Int[Array, " U"]  # D points in the window
    window_lo_U: Float[Array, " U"]  # D window per τ
    window_hi_U: Float[Array, " U"]


def fit_exponents(
    gamma: Real[ArrayLike, ""],
    num_params: Real[ArrayLike, " N"],
    loss_params: Real[ArrayLike, " N"],
    loss_params_finite: Real[ArrayLike, " N"],
    data: Real[ArrayLike, " D"],
    loss_data: Real[ArrayLike, "D U"],
    loss_data_poisson: Real[ArrayLike, "D U seeds"],
    loss_steps: Real[ArrayLike, " D"],
    *,
    taus: tuple[float, ...],
    tau_ref: int,
    a: float,
    params_window: tuple[float, float],
    quanta_window: tuple[float, float],
    batch: int,
    num_bootstrap: int,
    key: PRNGKeyArray,
) -> Exponents:
    """Fitted exponents of one γ row of a simulated grid.

    Args:
      gamma: γ of this row.
      num_params: N grid; ``loss_params`` (exact tail) and ``loss_params_finite`` on it.
      data: D grid of this γ; ``loss_data`` (floor rule) and ``loss_data_poisson`` on it.
      loss_steps: Steps law at S = D / ``batch``.
      taus: Learning thresholds, the U axis of the data losses.
      tau_ref: Index into ``taus`` of the τ whose window the steps law uses.
      a: Loss floor, subtracted before the log–log fits.
      params_window: Inclusive N window of the α_N fits.
      quanta_window: (n_min, n_max): per τ the D window is the D with n(D) in it.
      batch: B of the steps law.
      num_bootstrap: Resamples of the Poisson-slope interval.
      key: PRNG key of the bootstrap.

    Returns:
      :class:`Exponents`, positive (the interval bounds swap with the sign).
    """
    fit = lambda x, y, window, **kw: fit_power_law(x, jnp.asarray(y) - a, window=window, **kw)
    alpha_N = -fit(num_params, loss_params, params_window).exponent
    alpha_N_finite = -fit(num_params, loss_params_finite, params_window).exponent
    keys = jax.random.split(key, len(taus))
    rows = []
    for u, tau in enumerate(taus):
        window = tuple(data_for_quanta(n, gamma, tau) for n in quanta_window)
        det = fit(data, loss_data[:, u], window)
        mean = jnp.mean(loss_data_poisson[:, u], axis=-1)
        poi = fit(data, mean, window, num_bootstrap=num_bootstrap, key=keys[u])
        rows.append((-det.exponent, -poi.exponent, -poi.ci_high, -poi.ci_low, poi.num_points,
                     window[0], window[1]))  # fmt: skip
    cols = [jnp.stack(c) for c in zip(*rows, strict=True)]
    s_window = (cols[5][tau_ref] / batch, cols[6][tau_ref] / batch)
    alpha_S = -fit(jnp.asarray(data) / batch, loss_steps, s_window).exponent
    return Exponents(alpha_N, alpha_N_finite, alpha_S, *cols)


def increasing(values: Sequence[float] | Real[ArrayLike, " G"]) -> bool:
    """Whether ``values`` increase strictly along the sweep."""
    values = np.asarray(values)
    return bool(np.all(values[1:] > values[:-1]))


__all__ = ["PAPER_FITS", "DataLaws", "data_laws", "Exponents", "fit_exponents", "increasing"]
