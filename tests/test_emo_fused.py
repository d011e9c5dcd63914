"""The one-pass token-chunked fused loss (jaxlab.emo.fused): equal to the unfused form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from numerics import NAMED, tol

from jaxlab import emo
from jaxlab.emo import lm as emo_lm
from jaxlab.models import TinyLM, lm_config

F32 = tol("float32")


def _problem(key, n=23, d=8, v=41, masked=(0, 6, 22)):
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    h = jax.random.normal(k1, (n, d), jnp.float32)
    w = jax.random.normal(k2, (v, d), jnp.float32) * 0.7
    labels = jax.random.randint(k3, (n,), 0, v).at[jnp.array(masked, jnp.int32)].set(-100)
    cost = emo.cost_embedding(jax.random.normal(k4, (v, 5), jnp.float32))
    bias = jax.random.normal(k5, (v,), jnp.float32)
    return h, w, labels, cost, bias


def _assert_trees_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **F32)


CASES = [(name, 5, True) for name in sorted(emo.PRESETS)] + [  # 23 tokens: 5 pads the last chunk
    ("paper_emo", 1, False),
    ("mode2_fixed", 8, False),
    ("paper_emo", 64, False),  # one chunk larger than N
]


@pytest.mark.parametrize(("preset", "token_chunk", "with_bias"), CASES)
def test_one_pass_mean_loss_equals_unfused(key, preset, token_chunk, with_bias):
    h, w, labels, cost, bias = _problem(key)
    p = emo.PRESETS[preset]
    b0 = bias if with_bias else jnp.zeros_like(bias)

    def fused(h, w, b):
        return emo.lm_head_loss(
            h, w, labels, cost, preset=p, bias=b if with_bias else None, token_chunk=token_chunk
        )

    def unfused(h, w, b):
        return emo.emo_loss(h @ w.T + b[None, :], labels, cost, preset=p)

    grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))  # noqa: E731
    (v1, m1), g1 = grad(fused)(h, w, b0)
    (v2, m2), g2 = grad(unfused)(h, w, b0)
    np.testing.assert_allclose(v1, v2, **F32)
    _assert_trees_close(m1, m2)
    _assert_trees_close(g1[:2], g2[:2])
    if with_bias:
        np.testing.assert_allclose(g1[2], g2[2], **F32)
    else:
        assert np.all(np.asarray(g1[2]) == 0.0)
    assert np.all(np.asarray(g1[0])[[0, 6, 22]] == 0.0)  # masked tokens get no gradient
    # Without differentiation the value pass alone runs: same value.
    np.testing.assert_allclose(jax.jit(fused)(h, w, b0)[0], v1, **F32)


def test_one_pass_gradient_scales_with_the_outer_cotangent(key):
    """The stored gradient is multiplied by the incoming cotangent (here 2·loss·3, nonlinear)."""
    h, w, labels, cost, _ = _problem(key)

    def outer(loss_fn):
        return jax.grad(lambda h, w: 3.0 * loss_fn(h, w) ** 2, argnums=(0, 1))(h, w)

    g1 = outer(lambda h, w: emo.lm_head_loss(h, w, labels, cost, token_chunk=4)[0])
    g2 = outer(lambda h, w: emo.emo_loss(h @ w.T, labels, cost)[0])
    _assert_trees_close(g1, g2)


@pytest.mark.parametrize("token_chunk", [3, 23, None])
def test_chunked_cross_entropy_equals_plain(key, token_chunk):
    h, w, labels, _, bias = _problem(key)

    def fused(h, w, b):
        return emo.lm_head_cross_entropy(h, w, labels, bias=b, token_chunk=token_chunk)[0]

    def plain(h, w, b):
        mle = emo.cross_entropy_from_logits(h @ w.T + b[None, :], labels)
        return emo.masked_mean(mle, labels != -100)

    v1, g1 = jax.value_and_grad(fused, argnums=(0, 1, 2))(h, w, bias)
    v2, g2 = jax.value_and_grad(plain, argnums=(0, 1, 2))(h, w, bias)
    np.testing.assert_allclose(v1, v2, **F32)
    _assert_trees_close(g1, g2)


def test_all_masked_batch_gives_zero_loss_and_gradient(key):
    h, w, _, cost, _ = _problem(key)
    labels = jnp.full((h.shape[0],), -100, jnp.int32)
    (val, _), (gh, gw) = jax.value_and_grad(
        lambda h, w: emo.lm_head_loss(h, w, labels, cost, token_chunk=4),
        argnums=(0, 1),
        has_aux=True,
    )(h, w)
    assert float(val) == 0.0
    assert np.all(np.asarray(gh) == 0.0) and np.all(np.asarray(gw) == 0.0)


def test_bf16_one_pass_is_finite_and_close_to_float32(key):
    h, w, labels, cost, _ = _problem(key, n=16, d=16, v=50)
    f = lambda h, w: emo.lm_head_loss(h, w, labels, cost, token_chunk=5)[0]  # noqa: E731
    ref = f(h, w)
    val, (gh, gw) = jax.value_and_grad(f, argnums=(0, 1))(
        h.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    )
    assert val.dtype == jnp.float32 and gh.dtype == jnp.bfloat16 and gw.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(gh, np.float32)).all()
    assert np.isfinite(np.asarray(gw, np.float32)).all()
    np.testing.assert_allclose(float(val), float(ref), **NAMED["bf16_rel"])


def test_token_chunked_hlo_has_no_tokens_by_vocab_array():
    n, v, d, t = 24, 1000, 8, 4
    args = (jnp.zeros((n, d)), jnp.zeros((v, d)), jnp.zeros((n,), jnp.int32), jnp.zeros((v, 4)))
    for f in (
        lambda h, w, labels, cost: emo.lm_head_loss(h, w, labels, cost, token_chunk=t)[0],
        lambda h, w, labels, cost: sum(
            x.sum() for x in emo.lm_head_losses(h, w, labels, cost, token_chunk=t)
        ),
    ):
        hlo = jax.jit(jax.grad(f, argnums=(0, 1))).lower(*args).compile().as_text()
        assert f"[{n},{v}]" not in hlo and f"[{v},{n}]" not in hlo
        assert f"[{t},{v}]" in hlo or f"[{v},{t}]" in hlo  # the chunk's block does appear


def test_trainer_loss_token_chunk_option_matches_unfused():
    cfg = lm_config(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, train_len=8)
    model = emo_lm.attach_cost_embedding(TinyLM(cfg, rngs=nnx.Rngs(params=jax.random.key(0))))
    tokens = jax.random.randint(jax.random.key(1), (3, 9), 0, 256)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    fused = emo_lm.make_fused_loss("paper_emo", token_chunk=5)
    unfused = emo_lm.make_unfused_loss("paper_emo")

    def grads(fn):
        return nnx.value_and_grad(fn, has_aux=True)(model)

    (v1, _), g1 = grads(lambda m: fused(m, inputs, targets))
    (v2, _), g2 = grads(lambda m: unfused(m, m(inputs), targets))
    np.testing.assert_allclose(v1, v2, **F32)
    _assert_trees_close(nnx.state(g1), nnx.state(g2))
