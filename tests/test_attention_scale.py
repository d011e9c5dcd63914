"""jaxlab.attention_scale: Su's α* (mean field), the exact objective, entropy, scale rules.

References are float64 NumPy/SciPy formulas or literals from the posts; SciPy's ``ive`` is the
reference for the cosine MGF only here (the library uses log-space quadrature).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import NAMED, tol
from scipy.special import gammaln, ive

from jaxlab import attention_scale as ats
from jaxlab import checkpoint, data, rope, sharding, train
from jaxlab.attention_scale import ScaleRule
from jaxlab.models import LMConfig, lm_config

F64 = tol("float64")
NS = (64, 128, 512, 1024, 4096, 20000)
ALPHA_NORMAL = (1.549, 1.711, 2.008, 2.147, 2.405, 2.678)  # Su 9812 via the mean field
ALPHA_COSINE_128 = (18.25, 20.31, 24.21, 26.08, 29.70, 33.68)


def _normal_star(ns):
    return np.asarray(jax.vmap(ats.alpha_star_normal)(jnp.asarray(ns, jnp.float64)))


def _cosine_star(ns, d):
    fn = jax.jit(jax.vmap(lambda n: ats.alpha_star_cosine(n, d)))
    return np.asarray(fn(jnp.asarray(ns, jnp.float64)))


def test_alpha_star_normal_matches_su_and_is_stationary():  # acceptance 1
    with jax.enable_x64(True):
        alpha = _normal_star(NS)
        np.testing.assert_allclose(alpha, ALPHA_NORMAL, **NAMED["spec_alpha_star"])
        np.testing.assert_allclose(
            _normal_star((2048, 8192)), (2.28, 2.53), **NAMED["spec_alpha_star_2dp"]
        )
        residual = alpha**2 + np.log1p(2 * alpha**2) - np.log(NS)
        assert np.max(np.abs(residual)) < 1e-10
        # The root is the maximiser: f is lower on both sides.
        f, ns = jax.vmap(ats.meanfield_objective_normal), jnp.asarray(NS, jnp.float64)
        for delta in (-1e-3, 1e-3):
            assert np.all(f(alpha + delta, ns) < f(alpha, ns))


def test_effective_support_at_the_optimum():  # acceptance 6
    with jax.enable_x64(True):
        ns = np.array([64.0, 512.0, 4096.0, 20000.0])
        alpha = _normal_star(ns)
        np.testing.assert_allclose(
            ns * np.exp(-(alpha**2)), 1 + 2 * alpha**2, **NAMED["stationary64"]
        )
        np.testing.assert_allclose(
            1 + 2 * alpha**2, (5.8, 9.1, 12.6, 15.3), **NAMED["spec_support_1dp"]
        )


def test_fit_on_su_grid_normal():  # acceptance 2
    with jax.enable_x64(True):
        grid = np.asarray(ats.SU_GRID, np.float64)
        alpha = _normal_star(grid)
        c = float(ats.fit_through_origin(np.sqrt(np.log(grid)), alpha))
        assert abs(c - 0.84) <= 0.005, c
        assert int(np.sum((alpha >= 2) & (alpha <= 3))) == 488


def test_alpha_star_cosine_and_fit():  # acceptance 3
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            _cosine_star(NS, 128), ALPHA_COSINE_128, **NAMED["spec_alpha_cosine"]
        )
        grid = np.asarray(ats.SU_GRID, np.float64)
        alpha = _cosine_star(grid, 128)
        c = float(ats.fit_through_origin(np.log(grid), alpha))
        assert abs(c - 3.49) <= 0.05, c
        assert int(np.sum((alpha >= 25) & (alpha <= 35))) == 483
        ns = (64, 512, 4096)
        np.testing.assert_allclose(
            _cosine_star(ns, 64), (13.4, 18.2, 22.9), **NAMED["spec_alpha_cosine_1dp"]
        )
        np.testing.assert_allclose(
            _cosine_star(ns, 256), (25.3, 33.2, 40.2), **NAMED["spec_alpha_cosine_1dp"]
        )


@pytest.mark.parametrize("d", [64, 128, 256])
def test_log_mgf_cosine_equals_bessel_form(d):  # acceptance 4
    alphas = np.geomspace(1.0, 300.0, 25)
    nu = d / 2 - 1
    # ln[Γ(ν+1) (2/α)^ν I_ν(α)] with I_ν = ive·e^α (scaled Bessel: no overflow).
    ref = gammaln(nu + 1) + nu * np.log(2 / alphas) + np.log(ive(nu, alphas)) + alphas
    with jax.enable_x64(True):
        got = np.asarray(jax.vmap(lambda a: ats.log_mgf_cosine(a, d))(jnp.asarray(alphas)))
        small = float(ats.log_mgf_cosine(jnp.float64(1e-3), d))
    np.testing.assert_allclose(got, ref, **NAMED["bessel64"])
    assert abs(small - 1e-6 / (2 * d)) < 1e-12  # E s² = 1/d: ln g ≈ α²/(2d)


@pytest.mark.parametrize("n", [2, 17, 512])
@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def test_gradient_identity(n, alpha):  # acceptance 5
    s = np.random.default_rng(n).standard_normal(n)
    with jax.enable_x64(True):
        s = jnp.asarray(s, jnp.float64)
        lhs = float(ats.softmax_jacobian_half_l1(s, jnp.float64(alpha)))
        rhs = float(ats.jacobian_objective(s, jnp.float64(alpha)))
    p = np.exp(alpha * np.asarray(s) - np.max(alpha * np.asarray(s)))
    p /= p.sum()
    assert lhs == pytest.approx(rhs, rel=1e-12)
    assert rhs == pytest.approx(alpha * (1 - np.sum(p * p)), rel=1e-12)


def test_entropy_invariant_scale():  # acceptance 7 (rule part)
    d = 64
    rule = ScaleRule("logn")  # L0 = 512 by default, Su's calibration
    n = np.array([1, 2, 64, 511, 512, 513, 4096], np.float32)
    got = np.asarray(ats.logit_scale(rule, d, n))
    np.testing.assert_array_equal(
        got, np.log(n) / np.log(np.float32(512)) * np.float32(1 / math.sqrt(d))
    )
    assert got[n == 512][0] == np.float32(1 / math.sqrt(d))
    causal = np.asarray(ats.logit_scale(rule, d, jnp.arange(1, 9)))
    np.testing.assert_allclose(
        causal, np.log(np.arange(1, 9)) / np.log(512) / 8, **NAMED["elementwise_fp32"]
    )


def test_meanfield_entropy_table_and_constant():  # acceptance 7 (entropy part)
    d = 64
    with jax.enable_x64(True):
        for n, standard, invariant in ((64, 3.67, 3.94), (512, 5.75, 5.75), (4096, 7.83, 7.46)):
            t_std = math.sqrt(d)
            t_ei = math.log(n) / math.log(512) * math.sqrt(d)
            assert float(ats.meanfield_entropy(float(n), t_std, d)) == pytest.approx(
                standard, abs=0.01
            )
            assert float(ats.meanfield_entropy(float(n), t_ei, d)) == pytest.approx(
                invariant, abs=0.01
            )
        assert float(ats.entropy_correction_per_dim(64, dtype=jnp.float64)) == pytest.approx(
            -0.2418, abs=2e-4
        )
        assert float(ats.entropy_correction_per_dim(128, dtype=jnp.float64)) == pytest.approx(
            -0.2412, abs=2e-4
        )
        const = float(ats.laplace_entropy_constant(jnp.float64))
    assert const == pytest.approx(-0.5 * math.log((1 + math.sqrt(5)) / 2), rel=1e-12)
    assert const == pytest.approx(-0.2406, abs=1e-4)


def test_attention_entropy_and_monte_carlo():
    logits = jnp.zeros((3, 8), jnp.float32)
    mask = jnp.arange(8)[None] < jnp.array([[1], [4], [8]])
    np.testing.assert_allclose(
        ats.attention_entropy(logits, mask), np.log([1, 4, 8]), **NAMED["entropy_fp32"]
    )
    # Simulation and mean field agree near the standard scale (t = √d), within noise + O(1/n).
    h_mc = float(ats.entropy_mc(8.0, 256, 64, 200, key=jax.random.key(0)))
    h_mf = float(ats.meanfield_entropy(256.0, 8.0, 64))
    assert h_mc == pytest.approx(h_mf, abs=0.05)


def _mc(alphas, n, key, num_draws=10_000):
    fn = jax.jit(ats.exact_objective_mc, static_argnames=("n", "num_draws"))
    mean, median = fn(jnp.asarray(alphas, jnp.float32), n=n, num_draws=num_draws, key=key)
    return np.asarray(mean), np.asarray(median)


def test_monte_carlo_mean_has_no_interior_maximum(key):  # acceptance 8, fast rows
    plateau = {512: 2.9, 4096: 3.8}
    for i, n in enumerate((64, 512, 4096)):
        a = float(ats.alpha_star_normal(float(n)))
        mean, _ = _mc([a, 4 * a, 30.0], n, jax.random.fold_in(key, i))  # same draws for all α
        assert mean[1] > mean[0], (n, mean)  # still rising at 4α*: no interior maximum there
        if n in plateau:
            assert abs(mean[2] - plateau[n]) <= 0.15 * plateau[n], (n, mean)
    mean, _ = _mc([2.5], 128, jax.random.fold_in(key, 20))
    assert abs(mean[0] - 2.0) <= 0.1
    assert float(ats.meanfield_objective_normal(2.5, 128.0)) < 0  # the mean field says < 0


@pytest.mark.slow
def test_monte_carlo_median_peaks_late(key):  # acceptance 8, median rows (~1 min)
    alphas = np.arange(1.0, 12.01, 0.25)
    for i, n in enumerate((64, 128, 512, 2048, 8192)):
        _, median = _mc(alphas, n, jax.random.fold_in(key, i))
        assert 4 <= alphas[np.argmax(median)] <= 9, (n, alphas[np.argmax(median)])


def test_rules_match_their_formulas():
    """Every kind of the table against its formula in float64 NumPy (so none is untested)."""
    d, n = 64, np.array([1.0, 7.0, 512.0, 9000.0])
    pos = n - 1
    m4 = 0.1 * 2.0 * math.log(4.0) + 1
    expected = {
        "inverse_sqrt": (ScaleRule(), np.full(4, d**-0.5)),
        "mup": (ScaleRule("mup"), np.full(4, 1 / d)),
        "fixed": (ScaleRule("fixed", alpha=2.5), np.full(4, 2.5 / 8)),
        "logn": (ScaleRule("logn", base_len=64), np.log(n) / np.log(64) / 8),
        "logn_posthoc": (
            ScaleRule("logn_posthoc", base_len=64),
            np.maximum(1, np.log(n) / np.log(64)) / 8,
        ),
        "chiang_cholak": (ScaleRule("chiang_cholak"), np.log(n) / 8),
        "gradmax": (ScaleRule("gradmax", max_len=1024), np.full(4, 2.008 / 8)),
        "cosine": (ScaleRule("cosine", n=512), np.full(4, 18.21)),  # α*_cos(512, d = 64)
        "yarn": (ScaleRule("yarn", factor=4.0, mscale=2.0), np.full(4, m4**2 / 8)),
        "llama4": (
            ScaleRule("llama4", floor_scale=512.0),
            (np.log(np.floor((pos + 1) / 512) + 1) * 0.1 + 1) / 8,
        ),
    }
    assert set(expected) == set(ats.KINDS)
    for kind, (rule, want) in expected.items():
        got = np.asarray(ats.logit_scale(rule, d, n), np.float64)
        # gradmax and cosine references are the post's rounded α* values (3 and 4 digits).
        coarse = {"gradmax": NAMED["post_gradmax"], "cosine": NAMED["post_cosine"]}
        np.testing.assert_allclose(got, want, **coarse.get(kind, tol("float32")))
        assert ScaleRule.from_dict(rule.to_dict()) == rule


def test_rule_parity_golden_values():  # acceptance 9
    # YaRN m = 0.1 ln s + 1 (rope.md μ(s) table) and logits × m².
    for s, m in ((2, 1.0693), (4, 1.1386), (8, 1.2079), (16, 1.2773), (32, 1.3466), (40, 1.3689)):
        assert rope.yarn_mscale(float(s)) == pytest.approx(m, abs=5e-5)
        got = float(ats.logit_scale(ScaleRule("yarn", factor=float(s)), 1, 1.0))
        assert got == pytest.approx(rope.yarn_mscale(float(s)) ** 2, rel=1e-6)
    assert rope.yarn_mscale(1.0) == 1.0 and rope.yarn_mscale(0.5) == 1.0
    # An explicit attention_factor replaces the formula (HF).
    explicit = ScaleRule("yarn", factor=8.0, attention_factor=1.5)
    assert float(ats.logit_scale(explicit, 1, 1.0)) == pytest.approx(2.25, rel=1e-7)
    # DeepSeek-V3 (s = 40, mscale = mscale_all_dim = 1, qk head dim 192): MLA softmax scale.
    mla = ScaleRule("yarn", factor=40.0, mscale=1.0)
    assert float(ats.logit_scale(mla, 192, 1.0)) == pytest.approx(0.1352337789, rel=1e-6)
    # DeepSeek ratio on cos/sin: mscale(s, 0.707) / mscale(s, 1.0) = 0.92104 at s = 40.
    ds = rope.RopeScaling("yarn", factor=40.0, original_max_position_embeddings=4096,
                          mscale=0.707, mscale_all_dim=1.0)  # fmt: skip
    assert ats.rope_attention_factor(ds, 64, 1e4) == pytest.approx(0.9210423553, rel=1e-9)
    # Llama 4: 1 for pos + 1 < 8192, 1 + 0.1 ln 2 at pos + 1 = 8192 (natural log, HF).
    q = np.asarray(ats.query_scale(ScaleRule("llama4"), jnp.array([0, 8190, 8191, 16383])))
    np.testing.assert_allclose(q, [1.0, 1.0, 1.0 + 0.1 * math.log(2), 1.0 + 0.1 * math.log(3)])
    assert float(ats.logit_scale(ScaleRule("mup"), 128, 1.0)) == pytest.approx(1 / 128)


def test_rules_reject_bad_values():
    with pytest.raises(ValueError, match="needs n or max_len"):
        ScaleRule("gradmax")
    with pytest.raises(ValueError, match="base_len"):
        ScaleRule("logn", base_len=1)
    with pytest.raises(ValueError, match="n must be > 1"):
        ScaleRule("cosine", n=1.0)
    with pytest.raises(ValueError, match="does not use"):
        ScaleRule("inverse_sqrt", alpha=3.0)


def test_checkpoint_metadata_recreates_the_rule(tmp_path):  # acceptance 10
    path = tmp_path / "text.txt"
    path.write_bytes(b"the quick brown fox jumps over the lazy dog\n" * 60)
    corpus = data.load_corpus(data.DataConfig(files=(str(path),)))
    cfg = lm_config(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, train_len=16,
                    attention_scale=dict(kind="gradmax", max_len=64))  # fmt: skip
    small = train.TrainConfig(batch_size=4, seq_len=16, num_steps=2, warmup_steps=1,
                              log_every=1, eval_windows=2, checkpoint_every=1)  # fmt: skip
    train.fit(cfg, small, corpus, tmp_path / "run", mesh=sharding.data_mesh(1))
    ckpts = checkpoint.Checkpoints(tmp_path / "run" / "ckpt", every=1)
    meta = ckpts.metadata()
    ckpts.close()
    assert meta["model"]["attention"]["scale"] == {"kind": "gradmax", "n": None, "max_len": 64}
    loaded = LMConfig.from_dict(meta["model"])
    assert loaded == cfg
    n = jnp.arange(1, 17)
    before = np.asarray(ats.logit_scale(cfg.attention.scale, cfg.attention.head_dim, n))
    after = np.asarray(ats.logit_scale(loaded.attention.scale, loaded.attention.head_dim, n))
    assert before.tobytes() == after.tobytes()


def test_survey_tables_and_identity_errors(key):
    """The survey's table shaping follows its formulas; the identity errors are tiny and split."""
    normal = np.asarray([2.0, 3.0])
    fake = dict(normal=normal, cosine={128: np.asarray([20.0, 30.0])}, support=1 + 2 * normal**2)
    header, rows = ats.alpha_table((64, 4096), (128,), fake)
    assert len(header) == len(rows[1]) == 9
    n = 4096
    want = [n, 3.0, 0.84 * np.sqrt(np.log(n)), 12 / 9, np.log(n), 30.0, 3.5 * np.log(n)]
    np.testing.assert_allclose(rows[1][:7], want, **F64)
    np.testing.assert_allclose(rows[1][7:], [np.log(n) / 0.24, 19.0], **F64)
    header, rows = ats.entropy_table({"r": ([1.0, 2.0], [3.0])}, (16, 64), (512,))
    assert header == ["rule", "n=16 mean field", "n=64 mean field", "n=512 Monte Carlo"]
    np.testing.assert_allclose(rows[-1][1:], np.log([16, 64, 512]), **F64)
    rel, one_hot = ats.gradient_identity_errors(key)
    assert rel < 1e-12 and one_hot < 1e-6
    assert ats.gradient_identity_errors(key, ns=(512,), alphas=(1.0,))[1] == 0.0  # not one-hot
