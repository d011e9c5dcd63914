"""Tests for jaxlab.quanta: Hurwitz tails, the N/D/S laws, Poisson counts, the grid, the fit.

References are independent float64 computations: direct sums plus an Euler–Maclaurin remainder
written here, scipy's Hurwitz zeta, brute-force counting, np.polyfit and closed-form moments.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from numerics import NAMED, TOL

from jaxlab import quanta

GAMMAS = [0.083, 0.2, 0.4, 0.8]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def hurwitz_reference(s: float, q: float, m: int = 2000) -> float:
    """ζ(s, q) by a direct sum of m terms plus the Euler–Maclaurin remainder (float64)."""
    k = q + np.arange(m, dtype=np.float64)
    x = q + m
    head = np.sum(k[::-1] ** -s)  # small terms first
    tail = x ** (1 - s) / (s - 1) + 0.5 * x**-s
    tail += s / 12 * x ** (-s - 1)  # B2/2! * s
    tail -= s * (s + 1) * (s + 2) / 720 * x ** (-s - 3)  # B4/4! * s(s+1)(s+2)
    return float(head + tail)


@pytest.mark.parametrize("s", [1.083, 1.2, 1.4, 1.8])
def test_jax_zeta_matches_scipy_and_euler_maclaurin(s):
    q = np.array([1.0, 2.0, 11.0, 1001.0, 1e6 + 1, 1e10])
    got = np.asarray(jax.scipy.special.zeta(jnp.float64(s), jnp.asarray(q)))
    np.testing.assert_allclose(got, scipy.special.zeta(s, q), **NAMED["zeta_scipy64"])
    ref = [hurwitz_reference(s, qi) for qi in q]
    np.testing.assert_allclose(got, ref, **NAMED["zeta_series64"])


@pytest.mark.parametrize("gamma", GAMMAS)
def test_tail_mass_matches_direct_sum(gamma):
    s = gamma + 1
    m = 100_000
    for n in [1, 10, 1_000, 1_000_000]:
        k = np.arange(n + 1, n + m + 1, dtype=np.float64)[::-1]
        head = np.sum(k**-s) + scipy.special.zeta(s, n + m + 1)
        total = np.sum(np.arange(1, m + 1, dtype=np.float64)[::-1] ** -s) + scipy.special.zeta(
            s, m + 1
        )
        got = float(quanta.tail_mass(n, gamma))
        np.testing.assert_allclose(got, head / total, rtol=TOL["float64"]["rtol"])
        assert got == pytest.approx(hurwitz_reference(s, n + 1) / hurwitz_reference(s, 1), 1e-10)


def test_tail_mass_dtype_and_zero():
    assert quanta.tail_mass(0, 0.4) == pytest.approx(1.0, rel=1e-14)
    assert quanta.tail_mass(10, 0.4, dtype=jnp.float32).dtype == jnp.float32
    assert quanta.tail_mass(10, 0.4).dtype == jnp.float64


def _loglog_slope(x, y):
    return np.polyfit(np.log(x), np.log(y), 1)[0]


@pytest.mark.parametrize("gamma", GAMMAS)
def test_exact_tail_slope_is_minus_gamma(gamma):
    n = np.geomspace(10, 1e4, 40)
    t = jax.vmap(lambda m: quanta.tail_mass(m, gamma))(jnp.asarray(n))
    slope = _loglog_slope(n, np.asarray(t))
    assert slope == pytest.approx(-gamma, rel=0.01)


def test_finite_k_bias_and_hurwitz_on_same_grid():
    n = np.geomspace(10, 1e4, 40)
    finite = jax.vmap(lambda m: quanta.tail_mass_finite(m, 0.2, 1e7))(jnp.asarray(n))
    exact = jax.vmap(lambda m: quanta.tail_mass(m, 0.2))(jnp.asarray(n))
    assert _loglog_slope(n, np.asarray(finite)) == pytest.approx(-0.230, abs=0.005)
    assert _loglog_slope(n, np.asarray(exact)) == pytest.approx(-0.2, rel=0.01)


def test_finite_tail_equals_explicit_zipf_sum():
    p = np.asarray(quanta.zipf_probs(0.4, 1000))
    assert p.sum() == pytest.approx(1.0, rel=1e-14)
    assert p[0] / p[9] == pytest.approx(10**1.4, rel=1e-12)
    for n in [0, 1, 10, 500, 999, 1000, 1500]:
        ref = p[n:].sum()
        np.testing.assert_allclose(
            float(quanta.tail_mass_finite(n, 0.4, 1000)), ref, **TOL["float64"]
        )


@pytest.mark.parametrize("gamma", [0.05, 0.2, 0.5, 1.0])
def test_half_shift_asymptotic(gamma):
    exact = float(quanta.tail_mass(10, gamma))
    shifted = float(quanta.tail_mass_asymptotic(10, gamma))
    plain = float(quanta.tail_mass_asymptotic(10, gamma, half_shift=False))
    assert abs(shifted / exact - 1) < 1e-3
    assert abs(plain / exact - 1) > 10 * abs(shifted / exact - 1)


def test_floor_rule_matches_brute_force(key):
    k = np.arange(1, 200_001, dtype=np.float64)
    for sub in jax.random.split(key, 20):
        ug, ud, ut = np.asarray(jax.random.uniform(sub, (3,), dtype=jnp.float64))
        gamma, data, tau = 0.1 + 0.8 * ug, 10 ** (1 + 5 * ud), 1.0 + 20 * ut
        z = scipy.special.zeta(gamma + 1)
        brute = np.sum(data * k ** -(gamma + 1) / z >= tau)
        assert brute < k.size
        assert float(quanta.learned_from_data(data, gamma, tau)) == brute, (gamma, data, tau)
    # an exact boundary: D p_3 = τ exactly up to rounding; the rule and n agree either way
    z = float(jax.scipy.special.zeta(1.4, 1.0))
    data = 5.0 * z * 3.0**1.4
    n = float(quanta.learned_from_data(data, 0.4, 5.0))
    assert n in (2.0, 3.0) and (data * (n + 1) ** -1.4 / z < 5.0)


def test_loss_of_steps_equals_data_law():
    for steps, batch in [(10.0, 7.0), (1e3, 20_000.0), (123.0, 1.0)]:
        got = quanta.loss_of_steps(steps, batch, 0.4, 10.0, 0.1, 0.7)
        want = quanta.loss_of_data(steps * batch, 0.4, 10.0, 0.1, 0.7)
        assert float(got) == float(want)


def test_parameter_law_and_loss_floors():
    loss = quanta.loss_of_parameters(1234.0, 0.4, 0.2, 0.9, params_per_quantum=10.0)
    assert float(loss) == pytest.approx(0.2 + 0.7 * float(quanta.tail_mass(123, 0.4)), rel=1e-14)
    assert float(quanta.to_bits(math.log(2.0))) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_data_law_slope_floor_rule(gamma):
    tau = 10.0
    z = scipy.special.zeta(gamma + 1)
    data = np.geomspace(tau * z * 30 ** (gamma + 1), tau * z * 3000 ** (gamma + 1), 30)
    loss = jax.vmap(lambda d: quanta.loss_of_data(d, gamma, tau))(jnp.asarray(data))
    assert _loglog_slope(data, np.asarray(loss)) == pytest.approx(-gamma / (gamma + 1), rel=0.005)


def test_explicit_data_law_constant():
    data = jnp.geomspace(1e6, 1e9, 20)
    n = jax.vmap(lambda d: quanta.learned_from_data(d, 0.4, 10.0))(data)
    assert float(n.min()) >= 100
    sim = jax.vmap(lambda d: quanta.loss_of_data(d, 0.4, 10.0, 0.1, 1.1))(data)
    explicit = jax.vmap(lambda d: quanta.loss_of_data_asymptotic(d, 0.4, 10.0, 0.1, 1.1))(data)
    np.testing.assert_allclose(
        np.asarray(explicit) - 0.1, np.asarray(sim) - 0.1, **NAMED["asymptotic"]
    )


def test_alpha_d_equals_alpha_n_over_alpha_n_plus_one():
    n = np.geomspace(10, 1e4, 40)
    for gamma in np.arange(1, 9) / 10:
        z = scipy.special.zeta(gamma + 1)
        data = np.geomspace(z * 30 ** (gamma + 1), z * 3000 ** (gamma + 1), 30)
        tail = jax.vmap(quanta.tail_mass, in_axes=(0, None))(jnp.asarray(n), gamma)
        a_n = -_loglog_slope(n, np.asarray(tail))
        loss_d = jax.vmap(quanta.loss_of_data, in_axes=(0, None, None))(
            jnp.asarray(data), gamma, 1.0
        )
        a_d = -_loglog_slope(data, np.asarray(loss_d))
        assert a_d == pytest.approx(a_n / (a_n + 1), rel=0.01), gamma


@pytest.fixture(scope="module")
def poisson_fn():
    return jax.jit(
        jax.vmap(
            lambda d, key: quanta.loss_of_data_poisson(d, 0.4, 10.0, num_quanta=5_000, key=key)
        )
    )


def test_poisson_data_law_slope(poisson_fn, key):
    z = scipy.special.zeta(1.4)
    data = np.geomspace(10 * z * 20**1.4, 10 * z * 500**1.4, 12)  # n(D) from 20 to 500
    seeds = jax.random.split(key, 3)
    loss = np.stack([np.asarray(poisson_fn(jnp.asarray(data), jnp.stack([k] * 12))) for k in seeds])
    assert np.all(np.isfinite(loss))
    assert _loglog_slope(data, loss.mean(0)) == pytest.approx(-0.4 / 1.4, rel=0.03)


def test_poisson_mean_matches_closed_form(poisson_fn, key):
    # poisson_fn: γ = 0.4, τ = 10, K = 5000; 10 calls x 12 keys = 120 replicas at D = 3e4.
    gamma, tau, data, num_quanta = 0.4, 10.0, 3e4, 5000
    keys = jax.random.split(key, (10, 12))
    loss = np.concatenate([np.asarray(poisson_fn(jnp.full((12,), data), k)) for k in keys])
    s = gamma + 1
    p = np.arange(1, num_quanta + 1, dtype=np.float64) ** -s / scipy.special.zeta(s)
    miss = scipy.special.gammaincc(tau, data * p)  # P(Poisson(λ) < τ) for integer τ
    mean = np.sum(p * miss) + scipy.special.zeta(s, num_quanta + 1) / scipy.special.zeta(s)
    std = np.sqrt(np.sum(p**2 * miss * (1 - miss)))
    # 5 standard errors: false-failure rate < 1e-6 (and the seed is fixed).
    assert abs(loss.mean() - mean) < 5 * std / np.sqrt(loss.size)
    assert loss.std() == pytest.approx(std, rel=0.3)  # sample std of 120: ±6.5% per sigma


def test_poisson_keys_and_truncation_guard(poisson_fn, key):
    k1, k2 = jax.random.split(key)
    d = jnp.full((12,), 1e5)
    a = np.asarray(poisson_fn(d, jnp.stack([k1] * 6 + [k2] * 6)))
    assert np.all(a[:6] == a[0]) and np.all(a[6:] == a[6]) and a[0] != a[6]
    assert np.all(np.isfinite(a))
    # K = 5000 quanta are far too few for D = 1e9 at τ = 10 (n(D) ≈ 2e5): the guard gives NaN.
    bound = float(quanta.poisson_truncation_bound(1e9, 0.4, 10.0, 5000))
    assert bound > 1e-3 * float(quanta.tail_mass(5000, 0.4))
    big = np.asarray(poisson_fn(jnp.full((12,), 1e9), jnp.stack([k1] * 12)))
    assert np.all(np.isnan(big))


def test_grid_equals_loop_over_single_configs(key):
    gamma = jnp.array([0.2, 0.6])
    num_params = jnp.array([30.0, 300.0, 3000.0])
    data = jnp.array([[1e3, 3e4, 1e6], [2e3, 5e4, 1e6]])  # one D grid per γ
    tau = jnp.array([3.0, 10.0])
    kw = dict(num_quanta_poisson=5000, params_per_quantum=2.0, num_quanta_finite=1e5)
    sim = jax.jit(quanta.simulate_grid, static_argnames=("num_seeds", "num_quanta_poisson"))
    grid = sim(gamma, num_params, data, tau, 0.05, 0.7, num_seeds=2, key=key, **kw)
    keys = jax.random.split(key, (2, 3, 2))
    # single-configuration references (the Poisson one jitted once; capacity=inf means None)
    poisson_single = jax.jit(functools.partial(quanta.loss_of_data_poisson, num_quanta=5000))
    loss_of_parameters, loss_of_data = quanta.loss_of_parameters, quanta.loss_of_data
    loss_of_quanta, learned_from_data = quanta.loss_of_quanta, quanta.learned_from_data
    for i, g in enumerate(gamma):
        for p, big_n in enumerate(num_params):
            want = loss_of_parameters(big_n, g, 0.05, 0.7, params_per_quantum=2.0)
            np.testing.assert_allclose(grid.loss_params[i, p], want, **TOL["float64"])
            want = loss_of_parameters(big_n, g, 0.05, 0.7, params_per_quantum=2.0, num_quanta=1e5)
            np.testing.assert_allclose(grid.loss_params_finite[i, p], want, **TOL["float64"])
        for j, d in enumerate(data[i]):
            for u, t in enumerate(tau):
                want = loss_of_data(d, g, t, 0.05, 0.7)
                np.testing.assert_allclose(grid.loss_data[i, j, u], want, **TOL["float64"])
                for p, big_n in enumerate(num_params):
                    cap = quanta.quanta_of_parameters(big_n, 2.0)
                    n = jnp.minimum(cap, learned_from_data(d, g, t))
                    want = loss_of_quanta(n, g, 0.05, 0.7)
                    np.testing.assert_allclose(grid.loss_joint[i, p, j, u], want, **TOL["float64"])
                for s in range(2):
                    caps = [jnp.inf] + [quanta.quanta_of_parameters(n, 2.0) for n in num_params]
                    want = [
                        poisson_single(d, g, t, 0.05, 0.7, capacity=c, key=keys[i, j, s])
                        for c in caps
                    ]
                    got = grid.loss_data_poisson[i, j, u, s]
                    np.testing.assert_allclose(got, want[0], **TOL["float64"])
                    got = grid.loss_joint_poisson[i, :, j, u, s]
                    np.testing.assert_allclose(got, want[1:], equal_nan=True, **TOL["float64"])
    # K = 5000 suffices up to D = 3e4; at D = 1e6 and τ = 3 the truncation guard fires.
    finite = np.isfinite(np.asarray(grid.loss_data_poisson))
    assert np.all(finite[:, :2]) and not np.all(finite[:, 2, 0])
    # every capacity (≤ 1500 quanta) is below K, so nothing is truncated on the joint grid
    assert np.all(np.isfinite(np.asarray(grid.loss_joint_poisson)))
    # seeds differ, and the joint law never beats either limit alone
    assert np.any(grid.loss_data_poisson[..., 0] != grid.loss_data_poisson[..., 1])
    assert np.all(grid.loss_joint >= grid.loss_data[:, None] - 1e-15)


def test_fit_power_law_exact_window_and_mask():
    x = jnp.geomspace(1.0, 1e4, 30)
    y = 2.5 * x**-0.37
    y = jnp.where(x > 1e3, 1.0, y).at[0].set(-1.0).at[1].set(jnp.nan)  # outliers out of window
    fit = quanta.fit_power_law(x, y, window=(1.5, 1e3))
    assert float(fit.exponent) == pytest.approx(-0.37, rel=1e-10)
    assert float(fit.prefactor) == pytest.approx(2.5, rel=1e-10)
    assert float(fit.r_squared) == pytest.approx(1.0, abs=1e-12)
    xn = np.asarray(x)
    assert int(fit.num_points) == np.sum((xn >= 1.5) & (xn <= 1e3) & (np.arange(30) > 1))
    assert np.isnan(float(fit.ci_low)) and np.isnan(float(fit.ci_high))
    with pytest.raises(ValueError, match="key"):
        quanta.fit_power_law(x, y, num_bootstrap=10)


def test_fit_power_law_matches_polyfit_and_bootstrap_width(key):
    k1, k2 = jax.random.split(key)
    x = np.geomspace(10, 1e4, 25)
    y = 3 * x**-0.3 * np.exp(0.05 * np.asarray(jax.random.normal(k1, (25,), dtype=jnp.float64)))
    fit = jax.jit(
        lambda x, y, k: quanta.fit_power_law(x, y, num_bootstrap=2000, key=k),
    )(jnp.asarray(x), jnp.asarray(y), k2)
    (slope, icpt), cov = np.polyfit(np.log(x), np.log(y), 1, cov="unscaled")
    assert float(fit.exponent) == pytest.approx(slope, rel=1e-10)
    assert float(fit.prefactor) == pytest.approx(np.exp(icpt), rel=1e-10)
    resid = np.log(y) - (icpt + slope * np.log(x))
    se = np.sqrt(cov[0, 0] * np.sum(resid**2) / (25 - 2))
    assert float(fit.ci_low) < slope < float(fit.ci_high)
    # percentile bootstrap width ≈ 2·1.96·SE of OLS (within 30% at 25 points)
    assert float(fit.ci_high - fit.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.3)


def test_fit_power_law_float32_and_vmap():
    x = jnp.geomspace(1.0, 100.0, 10, dtype=jnp.float32)
    y_S = jnp.stack([x**-0.5, 2 * x**-0.25])
    fits = jax.vmap(lambda y: quanta.fit_power_law(x, y))(y_S)
    assert fits.exponent.dtype == jnp.float32
    np.testing.assert_allclose(fits.exponent, [-0.5, -0.25], **NAMED["lstsq_fp32"])


def test_sweep_data_laws_steps_are_data_law_at_s_times_b():
    data = jnp.geomspace(1e2, 1e6, 7)
    laws = quanta.sweep.data_laws(0.4, data, batch=16, tau=10.0, a=0.0, b=1.0)
    np.testing.assert_array_equal(laws.loss_steps, laws.loss_data_at_steps)
    np.testing.assert_allclose(laws.steps * 16, data, **TOL["float64"])
    want = [quanta.loss_of_data(float(d), 0.4, 10.0, 0.0, 1.0) for d in data]
    np.testing.assert_allclose(laws.loss_steps, want, **TOL["float64"])


def test_sweep_fit_exponents_recovers_planted_power_laws(key):
    """Exact power laws with planted exponents come back from every fit (with the floor a)."""
    gamma, a, taus = 0.4, 0.1, (5.0, 10.0)
    num_params = np.geomspace(1.0, 1e5, 30)
    data = np.geomspace(10.0, 1e8, 40)
    planted = dict(n=0.37, nk=0.45, d=(0.21, 0.29), p=(0.22, 0.3))
    law = lambda x, alpha: a + 2.0 * x**-alpha
    loss_data = np.stack([law(data, x) for x in planted["d"]], -1)
    poisson = np.stack([law(data, x) for x in planted["p"]], -1)[..., None].repeat(3, -1)
    ex = quanta.sweep.fit_exponents(
        gamma, num_params, law(num_params, planted["n"]), law(num_params, planted["nk"]),
        data, loss_data, poisson, law(data, planted["d"][1]), taus=taus, tau_ref=1, a=a,
        params_window=(10.0, 1e4), quanta_window=(2.0, 100.0), batch=8, num_bootstrap=50,
        key=key,
    )  # fmt: skip
    close = functools.partial(np.testing.assert_allclose, **NAMED["polyfit64"])
    close(ex.alpha_N, planted["n"])
    close(ex.alpha_N_finite, planted["nk"])
    close(ex.alpha_D_U, planted["d"])
    close(ex.alpha_D_poisson_U, planted["p"])
    close(ex.alpha_S, planted["d"][1])
    # exact data: every bootstrap resample gives the same slope
    close(ex.poisson_lo_U, planted["p"])
    close(ex.poisson_hi_U, planted["p"])
    for u, tau in enumerate(taus):
        lo, hi = (float(quanta.data_for_quanta(n, gamma, tau)) for n in (2.0, 100.0))
        close([ex.window_lo_U[u], ex.window_hi_U[u]], [lo, hi])
        assert int(ex.points_U[u]) == np.sum((data >= lo) & (data <= hi))


def test_sweep_increasing():
    assert quanta.sweep.increasing([0.1, 0.2, 0.5])
    assert not quanta.sweep.increasing([0.1, 0.1, 0.5])
    assert not quanta.sweep.increasing([0.3, 0.2])


def test_gpu_config_loads():
    """The :gpu variant is only loaded here (it is sized for one H100)."""
    from jaxlab import launch

    c = launch.load_config("quanta_theory:gpu")
    assert c.data.num_seeds > launch.load_config("quanta_theory:quick").data.num_seeds
    assert 0.4 in c.model.gammas and c.known_disagreements == ()
