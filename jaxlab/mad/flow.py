"""A small RealNVP normalizing flow on 2-D data (Flax NNX), trained with optax, for MAD loops.

x ↦ z through affine couplings that alternate the conditioning coordinate: with (a, b) the two
coordinates, y_b = x_b · exp(s(x_a)) + t(x_a), y_a = x_a, log|det| = s(x_a), where (s, t) come
from a small MLP and s is bounded by ``max_log_scale · tanh``. The base is N(0, I), so
ln p(x) = ln N(f(x); 0, I) + Σ_layers s. Sampling bias λ is the latent temperature
z ~ N(0, λ I) (the paper's GLOW variant), x = f⁻¹(z).

:class:`FlowModel` is the hashable fit/sample pair used by :func:`jaxlab.mad.run_loop`: ``fit``
builds a fresh flow from its key, trains it full-batch on 0/1-weighted samples with Adam for a
fixed number of steps (``lax.scan``, so vmapped fits stay in lockstep), and returns the NNX
parameter state; ``sample`` merges it back. This is the only module of :mod:`jaxlab.mad` that
imports flax.

References: Dinh, Sohl-Dickstein and Bengio (2017), "Density estimation using Real NVP",
arXiv:1605.08803; Alemohammad et al. (2023), arXiv:2307.01850, appendix (GLOW on 2-D data with
latent N(0, λI)).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxlab.array_types import Array, Float


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """Size and training of :class:`RealNVP`.

    Attributes:
      num_layers: Affine coupling layers (alternating the conditioning coordinate).
      hidden: Width of each coupling MLP (two hidden layers).
      max_log_scale: Bound on |s| per layer.
      data_scale: Inputs are divided by this before the flow (a fixed standardisation).
      steps: Full-batch Adam steps per fit.
      learning_rate: Adam learning rate.
    """

    num_layers: int = 6
    hidden: int = 32
    max_log_scale: float = 2.0
    data_scale: float = 1.0
    steps: int = 300
    learning_rate: float = 3e-3


class Coupling(nnx.Module):
    """One affine coupling: coordinate ``1 - cond`` is scaled and shifted given ``cond``."""

    def __init__(self, config: FlowConfig, cond: int, *, rngs: nnx.Rngs):
        self.cond = cond
        self.max_log_scale = config.max_log_scale
        self.l1 = nnx.Linear(1, config.hidden, rngs=rngs)
        self.l2 = nnx.Linear(config.hidden, config.hidden, rngs=rngs)
        self.out = nnx.Linear(
            config.hidden, 2, kernel_init=nnx.initializers.zeros_init(), rngs=rngs
        )

    def _shift_scale(self, xa: Float[Array, "B 1"]):
        h = jax.nn.gelu(self.l2(jax.nn.gelu(self.l1(xa))))
        st = self.out(h)
        return st[:, 1], self.max_log_scale * jnp.tanh(st[:, 0] / self.max_log_scale)

    def forward(self, x: Float[Array, "B 2"]):
        """x → y and log|det ∂y/∂x| per row."""
        xa, xb = x[:, self.cond], x[:, 1 - self.cond]
        t, s = self._shift_scale(xa[:, None])
        yb = xb * jnp.exp(s) + t
        y = jnp.stack([xa, yb] if self.cond == 0 else [yb, xa], axis=1)
        return y, s

    def inverse(self, y: Float[Array, "B 2"]) -> Float[Array, "B 2"]:
        ya, yb = y[:, self.cond], y[:, 1 - self.cond]
        t, s = self._shift_scale(ya[:, None])
        xb = (yb - t) * jnp.exp(-s)
        return jnp.stack([ya, xb] if self.cond == 0 else [xb, ya], axis=1)


class RealNVP(nnx.Module):
    """A 2-D RealNVP flow; batch-first.

    Examples:
      >>> flow = RealNVP(FlowConfig(num_layers=2, hidden=4), rngs=nnx.Rngs(0))
      >>> flow.log_prob(jnp.zeros((3, 2))).shape
      (3,)
    """

    def __init__(self, config: FlowConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.layers = nnx.List(
            [Coupling(config, i % 2, rngs=rngs) for i in range(config.num_layers)]
        )

    def log_prob(self, x: Float[Array, "B 2"]) -> Float[Array, " B"]:
        """ln p(x) under the flow (including the data-scale Jacobian)."""
        scale = self.config.data_scale
        z = x / scale
        logdet = jnp.zeros(x.shape[:1], x.dtype) - 2 * jnp.log(jnp.asarray(scale, x.dtype))
        for layer in self.layers:
            z, s = layer.forward(z)
            logdet = logdet + s
        base = -0.5 * jnp.sum(z * z, axis=1) - jnp.log(2 * jnp.pi).astype(x.dtype)
        return base + logdet

    def generate(self, z: Float[Array, "B 2"]) -> Float[Array, "B 2"]:
        """x = f⁻¹(z)."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z * self.config.data_scale


def _graphdef(config: FlowConfig):
    abstract = nnx.eval_shape(lambda: RealNVP(config, rngs=nnx.Rngs(0)))
    return nnx.split(abstract)[0]


def train_flow(
    config: FlowConfig, x: Float[Array, "N 2"], weights: Float[Array, " N"], *, key: Array
):
    """Trains a fresh flow on weighted samples; returns ``(params_state, losses_per_step)``.

    The flow's parameters are float32, so ``x`` must be float32 (the weights are cast to it).
    """
    model = RealNVP(config, rngs=nnx.Rngs(key))
    graphdef, params = nnx.split(model)
    tx = optax.adam(config.learning_rate)
    w = jnp.asarray(weights, x.dtype)
    w = w / jnp.sum(w)

    def loss_fn(params):
        return -jnp.sum(w * nnx.merge(graphdef, params).log_prob(x))

    def step(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
            updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    with jax.numpy_dtype_promotion("standard"):
        opt_state = tx.init(params)
    (params, _), losses = jax.lax.scan(step, (params, opt_state), None, length=config.steps)
    return params, losses


def flow_log_prob(config: FlowConfig, params, x: Float[Array, "N 2"]) -> Float[Array, " N"]:
    """ln p(x) under trained parameters."""
    return nnx.merge(_graphdef(config), params).log_prob(x)


def sample_flow(config: FlowConfig, params, num: int, lam=1.0, *, key: Array) -> Array:
    """``num`` samples x = f⁻¹(√λ z), z ~ N(0, I) (latent temperature λ)."""
    leaves = jax.tree.leaves(params)
    z = jax.random.normal(key, (num, 2), leaves[0].dtype)
    return nnx.merge(_graphdef(config), params).generate(jnp.sqrt(lam) * z)


@dataclasses.dataclass(frozen=True)
class FlowModel:
    """RealNVP fit/sample pair for :func:`jaxlab.mad.run_loop` (hashable, static)."""

    config: FlowConfig = FlowConfig()

    def fit(self, x: Float[Array, "N 2"], weights: Float[Array, " N"], *, key: Array):
        return train_flow(self.config, x, weights, key=key)[0]

    def sample(self, params, num: int, lam, *, key: Array) -> Float[Array, "N 2"]:
        return sample_flow(self.config, params, num, lam, key=key)
