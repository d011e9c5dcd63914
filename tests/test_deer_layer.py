"""Tests for jaxlab.deer.layer: the NNX layer equals its lax.scan twin and trains with optax."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from numerics import NAMED

from jaxlab.deer.layer import ParallelRNN, ParallelRNNConfig


@pytest.mark.parametrize("cell", ["gru", pytest.param("lstm", marks=pytest.mark.slow)])
def test_layer_equals_sequential_and_gradients_match(cell, key):
    config = ParallelRNNConfig(cell=cell, in_features=2, hidden=3)
    deer_layer = ParallelRNN(config, rngs=nnx.Rngs(0))
    scan_layer = ParallelRNN(dataclasses.replace(config, mode="sequential"), rngs=nnx.Rngs(0))
    x = jax.random.normal(key, (2, 16, 2), jnp.float32)

    @nnx.jit
    def loss_and_grad(layer, x):
        return layer(x), nnx.value_and_grad(lambda m: jnp.sum(jnp.sin(m(x))))(layer)

    (out, (l1, g1)), (out2, (l2, g2)) = loss_and_grad(deer_layer, x), loss_and_grad(scan_layer, x)
    assert out.shape == (2, 16, 3)
    np.testing.assert_allclose(out, out2, **NAMED["deer_fp32_abs"])
    np.testing.assert_allclose(l1, l2, **NAMED["deer_fp32_rel"])
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), strict=True):
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-4 * float(jnp.max(jnp.abs(b)))


def test_trains_with_optax(key):
    model = ParallelRNN(ParallelRNNConfig(in_features=1, hidden=4), rngs=nnx.Rngs(1))
    optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)
    x = jax.random.normal(key, (4, 32, 1), jnp.float32)
    target = jnp.cumsum(x[..., 0], axis=1) / jnp.arange(1, 33, dtype=jnp.float32)[None]

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x)[..., 0] - target) ** 2))(model)
        with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int/float
            optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0]
