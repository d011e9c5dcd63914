"""EMO losses (jaxlab.emo): closed form vs optimal transport, gradients, mixings, fused path."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from flax import nnx
from numerics import NAMED, tol

from jaxlab import emo, sharding, train
from jaxlab.emo import lm as emo_lm
from jaxlab.models import TinyLM, lm_config

F64 = tol("float64")
F32 = tol("float32")


def _rand(key, v, h=4, n=None):
    k1, k2, k3 = jax.random.split(key, 3)
    shape = (v,) if n is None else (n, v)
    logits = np.array(jax.random.normal(k1, shape, jnp.float32), np.float64) * 2.0
    emb = np.array(jax.random.normal(k2, (v, h), jnp.float32), np.float64)
    label = np.array(jax.random.randint(k3, shape[:-1], 0, v), np.int32)
    return logits, emb, label


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _cost(emb):
    e = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
    return 1.0 - e @ e.T


@pytest.mark.parametrize("v", [3, 5, 8])
def test_one_hot_emo_equals_optimal_transport(key, v):
    logits, emb, label = _rand(key, v)
    p = _softmax(logits)
    cost = _cost(emb)
    tau = np.zeros(v)
    tau[label] = 1.0
    lp = ot.emd2(p, tau, cost)
    with jax.enable_x64(True):
        got = emo.emo_from_logits(logits, label, emo.cost_embedding(emb))
    np.testing.assert_allclose(float(got), lp, **NAMED["lp64"])
    assert abs(float(got) - np.sum(p * cost[:, label])) < 1e-12


@pytest.mark.parametrize("v", [3, 5, 8])
def test_soft_target_bound_is_above_optimal_transport(key, v):
    logits, emb, _ = _rand(key, v)
    tau = _softmax(np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (v,)), np.float64) * 2)
    lp = ot.emd2(_softmax(logits), tau, _cost(emb))
    with jax.enable_x64(True):
        bound = float(emo.emo_soft_target(logits, tau, emo.cost_embedding(emb)))
    np.testing.assert_allclose(bound, _softmax(logits) @ _cost(emb) @ tau, **F64)
    assert lp <= bound + 1e-9
    assert bound - lp > 1e-6  # a soft target makes the bound strictly loose here


def test_closed_form_equals_explicit_cost_and_zero_one_cost(key):
    logits, emb, labels = _rand(key, 7, h=5, n=6)
    p = _softmax(logits)
    want = np.sum(p * _cost(emb)[:, labels].T, axis=-1)
    with jax.enable_x64(True):
        got64 = emo.emo_from_logits(logits, labels, emo.cost_embedding(emb))
        eye = emo.emo_from_logits(logits, labels, jnp.eye(7, dtype=jnp.float64))
    np.testing.assert_allclose(got64, want, **F64)
    np.testing.assert_allclose(eye, 1.0 - p[np.arange(6), labels], **F64)
    e32 = emo.cost_embedding(emb.astype(np.float32))
    got32 = emo.emo_from_logits(logits.astype(np.float32), labels, e32)
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, want, **NAMED["loss_fp32_abs"])


def test_gradient_matches_analytic_form_and_finite_differences(key):
    logits, emb, labels = _rand(key, 6, h=3, n=4)
    cost = _cost(emb)
    with jax.enable_x64(True):
        e = emo.cost_embedding(emb)

        def f(z):
            return emo.emo_from_logits(z, labels, e).sum()

        grad = np.asarray(jax.grad(f)(logits))
        val = np.asarray(emo.emo_from_logits(logits, labels, e))
        fd = np.zeros_like(logits)
        for idx in np.ndindex(*logits.shape):
            d = np.zeros_like(logits)
            d[idx] = 1e-6
            fd[idx] = (float(f(logits + d)) - float(f(logits - d))) / 2e-6
    p = _softmax(logits)
    analytic = p * (cost[:, labels].T - val[:, None])
    np.testing.assert_allclose(grad, analytic, **F64)
    np.testing.assert_allclose(fd, analytic, **NAMED["finite_diff64"])
    np.testing.assert_allclose(grad.sum(-1), 0.0, **NAMED["zero_sum64"])


def test_extreme_logits_are_finite_and_saturation_kills_the_gradient():
    z = jnp.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], jnp.float32)
    labels = jnp.array([1, 1])
    e = emo.cost_embedding(jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], jnp.float32))
    val = emo.emo_from_logits(z, labels, e)
    grad = jax.grad(lambda x: emo.emo_from_logits(x, labels, e).sum())(z)
    assert np.isfinite(val).all() and np.isfinite(grad).all()
    sat = NAMED["saturation_fp32"]
    np.testing.assert_allclose(val, [1.0, 0.0], **sat)  # confident mistake costs c_01 = 1
    np.testing.assert_allclose(grad, 0.0, **sat)  # saturated: no push, right or wrong


def test_reference_offset_adds_p_t_with_identical_gradient(key):
    logits, emb, labels = _rand(key, 9, n=5)
    with jax.enable_x64(True):
        e = emo.cost_embedding(emb)
        exact = np.asarray(emo.emo_from_logits(logits, labels, e))
        off = np.asarray(emo.emo_from_logits(logits, labels, e, value="reference_offset"))
        g = [
            jax.grad(lambda z, v=v: emo.emo_from_logits(z, labels, e, value=v).sum())(logits)
            for v in ("exact", "reference_offset")
        ]
    np.testing.assert_allclose(off, exact + _softmax(logits)[np.arange(5), labels], **F64)
    np.testing.assert_allclose(g[0], g[1], **F64)


@pytest.mark.parametrize("mode", ["half_ratio", "emo_ratio", "half_ratio_clip"])
def test_mixing_values_and_gradients_as_derived(key, mode):
    logits, emb, labels = _rand(key, 6, n=5)
    logits[0] *= 8.0  # a sharper token so the clip at 3 is active somewhere
    with jax.enable_x64(True):
        e = emo.cost_embedding(emb)

        def parts(z):
            return emo.cross_entropy_from_logits(z, labels), emo.emo_from_logits(z, labels, e)

        mle, val = (np.asarray(x) for x in parts(logits))
        jm = np.asarray(jax.jacobian(lambda z: parts(z)[0])(logits))  # [N, N, V]
        je = np.asarray(jax.jacobian(lambda z: parts(z)[1])(logits))
        mixed = emo.mix(*parts(logits), mode=mode)
        grad = np.asarray(jax.grad(lambda z: emo.mix(*parts(z), mode=mode).loss.sum())(logits))
    eps = 1e-10
    if mode == "half_ratio":
        w_mle, w_emo = 0.5 * np.ones(5), 0.5 * mle / (val + eps)
    elif mode == "emo_ratio":
        w_mle, w_emo = val / (mle + eps), np.ones(5)
    else:
        w_mle, w_emo = 0.5 * np.ones(5), 0.5 * np.minimum(mle / (val + eps), 3.0)
        assert (mle / (val + eps) > 3.0).any() and (mle / (val + eps) < 3.0).any()
    np.testing.assert_allclose(mixed.loss, w_mle * mle + w_emo * val, **F64)
    np.testing.assert_allclose(mixed.weight_mle, w_mle, **F64)
    np.testing.assert_allclose(mixed.weight_emo, w_emo, **F64)
    want = np.einsum("n,nnv->nv", w_mle, jm) + np.einsum("n,nnv->nv", w_emo, je)
    np.testing.assert_allclose(grad, want, **F64)
    if mode == "half_ratio":
        np.testing.assert_allclose(mixed.loss, mle * (0.5 + 0.5 * val / (val + eps)), **F64)


def test_ignored_tokens_contribute_nothing_and_all_ignored_is_zero(key):
    logits, emb, labels = _rand(key, 6, n=4)
    logits, emb = logits.astype(np.float32), emb.astype(np.float32)
    labels[1] = -100
    e = emo.cost_embedding(emb)
    for name, preset in emo.PRESETS.items():
        loss_fn = lambda z, lab, p=preset: emo.emo_loss(z, lab, e, preset=p)[0]  # noqa: E731
        g = jax.grad(loss_fn)(logits, labels)
        assert np.all(np.asarray(g)[1] == 0.0), name
        kept = np.delete(np.arange(4), 1)
        np.testing.assert_allclose(
            loss_fn(logits, labels), loss_fn(logits[kept], labels[kept]), **F32
        )
        none = np.full(4, -100, np.int32)
        assert float(loss_fn(logits, none)) == 0.0
        assert np.all(np.asarray(jax.grad(loss_fn)(logits, none)) == 0.0)


def _numpy_reference(logits, labels, emb, preset):
    """NumPy port of the reference: one-hot + 1e-15 target, sg form, mask, then mix and mean."""
    v = logits.shape[-1]
    mask = labels != -100
    lab = np.where(mask, labels, 0)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    mle = -logp[np.arange(len(lab)), lab]
    e = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
    one_hot = np.eye(v)[lab] + 1e-15
    target = one_hot / one_hot.sum(-1, keepdims=True)
    q = np.exp(logp)
    if preset.value == "reference_offset":  # q - sg(p_t 1_t): zero in value at the target
        q = q - q * np.eye(v)[lab]
    val = (1.0 - ((target @ e) * (q @ e)).sum(-1)) * mask
    mle = mle * mask
    if preset.mode == "half_ratio":
        per = 0.5 * (mle + mle / (val + 1e-10) * val)
    elif preset.mode == "emo_ratio":
        per = val / (mle + 1e-10) * mle + val
    else:
        per = 0.5 * (np.minimum(mle / (val + 1e-10), 3.0) * val + mle)
    return (per * mask).sum() / (1e-15 + mask.sum()), per


@pytest.mark.parametrize("name", list(emo.PRESETS))
def test_presets_match_numpy_port_of_the_reference(key, name):
    logits, emb, labels = _rand(key, 11, h=6, n=8)
    labels[2] = -100
    preset = emo.PRESETS[name]
    want, _ = _numpy_reference(logits, labels, emb, preset)
    cost = emo.cost_embedding(emb.astype(np.float32))
    got, metrics = emo.emo_loss(logits.astype(np.float32), labels, cost, preset=preset)
    np.testing.assert_allclose(float(got), want, **NAMED["loss_fp32"])
    assert set(metrics) == {"mle", "emo", "weight_mle", "weight_emo"}


def _head_problem(key, n=21, d=8, v=37, dtype=jnp.float32, masked=(0, 5)):
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    h = jax.random.normal(k1, (n, d), jnp.float32).astype(dtype)
    w = (jax.random.normal(k2, (v, d), jnp.float32) * 0.7).astype(dtype)
    labels = jax.random.randint(k3, (n,), 0, v).at[jnp.array(masked, jnp.int32)].set(-100)
    cost = emo.cost_embedding(jax.random.normal(k4, (v, 5), jnp.float32))
    bias = jax.random.normal(k5, (v,), jnp.float32)
    return h, w, labels, cost, bias


def _unfused(h, w, labels, cost, bias, value):
    z = jnp.dot(h, w.T, preferred_element_type=jnp.float32) + bias[None, :]
    return (
        emo.cross_entropy_from_logits(z, labels),
        emo.emo_from_logits(z, labels, cost, value=value),
    )


@pytest.mark.parametrize(
    ("chunk", "value"),
    [
        ({"vocab_chunk": 8}, "exact"),
        ({"vocab_chunk": 16}, "reference_offset"),
        ({"vocab_chunk": 37}, "exact"),
        ({"vocab_chunk": 64}, "exact"),
        ({"token_chunk": 4}, "exact"),  # 21 tokens: the last chunk is padded
        ({"token_chunk": 8}, "reference_offset"),
        ({"token_chunk": 64}, "exact"),
        ({}, "exact"),  # default token chunk
    ],
)
def test_fused_equals_unfused_values_and_gradients(key, chunk, value):
    h, w, labels, cost, bias = _head_problem(key)
    ct = jax.random.normal(jax.random.fold_in(key, 7), (2, h.shape[0]), jnp.float32)

    def objective(fn):
        def f(h, w, b):
            mle, val = fn(h, w, b)
            return jnp.sum(ct[0] * mle) + jnp.sum(ct[1] * val), (mle, val)

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(h, w, bias)

    fused = objective(
        lambda h, w, b: emo.lm_head_losses(h, w, labels, cost, bias=b, value=value, **chunk)
    )
    plain = objective(lambda h, w, b: _unfused(h, w, labels, cost, b, value))
    (_, (m1, e1)), g1 = fused
    (_, (m2, e2)), g2 = plain
    np.testing.assert_allclose(m1, m2, **F32)
    np.testing.assert_allclose(e1, e2, **F32)
    assert float(m1[0]) == 0.0 and float(e1[5]) == 0.0
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, **F32)
    assert np.all(np.asarray(g1[0])[[0, 5]] == 0.0)  # masked tokens get no gradient


def test_fused_combined_loss_equals_unfused_in_the_trainer():
    cfg = lm_config(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, train_len=16)
    tc = train.TrainConfig(batch_size=4, seq_len=16, num_steps=3, warmup_steps=1)
    batch = jax.random.randint(jax.random.key(1), (4, 17), 0, 256)
    results = {}
    for loss in ("emo", "emo_unfused"):
        model = emo_lm.attach_cost_embedding(TinyLM(cfg, rngs=nnx.Rngs(params=jax.random.key(0))))
        cost0 = np.array(model.cost_embedding[...])
        head0, embed0 = np.array(model.head.kernel[...]), np.array(model.embed.embedding[...])
        optimizer = nnx.Optimizer(model, train.make_optimizer(tc), wrt=nnx.Param)
        graphdef, state = nnx.split((model, optimizer))
        step = train.make_train_step(
            graphdef, train.TrainConfig(**{**tc.__dict__, "loss": loss}), sharding.data_mesh(1)
        )
        for _ in range(2):
            state, stats = step(state, batch)
        trained = nnx.merge(graphdef, state)[0]
        # The fixed cost is bitwise unchanged; the head and input embedding did train.
        assert np.array_equal(np.asarray(trained.cost_embedding[...]), cost0)
        assert not np.allclose(trained.head.kernel[...], head0)
        assert not np.allclose(trained.embed.embedding[...], embed0)
        results[loss] = (stats, np.asarray(trained.head.kernel[...]))
    s1, k1 = results["emo"]
    s2, k2 = results["emo_unfused"]
    for name in ("loss", "mle", "emo", "weight_emo", "grad_norm"):
        np.testing.assert_allclose(s1[name], s2[name], **F32)
    np.testing.assert_allclose(k1, k2, **F32)


def test_cost_embedding_gets_no_gradient_and_zero_rows_stay_zero():
    w = jnp.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], jnp.float32)
    e = emo.cost_embedding(w)
    np.testing.assert_allclose(e, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], **F32)
    z = jnp.array([[0.1, 0.2, 0.3]], jnp.float32)
    g = jax.grad(lambda w: emo.emo_from_logits(z, jnp.array([0]), emo.cost_embedding(w)).sum())(w)
    assert np.all(np.asarray(g) == 0.0)
    h = jnp.ones((1, 2), jnp.float32)
    gw = jax.grad(lambda c: emo.lm_head_losses(h, w, jnp.array([1]), c)[1].sum())(e)
    assert np.all(np.asarray(gw) == 0.0)
    assert np.isfinite(emo.lm_head_losses(h, w, jnp.array([1]), e)[1]).all()


def test_fused_hlo_has_no_tokens_by_vocab_array():
    n, v, d, c = 24, 1000, 8, 64
    args = (jnp.zeros((n, d)), jnp.zeros((v, d)), jnp.zeros((n,), jnp.int32), jnp.zeros((v, 4)))

    def f(h, w, labels, cost):
        mle, val = emo.lm_head_losses(h, w, labels, cost, vocab_chunk=c)
        return (mle + val).sum()

    hlo = jax.jit(jax.grad(f, argnums=(0, 1))).lower(*args).compile().as_text()
    assert f"[{n},{v}]" not in hlo and f"[{v},{n}]" not in hlo
    assert f"[{n},{c}]" in hlo or f"[{c},{n}]" in hlo  # the chunk does appear
    naive = jax.jit(jax.grad(lambda h, w: (h @ w.T).sum())).lower(*args[:2]).compile().as_text()
    assert f"[{n},{v}]" in naive  # the check can fail


def test_bf16_hidden_states_and_head_give_finite_float32_losses(key):
    h, w, labels, cost, _ = _head_problem(key, n=16, d=16, v=50)
    ref = emo.lm_head_loss(h, w, labels, cost, vocab_chunk=16)[0]

    def f(h, w):
        return emo.lm_head_loss(h, w, labels, cost, vocab_chunk=16)[0]

    hb, wb = h.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    val, (gh, gw) = jax.value_and_grad(f, argnums=(0, 1))(hb, wb)
    assert val.dtype == jnp.float32 and gh.dtype == jnp.bfloat16 and gw.dtype == jnp.bfloat16
    assert np.isfinite(float(val))
    assert np.isfinite(np.asarray(gh, np.float32)).all()
    assert np.isfinite(np.asarray(gw, np.float32)).all()
    np.testing.assert_allclose(float(val), float(ref), **NAMED["bf16_rel"])
    logits = (h @ w.T).astype(jnp.bfloat16)
    out = emo.emo_loss(logits, labels, cost)[0]
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(
        float(out), float(emo.emo_loss(h @ w.T, labels, cost)[0]), **NAMED["bf16_rel"]
    )


def test_reference_port_matches_library(key):
    h, w, labels, _, _ = _head_problem(key)
    raw = jax.random.normal(jax.random.fold_in(key, 3), (w.shape[0], 5), jnp.float32)
    mle, val = emo.reference_losses(h, w, labels, raw)
    want = _unfused(h, w, labels, emo.cost_embedding(raw), jnp.zeros(w.shape[0]), "exact")
    np.testing.assert_allclose(mle, want[0], **F32)
    np.testing.assert_allclose(val, want[1], **F32)


def test_bad_arguments_raise_value_error():
    h, w, e = jnp.zeros((3, 4)), jnp.zeros((5, 4)), jnp.zeros((5, 2))
    with pytest.raises(ValueError, match="value"):
        emo.emo_from_logits(jnp.zeros((3, 5)), jnp.zeros((3,), jnp.int32), e, value="nope")
    with pytest.raises(ValueError, match="mode"):
        emo.mix(jnp.ones(2), jnp.ones(2), mode="nope")
    with pytest.raises(ValueError, match="vocab_chunk"):
        emo.lm_head_losses(h, w, jnp.zeros((3,), jnp.int32), e, vocab_chunk=0)
    with pytest.raises(ValueError, match="token_chunk"):
        emo.lm_head_loss(h, w, jnp.zeros((3,), jnp.int32), e, token_chunk=0)
    with pytest.raises(ValueError, match="preset"):
        emo.get_preset("nope")
    with pytest.raises(ValueError, match="fixed"):
        model = TinyLM(
            lm_config(num_layers=1, embed_dim=8, num_heads=2, mlp_dim=8), rngs=nnx.Rngs(0)
        )
        emo_lm.cost_for(model, emo.PRESETS["paper_emo"])
