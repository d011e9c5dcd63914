"""Tests for jaxlab.attention: naive reference, scale rules, ReRoPE wiring, KV-cache decode."""

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from numerics import NAMED, tol

from jaxlab import attention, attention_scale, rope
from jaxlab.attention import AttentionConfig, attention_config
from jaxlab.attention_scale import ScaleRule

L0 = 4  # training length: the sequences below run to 3·L0, so every extension kicks in
LENGTH = 12
TOL32 = tol("float32")
BASE = attention_config(num_heads=2, head_dim=8, train_len=L0, rope_theta=100.0)
VARIANTS = {
    "none": dict(position="none"),
    "rope": {},
    "linear": dict(rope_scaling=(("rope_type", "linear"), ("factor", 3.0))),
    "ntk_mixed": dict(rope_scaling=(("rope_type", "ntk_mixed"), ("factor", 3.0), ("mix_b", 0.625))),
    "yarn": dict(rope_scaling=(("rope_type", "yarn"), ("factor", 3.0))),
    "rerope": dict(rerope_window=3),
    "leaky": dict(rerope_window=3, rerope_leaky_k=4.0),
    "logn": dict(attention_scale="logn"),
    "cosine_learned": dict(attention_scale=dict(kind="cosine", temperature=3.0, learned=True)),
    "llama4": dict(attention_scale=dict(kind="llama4", floor_scale=4.0)),
    "gradmax": dict(attention_scale=dict(kind="gradmax", max_len=16)),
    "logn_posthoc_rerope": dict(attention_scale="logn_posthoc", rerope_window=2),
    "dynamic": dict(rope_scaling=(("rope_type", "dynamic"), ("factor", 2.0))),
}


def _module(cfg, seed=0):
    return attention.CausalSelfAttention(cfg, 16, rngs=nnx.Rngs(params=seed))


def _setup(name, seed=0):
    cfg = attention_config(BASE, **VARIANTS[name])
    module = _module(cfg, seed)
    x = jnp.asarray(np.random.default_rng(seed).standard_normal((2, LENGTH, 16)), jnp.float32)
    return cfg, module, x


@jax.jit
def _prefill(graphdef, state, x_BLD, positions_BL):
    return nnx.merge(graphdef, state)(x_BLD, positions_BL)


@jax.jit
def _decode_all(graphdef, state, x_BLD):
    """Feeds x one token at a time through ``decode``; returns every step's output."""
    module = nnx.merge(graphdef, state)
    cache = module.init_cache(x_BLD.shape[0], x_BLD.shape[1])

    def step(cache, inputs):
        x_B1D, pos = inputs
        y_B1D, cache = module.decode(x_B1D, pos, cache)
        return cache, y_B1D[:, 0]

    xs = (jnp.swapaxes(x_BLD, 0, 1)[:, :, None], jnp.arange(x_BLD.shape[1], dtype=jnp.int32))
    _, ys_LBD = jax.lax.scan(step, cache, xs)
    return jnp.swapaxes(ys_LBD, 0, 1)


def _positions(batch, length, offset=0):
    return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32) + offset, (batch, length))


@pytest.mark.parametrize("name", ["rope", "cosine"])
def test_matches_naive_reference(name):
    """RoPE attention equals a float64 NumPy softmax over complex-rotated q, k; the cosine rule
    normalises q and k first and multiplies by its fixed temperature τ instead of 1/√d."""
    cosine = name == "cosine"
    cfg = attention_config(BASE, attention_scale=dict(kind="cosine", temperature=5.0))
    cfg, module, x = (cfg, _module(cfg), _setup("rope")[2]) if cosine else _setup("rope")
    out = module(x, _positions(2, LENGTH))
    qkv = np.asarray(module.qkv(x), np.float64)  # [B, L, 3, H, K]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if cosine:
        q, k = (a / np.linalg.norm(a, axis=-1, keepdims=True) for a in (q, k))
    inv_freq = 1.0 / 100.0 ** (np.arange(0, 8, 2) / 8)
    rot = np.exp(1j * np.arange(LENGTH)[:, None] * inv_freq)[None, :, None]  # [1, L, 1, 4]

    def rotate(a):
        z = (a[..., :4] + 1j * a[..., 4:]) * rot
        return np.concatenate([z.real, z.imag], -1)

    scale = 5.0 if cosine else 1 / np.sqrt(8)
    logits = np.einsum("bqhk,bshk->bhqs", rotate(q), rotate(k)) * scale
    logits = np.where(np.tril(np.ones((LENGTH, LENGTH), bool)), logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    y = np.einsum("bhqs,bshk->bqhk", w, v)
    ref = np.einsum("bqhk,hkd->bqd", y, np.asarray(module.out.kernel[...], np.float64))
    np.testing.assert_allclose(out, ref, **NAMED["attention_fp32"])


def test_legacy_scale_names_map_to_rules():
    """Config files' ``attention_scale`` strings: log-n kinds take L = train_len, as before."""
    pos = _positions(1, 64)
    n = np.arange(1, 65)
    for name, expected in (
        ("inverse_sqrt", np.ones(64)),
        ("logn", np.log(n) / np.log(L0)),
        ("logn_posthoc", np.maximum(1.0, np.log(n) / np.log(L0))),
    ):
        cfg = attention_config(BASE, attention_scale=name)
        legacy_base = {} if name == "inverse_sqrt" else {"base_len": L0}
        assert cfg.scale == ScaleRule(name, **legacy_base)
        got = attention_scale.logit_scale(cfg.scale, cfg.head_dim, pos + 1)
        np.testing.assert_allclose(got[0], expected / np.sqrt(8), **NAMED["elementwise_fp32_abs"])


def test_scale_uses_attended_keys_per_row():
    """With padding, ``n`` is the number of visible keys of the row, not its position + 1."""
    cfg = attention_config(BASE, attention_scale=dict(kind="logn", base_len=8), position="none")
    module = _module(cfg)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 6, 16)), jnp.float32)
    valid = jnp.array([[False, False, True, True, True, True]])
    out = module(x, _positions(1, 6), valid)
    # Reference: the same rows computed on the unpadded suffix (n = 1..4 keys).
    short = module(x[:, 2:], _positions(1, 4))
    np.testing.assert_allclose(out[:, 2:], short, **TOL32)


