"""The tiny LM: shapes, causality, evaluation under a swapped config."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlab.models import LMConfig, TinyLM

CFG = LMConfig(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, train_len=16)


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
    model = TinyLM(CFG, rngs=nnx.Rngs(params=key))
    tokens = jax.random.randint(key, (2, 16), 0, 256)
    nope_cfg = dataclasses.replace(CFG, position="none")
    abstract = nnx.eval_shape(lambda: TinyLM(nope_cfg, rngs=nnx.Rngs(0)))
    nope = nnx.merge(nnx.graphdef(abstract), nnx.state(model))
    same_again = nnx.merge(nnx.graphdef(model), nnx.state(model))
    np.testing.assert_array_equal(model(tokens), same_again(tokens))
    assert not np.allclose(model(tokens), nope(tokens), atol=1e-4)
