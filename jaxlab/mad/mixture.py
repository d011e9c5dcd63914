"""Gaussian mixtures: the 2-D grid truth, biased sampling, and an EM fit in JAX.

Bias λ scales every component covariance (λ = 1 unbiased, λ → 0 returns the component means),
the mixture analogue of sampling N(μ, λΣ). EM (Dempster, Laird and Rubin 1977) starts from
k-means++ seeds (Arthur and Vassilvitskii 2007) and runs a fixed number of iterations:

    r_ik ∝ π_k N(x_i; μ_k, Σ_k),  π_k = Σ_i w_i r_ik / Σ_i w_i,  μ_k = Σ_i w_i r_ik x_i / N_k,
    Σ_k = Σ_i w_i r_ik (x_i − μ_k)(x_i − μ_k)ᵀ / N_k + ε I,

with sample weights w_i ∈ {0, 1} (the loop driver's pool mask).

References: Alemohammad et al. (2023), arXiv:2307.01850, appendix (2-D 25-mode mixture).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.array_types import Array, ArrayLike, Float
from jaxlab.mad.gaussian import sqrt_factor


class Mixture(NamedTuple):
    """Parameters of Σ_k π_k N(μ_k, Σ_k)."""

    weights: Float[Array, " K"]
    means: Float[Array, "K D"]
    covs: Float[Array, "K D D"]


def grid_mixture(
    per_side: int = 5, spacing: float = 2.0, std: float = 0.2, dtype=jnp.float32
) -> Mixture:
    """The paper's 2-D grid mixture: per_side² equal-weight isotropic modes centred at 0."""
    ticks = (jnp.arange(per_side, dtype=dtype) - (per_side - 1) / 2) * spacing
    gx, gy = jnp.meshgrid(ticks, ticks, indexing="ij")
    means = jnp.stack([gx.ravel(), gy.ravel()], axis=-1)
    k = means.shape[0]
    covs = jnp.broadcast_to(jnp.eye(2, dtype=dtype) * std**2, (k, 2, 2))
    return Mixture(jnp.full((k,), 1 / k, dtype), means, covs)


def sample_mixture(
    params: Mixture, num: int, lam: Float[ArrayLike, ""] = 1.0, *, key: Array
) -> Float[Array, "N D"]:
    """Draws ``num`` samples of Σ_k π_k N(μ_k, λΣ_k) (component covariances scaled by λ)."""
    k_comp, k_z = jax.random.split(key)
    dtype = params.means.dtype
    comp = jax.random.categorical(k_comp, jnp.log(params.weights), shape=(num,))
    factors = jax.vmap(sqrt_factor)(params.covs)
    z = jax.random.normal(k_z, (num, params.means.shape[1]), dtype)
    noise = jnp.einsum("nij,nj->ni", factors[comp], z)
    return params.means[comp] + jnp.sqrt(jnp.asarray(lam, dtype)) * noise


def component_log_probs(params: Mixture, x: Float[ArrayLike, "N D"]) -> Float[Array, "N K"]:
    """ln π_k + ln N(x_i; μ_k, Σ_k) for every sample and component (Cholesky per component)."""
    x = jnp.asarray(x)
    d = x.shape[1]

    def one(mean, cov):
        chol = jnp.linalg.cholesky(cov)
        diff = x - mean[None, :]
        sol = jax.scipy.linalg.solve_triangular(chol, diff.T, lower=True)
        logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
        return -0.5 * (jnp.sum(sol * sol, axis=0) + logdet + d * jnp.log(2 * jnp.pi))

    return jax.vmap(one, out_axes=1)(params.means, params.covs) + jnp.log(params.weights)[None, :]


def log_prob(params: Mixture, x: Float[ArrayLike, "N D"]) -> Float[Array, " N"]:
    """ln p(x_i) of the mixture."""
    return jax.nn.logsumexp(component_log_probs(params, x), axis=1)