def test_config_round_trips_json():
    for name in VARIANTS:
        cfg = attention_config(BASE, **VARIANTS[name])
        again = AttentionConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg and hash(again) == hash(cfg), name


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown attention config keys"):
        attention_config(BASE, rope_scale=2.0)
    with pytest.raises(ValueError, match="position must be one of"):
        attention_config(BASE, position="alibi")
    with pytest.raises(ValueError, match="head_dim"):
        AttentionConfig(head_dim=7)
    with pytest.raises(ValueError, match="kind must be one of"):
        ScaleRule("inverse_sqrt_typo")


def test_yarn_magnitude_applied_once():
    """m on cos/sin with 1/√d logits equals plain cos/sin with the ``yarn`` rule (m²/√d)."""
    cfg, module, x = _setup("yarn")
    parts = (("rope_type", "ntk_by_parts"), ("factor", 3.0))
    rule_cfg = attention_config(
        cfg, rope_scaling=parts, attention_scale=dict(kind="yarn", factor=3.0)
    )
    rule_module = _module(rule_cfg)
    pos = _positions(2, LENGTH)
    np.testing.assert_allclose(
        module(x, pos), nnx.merge(nnx.graphdef(rule_module), nnx.state(module))(x, pos), **TOL32
    )
    qkv = module.qkv(x)
    yarn = attention.position_logits(cfg, qkv[:, :, 0], qkv[:, :, 1], pos)
    plain = attention.position_logits(rule_cfg, qkv[:, :, 0], qkv[:, :, 1], pos)
    m = rope.yarn_mscale(3.0)
    np.testing.assert_allclose(yarn, plain * m**2, **NAMED["reorder_fp32"])
    assert attention.describe(cfg)["rope_attention_factor"] == m
    with pytest.raises(ValueError, match="both apply YaRN"):
        attention_config(cfg, attention_scale=dict(kind="yarn", factor=3.0))


def test_rerope_with_large_window_is_rope():
    cfg, module, x = _setup("rope")
    graphdef, state = nnx.split(module)
    wide = dataclasses.replace(cfg, rerope_window=LENGTH)
    wide_graphdef = nnx.graphdef(_module(wide))
    pos = _positions(2, LENGTH, offset=5)
    np.testing.assert_allclose(
        _prefill(wide_graphdef, state, x, pos),
        _prefill(graphdef, state, x, pos),
        **NAMED["reorder_fp32_abs"],
    )
    narrow = dataclasses.replace(cfg, rerope_window=2)
    narrow_graphdef = nnx.graphdef(_module(narrow))
    assert not np.allclose(
        _prefill(narrow_graphdef, state, x, pos),
        _prefill(graphdef, state, x, pos),
        **NAMED["differs"],
    )


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "dynamic"])
def test_decode_equals_prefill(name):
    cfg, module, x = _setup(name)
    graphdef, state = nnx.split(module)
    prefill = _prefill(graphdef, state, x, _positions(2, LENGTH))
    decoded = _decode_all(graphdef, state, x)
    np.testing.assert_allclose(decoded, prefill, **NAMED["reorder_fp32"])


def test_decode_dynamic_equals_prefix_prefill():
    """Dynamic NTK re-rotates the pre-RoPE cache: step i equals the last row of a prefill of i+1."""
    cfg, module, x = _setup("dynamic")
    graphdef, state = nnx.split(module)
    decoded = _decode_all(graphdef, state, x)
    for i in (2, L0, LENGTH - 1):  # below, at and beyond L0
        prefix = _prefill(graphdef, state, x[:, : i + 1], _positions(2, i + 1))
        np.testing.assert_allclose(decoded[:, i], prefix[:, -1], **NAMED["reorder_fp32"])
    full = _prefill(graphdef, state, x, _positions(2, LENGTH))
    # The length matters.
    assert not np.allclose(decoded[:, L0], full[:, L0], **NAMED["differs_fine"])


def test_decode_compiles_once():
    cfg, module, x = _setup("leaky")
    graphdef, state = nnx.split(module)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, x_B1D, pos, cache):
        return nnx.merge(graphdef, state).decode(x_B1D, pos, cache)

    cache = module.init_cache(2, LENGTH)
    for i in range(4):
        _, cache = step(state, x[:, i : i + 1], jnp.int32(i), cache)
