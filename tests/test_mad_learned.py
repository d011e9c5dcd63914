"""Tests for the learned models of jaxlab.mad: the EM Gaussian mixture and the RealNVP flow.

References: scipy's multivariate normal density, the known grid truth, numerical integration of
the flow density on a grid, and the exact inverse of the couplings. Statistical tests fix their
seed and state their false-failure rate.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx
from numerics import MC_COV_REL, NAMED

from jaxlab import mad
from jaxlab.mad import flow


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_mixture_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(3, 2))
    a = rng.normal(size=(3, 2, 2))
    covs = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(2)
    weights = np.array([0.2, 0.5, 0.3])
    x = rng.normal(size=(7, 2))
    ref = np.log(
        sum(w * scipy.stats.multivariate_normal(m, c).pdf(x)
            for w, m, c in zip(weights, means, covs, strict=True))
    )  # fmt: skip
    got = mad.log_prob(mad.Mixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs)), x)
    np.testing.assert_allclose(got, ref, **NAMED["scipy64"])


def test_sample_mixture_scales_component_covariances_by_lambda(key):
    # 40,000 draws: component counts pass a chi-square test (false failure 0.1 %); the
    # within-component covariance is λΣ_k to 5 % (>= 7 standard errors).
    truth = mad.grid_mixture(per_side=2, spacing=10.0, std=0.5, dtype=jnp.float64)
    truth = truth._replace(weights=jnp.array([0.1, 0.2, 0.3, 0.4]))
    lam = 0.5
    x = np.asarray(mad.sample_mixture(truth, 40_000, lam, key=key))
    label = np.argmin(((x[:, None] - np.asarray(truth.means)[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(label, minlength=4)
    assert scipy.stats.chisquare(counts, 40_000 * np.asarray(truth.weights)).pvalue > 1e-3
    for k in range(4):
        cov = np.cov(x[label == k].T)
        np.testing.assert_allclose(cov, lam * 0.25 * np.eye(2), atol=MC_COV_REL * lam * 0.25)


def test_em_recovers_the_grid_mixture(key):
    truth = mad.grid_mixture(dtype=jnp.float64)
    k_data, k_fit = jax.random.split(key)
    x = mad.sample_mixture(truth, 2500, key=k_data)
    fit = jax.jit(lambda x, k: mad.fit_mixture_em(x, num_components=25, key=k))(x, k_fit)
    d = np.sqrt(((np.asarray(fit.means)[:, None] - np.asarray(truth.means)[None]) ** 2).sum(-1))
    assert len(set(np.argmin(d, axis=1))) == 25  # one component per mode
    assert np.max(np.min(d, axis=1)) < 0.05  # 100 samples per mode: SE of a mean ~0.02
    np.testing.assert_allclose(fit.weights, 1 / 25, **NAMED["em_weights"])
    # EM does not decrease the likelihood relative to the k-means++ start (checked on the truth).
    assert float(jnp.mean(mad.log_prob(fit, x))) >= float(jnp.mean(mad.log_prob(truth, x))) - 0.01


def test_flow_inverse_and_density_normalisation(key):
    cfg = flow.FlowConfig(num_layers=4, hidden=8, data_scale=2.0)
    model = flow.RealNVP(cfg, rngs=nnx.Rngs(key))
    # The output layers start at zero (identity flow); perturb them so the test can fail.
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(key, len(leaves))
    leaves = [
        p + 0.1 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)
    ]
    model = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))
    x = jax.random.normal(key, (16, 2), jnp.float32)
    z = x / cfg.data_scale
    for layer in model.layers:
        z, _ = layer.forward(z)
    # float32 parameters; 4 layers of scales up to e^2 amplify round-off: 1e-4.
    np.testing.assert_allclose(model.generate(z), x, **NAMED["flow_roundtrip_fp32"])
    g = np.linspace(-12, 12, 481, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    mass = float(jnp.sum(jnp.exp(model.log_prob(jnp.asarray(grid))))) * (g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=0.01)


def test_flow_training_lowers_the_loss_and_zero_temperature_is_deterministic(key):
    truth = mad.grid_mixture(per_side=2, dtype=jnp.float32)
    x = mad.sample_mixture(truth, 256, key=key)
    model = flow.FlowModel(flow.FlowConfig(num_layers=4, hidden=16, data_scale=2.0, steps=150))
    params, losses = jax.jit(lambda x, k: flow.train_flow(model.config, x, jnp.ones(256), key=k))(
        x, key
    )
    losses = np.asarray(losses)
    assert np.all(np.isfinite(losses)) and losses[-10:].mean() < losses[0] - 0.5
    s0 = np.asarray(model.sample(params, 5, 0.0, key=key))
    np.testing.assert_allclose(s0, np.broadcast_to(s0[:1], s0.shape), **NAMED["vmap_fp32"])
    s1 = np.asarray(model.sample(params, 2000, 1.0, key=key))
    s5 = np.asarray(model.sample(params, 2000, 0.25, key=key))
    assert np.std(s5) < np.std(s1)  # latent temperature λ < 1 concentrates the samples
    assert math.isfinite(float(jnp.mean(flow.flow_log_prob(model.config, params, x))))