def kmeans_pp_init(
    x: Float[ArrayLike, "N D"], weights: Float[ArrayLike, " N"], num: int, *, key: Array
) -> Float[Array, "K D"]:
    """Greedy k-means++ seeds: each next center is the best of 2 + ⌊ln K⌋ candidates drawn
    ∝ w_i · (squared distance to the nearest seed), "best" lowering the weighted potential most.

    Plain D² sampling often seeds two centers in one of many well-separated clusters; the greedy
    variant (as in scikit-learn) makes that rare.
    """
    x = jnp.asarray(x)
    w = jnp.asarray(weights, x.dtype)
    trials = 2 + int(np.log(num))
    keys = jax.random.split(key, num)
    first = x[jax.random.categorical(keys[0], jnp.log(w))]
    centers = jnp.zeros((num, x.shape[1]), x.dtype).at[0].set(first)
    nearest = jnp.sum(jnp.square(x - first[None, :]), axis=1)

    def body(j, carry):
        centers, nearest = carry
        idx = jax.random.categorical(keys[j], jnp.log(w * nearest), shape=(trials,))
        cand = x[idx]
        dist = jnp.sum(jnp.square(x[None, :, :] - cand[:, None, :]), axis=-1)
        new = jnp.minimum(nearest[None, :], dist)
        best = jnp.argmin(jnp.sum(w[None, :] * new, axis=1))
        return centers.at[j].set(cand[best]), new[best]

    centers, _ = jax.lax.fori_loop(1, num, body, (centers, nearest))
    return centers


def fit_mixture_em(
    x: Float[ArrayLike, "N D"],
    weights: Float[ArrayLike, " N"] | None = None,
    *,
    num_components: int,
    num_iters: int = 50,
    reg_covar: float = 1e-6,
    key: Array,
) -> Mixture:
    """Fits a full-covariance Gaussian mixture by ``num_iters`` EM steps from k-means++ seeds.

    Args:
      x: Samples.
      weights: Per-sample weights (0 drops a row; default all ones).
      num_components: K (static).
      num_iters: EM iterations (static, no early stop, so vmapped fits stay in lockstep).
      reg_covar: ε added to every covariance diagonal (keeps collapsed components invertible).
      key: PRNG key for the seeds.
    """
    x = jnp.asarray(x)
    n, d = x.shape
    w = jnp.ones((n,), x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    means = kmeans_pp_init(x, w, num_components, key=key)
    dist = jnp.sum(jnp.square(x[:, None, :] - means[None, :, :]), axis=-1)
    spread = jnp.sum(w * jnp.min(dist, axis=1)) / (jnp.sum(w) * d)
    eye = jnp.eye(d, dtype=x.dtype)
    covs = jnp.broadcast_to(eye * (spread + reg_covar), (num_components, d, d))
    params = Mixture(jnp.full((num_components,), 1 / num_components, x.dtype), means, covs)

    def step(params, _):
        logp = component_log_probs(params, x)
        resp = jnp.exp(logp - jax.nn.logsumexp(logp, axis=1, keepdims=True)) * w[:, None]
        nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(x.dtype).tiny
        means = resp.T @ x / nk[:, None]
        diff = x[:, None, :] - means[None, :, :]
        covs = jnp.einsum("nk,nki,nkj->kij", resp, diff, diff) / nk[:, None, None]
        covs = covs + reg_covar * eye[None, :, :]
        return Mixture(nk / jnp.sum(nk), means, covs), None

    params, _ = jax.lax.scan(step, params, None, length=num_iters)
    return params


@dataclasses.dataclass(frozen=True)
class MixtureModel:
    """EM-fitted Gaussian mixture for :func:`jaxlab.mad.run_loop` (hashable, static)."""

    num_components: int = 25
    num_iters: int = 50
    reg_covar: float = 1e-6

    def fit(self, x: Float[Array, "N D"], weights: Float[Array, " N"], *, key: Array) -> Mixture:
        return fit_mixture_em(
            x,
            weights,
            num_components=self.num_components,
            num_iters=self.num_iters,
            reg_covar=self.reg_covar,
            key=key,
        )

    def sample(self, params: Mixture, num: int, lam, *, key: Array) -> Float[Array, "N D"]:
        return sample_mixture(params, num, lam, key=key)
