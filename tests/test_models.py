"""The tiny LM: shapes, causality, evaluation under a swapped config, config round trips."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from numerics import NAMED

from jaxlab.attention_scale import ScaleRule
from jaxlab.models import LMConfig, TinyLM, lm_config

CFG = lm_config(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, train_len=16)


def test_shapes_and_dtype(key):
    model = TinyLM(CFG, rngs=nnx.Rngs(params=key))
    tokens = jax.random.randint(key, (3, 16), 0, 256)
    logits = model(tokens)
    assert logits.shape == (3, 16, 256) and logits.dtype == jnp.float32
    assert model.head_embeddings().shape == (256, 32)


def test_causal_by_gradients(key):
    """d logits[:, i] / d embedding[:, j] is zero for every future position j > i."""
    model = TinyLM(CFG, rngs=nnx.Rngs(params=key))
    tokens = jax.random.randint(key, (1, 12), 0, 256)
    emb = model.embed(tokens)
    graphdef, state = nnx.split(model)

    def logits_at(emb_BLD, i):
        m = nnx.merge(graphdef, state)
        x = emb_BLD
        pos = jnp.arange(12)[None]
        for block in m.blocks:
            x = block(x, pos)
        return m.head(m.norm(x))[0, i].sum()

    for i in (0, 5, 10):
        g = jax.grad(logits_at)(emb, i)[0]  # [L, D]
        norms = np.asarray(jnp.linalg.norm(g, axis=-1))
        assert np.all(norms[i + 1 :] == 0.0), (i, norms)
        assert norms[i] > 0


def test_position_encoding_matters_and_swaps_without_retraining(key):
    """A RoPE-trained state merged under a NoPE config is exactly a NoPE model with those
    parameters (same tree, no extra state), and its outputs differ from the RoPE model's."""
    model = TinyLM(CFG, rngs=nnx.Rngs(params=key))
    tokens = jax.random.randint(key, (2, 16), 0, 256)
    nope_cfg = CFG.with_attention(position="none")
    assert nope_cfg.attention.rope is None
    abstract = nnx.eval_shape(lambda: TinyLM(nope_cfg, rngs=nnx.Rngs(0)))
    swapped = nnx.merge(nnx.graphdef(abstract), nnx.state(model))
    fresh_nope = TinyLM(nope_cfg, rngs=nnx.Rngs(params=key))  # same key: same parameters
    np.testing.assert_array_equal(swapped(tokens), fresh_nope(tokens))
    assert not np.allclose(model(tokens), swapped(tokens), **NAMED["differs_fine"])


def test_flat_config_keys_map_onto_attention_config():
    cfg = lm_config(
        embed_dim=32, num_heads=4, train_len=64, rope_theta=500.0, attention_scale="logn",
        rope_scaling=(("rope_type", "yarn"), ("factor", 4.0)), rerope_window=8,
    )  # fmt: skip
    att = cfg.attention
    assert (att.num_heads, att.head_dim, att.rotary_dim, att.rope_base) == (4, 8, 8, 500.0)
    assert att.rope.kind == "yarn" and att.rope.train_len == 64 and att.rope.scale == 4.0
    assert att.scale == ScaleRule("logn", base_len=64) and att.rerope_window == 8
    partial = lm_config(embed_dim=32, num_heads=2, rope_scaling={"partial_rotary_factor": 0.5})
    assert partial.attention.rotary_dim == 8
    with pytest.raises(ValueError, match="not divisible"):
        lm_config(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown attention config keys"):
        lm_config(attention_scael="logn")


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        dict(position="none", attention_scale=dict(kind="cosine", n=64, learned=True)),
        dict(rope_scaling={"rope_type": "longrope", "short_factor": [1.0] * 8,
                           "long_factor": [2.0] * 8, "factor": 4.0}, train_len=16),
        dict(attention_scale=dict(kind="gradmax", max_len=128), rerope_window=4,
             rerope_leaky_k=8.0),
    ],
)  # fmt: skip
def test_lm_config_round_trips_json(overrides):
    cfg = CFG.with_attention(**overrides)
    again = LMConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and hash(again) == hash(cfg)
