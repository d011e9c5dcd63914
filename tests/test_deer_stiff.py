"""DEER on stiff and chaotic cells (issue: no silent wrong answers).

Property, for every method in float32 and float64: either the result is within the dtype's
tolerance of ``lax.scan`` or ``converged`` is False. The bound follows from the checks of
:func:`jaxlab.deer.deer`: a converged result has forward-error estimate <= 10 tol and a rounding
floor (kappa eps |y|) <= tol, and ``lax.scan`` has the same floor, so |y - y_scan| <= 12 tol with
tol = atol + rtol max|y_scan| (default tolerances of the dtype).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import NAMED

from jaxlab import deer
from jaxlab.deer import cells

N = 4


def _problem(cell, scale, seed, dtype, t):
    step, init = cells.CELLS[cell]
    k1, k2 = jax.random.split(jax.random.key(seed))
    p = init(N, N, dtype=dtype, key=k1)
    p = p._replace(U=scale * p.U) if cell == "gru" else p._replace(W=scale * p.W)
    return step, p, jax.random.normal(k2, (t, N)).astype(dtype)


def _methods(A):
    return {
        "newton": deer.Newton(),
        "quasi": deer.Quasi(),
        "block": deer.Block(2),
        "picard": deer.Picard(),
        "constant": deer.Constant(A),
        "damped": deer.Damped(),
        "damped_1e2": deer.Damped(sigmasq=1e2),
        "quasi_damped": deer.Damped(quasi=True),
    }


@functools.partial(jax.jit, static_argnames=("step", "names"))
def _solve_all(params, xs, step, names):
    """Every method on a population of problems (vmapped), one compile. ``damped`` and
    ``damped_1e2`` share one while loop: the initial sigma^2 (a traced option of Damped) is
    vmapped over (1e8, 1e2)."""

    def one(p, x):
        y0 = jnp.zeros((N,), x.dtype)
        a = p.U[2] if hasattr(p, "U") else p.W
        rest = [m for m in names if m not in ("damped", "damped_1e2")]
        out = {m: deer.deer(step, y0, x, p, method=_methods(a)[m]) for m in rest}
        if "damped" in names or "damped_1e2" in names:
            sig = jnp.array([1e8, 1e2], x.dtype)
            pair = jax.vmap(lambda s: deer.deer(step, y0, x, p, method=deer.Damped(sigmasq=s)))(sig)
            for i, m in enumerate(("damped", "damped_1e2")):
                if m in names:
                    out[m] = jax.tree.map(lambda v, i=i: None if v is None else v[i], pair)
        return out, deer.sequential(step, y0, x, p)

    return jax.vmap(one)(params, xs)


def _check_property(results, ref, dtype, where):
    atol, rtol = deer.default_tolerances(dtype)
    tol = atol + rtol * np.max(np.abs(np.asarray(ref)), axis=(1, 2))
    for name, res in results.items():
        err = np.max(np.abs(np.asarray(res.value) - np.asarray(ref)), axis=(1, 2))
        conv = np.asarray(res.converged)
        bad = conv & ~(err <= 12 * tol)  # NaN errors count as wrong
        assert not bad.any(), (where, name, err[bad], np.asarray(res.condition)[bad])
    return {name: np.asarray(res.converged) for name, res in results.items()}


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


_ALL = ("newton", "quasi", "block", "picard", "constant", "damped", "damped_1e2", "quasi_damped")


_SLOW = pytest.mark.slow  # ~30 s CPU each (one compile of 7 while loops, verify included)


@pytest.mark.parametrize(
    "cell, dtype, t",
    [
        ("gru", jnp.float32, 64),  # the damped case (GRU x5, float32)
        ("tanh", jnp.float64, 64),  # damped used to stall here (float64 tanh x3, x5)
        pytest.param("tanh", jnp.float32, 64, marks=_SLOW),
        pytest.param("gru", jnp.float64, 64, marks=_SLOW),
        pytest.param("gru", jnp.float32, 200, marks=_SLOW),
        pytest.param("tanh", jnp.float32, 200, marks=_SLOW),
        pytest.param("gru", jnp.float64, 200, marks=_SLOW),
        pytest.param("tanh", jnp.float64, 200, marks=_SLOW),
    ],
)
def test_stiff_cells_every_method_correct_or_not_converged(cell, dtype, t):
    """Recurrent weights scaled 1, 3, 5, seeds 0 and 1, every method (both damped starts)."""
    with jax.enable_x64(dtype == jnp.float64):
        probs = [_problem(cell, s, seed, dtype, t) for s in (1.0, 3.0, 5.0) for seed in (0, 1)]
        step = probs[0][0]
        params, xs = _stack([p for _, p, _ in probs]), jnp.stack([x for _, _, x in probs])
        results, ref = _solve_all(params, xs, step, _ALL)
        conv = _check_property(results, ref, dtype, (cell, jnp.dtype(dtype).name, t))
    # Not vacuous: Newton converges on the well-conditioned problems (scale 1), and every
    # method converges somewhere.
    assert conv["newton"][:2].all(), conv
    for name, c in conv.items():
        assert c.any(), (name, c)
    if dtype == jnp.float64:
        # float64 determines these trajectories (kappa eps << tol): Newton and both damped
        # starts must converge on every problem. Damped used to stop after 4T sweeps at
        # residual ~1 on the x3/x5 tanh cells (sigma^2 cycling between 1e1 and 1e2).
        for name in ("newton", "damped", "damped_1e2"):
            assert conv[name].all(), (name, conv[name])


def test_vmapped_picard_equals_single_solves():
    """vmap(deer) on a stiff float64 tanh population gives each element's unbatched result
    (converged flag, sweep count and states) for Picard, the mode once reported to differ."""
    with jax.enable_x64(True):
        probs = [_problem("tanh", s, seed, jnp.float64, 64) for s in (1.0, 5.0) for seed in (0, 1)]
        step = probs[0][0]
        params, xs = _stack([p for _, p, _ in probs]), jnp.stack([x for _, _, x in probs])
        y0 = jnp.zeros((N,), jnp.float64)
        solve = jax.jit(lambda x, p: deer.deer(step, y0, x, p, method=deer.Picard()))
        batched = jax.jit(jax.vmap(solve))(xs, params)
        for i in range(len(probs)):
            one = solve(xs[i], jax.tree.map(lambda a, i=i: a[i], params))
            assert bool(one.converged) == bool(batched.converged[i]), i
            assert int(one.iterations) == int(batched.iterations[i]), i
            np.testing.assert_allclose(one.value, batched.value[i], **NAMED["recompute64"])


@pytest.mark.slow  # ~20 s CPU
def test_damped_float32_stiff_gru_regression():
    """The issue's case: GRU, recurrent weights x5, float32. Damped used to return |y| ~ 1e2
    with converged=True; now it converges to lax.scan (seed 0 is not chaotic)."""
    step, params, xs = _problem("gru", 5.0, 0, jnp.float32, 300)
    y0 = jnp.zeros((N,), jnp.float32)
    res = jax.jit(lambda x, p: deer.deer(step, y0, x, p, method=deer.Damped()))(xs, params)
    ref = deer.sequential(step, y0, xs, params)
    atol, rtol = deer.default_tolerances(jnp.float32)
    assert bool(res.converged)
    assert float(jnp.max(jnp.abs(res.value - ref))) <= atol + rtol  # the dtype's tolerance
    assert float(jnp.max(jnp.abs(res.value))) <= 1.0 + 1e-6  # a GRU state is bounded by 1


@pytest.mark.slow  # ~30 s CPU (T = 1000, float32 and float64)
def test_chaotic_gru_float32_is_flagged_not_converged():
    """GRU x5, seed 1, T = 1000, float32: the trajectory is not determined by float32 (kappa ~
    1e5, Newton and lax.scan differ by ~1e-2). Newton must not call it converged; float64
    determines it and converges."""
    step, params, xs = _problem("gru", 5.0, 1, jnp.float32, 1000)
    y0 = jnp.zeros((N,), jnp.float32)
    solve = jax.jit(lambda x, p, y0: deer.deer(step, y0, x, p))
    res = solve(xs, params, y0)
    err = float(jnp.max(jnp.abs(res.value - deer.sequential(step, y0, xs, params))))
    atol, rtol = deer.default_tolerances(jnp.float32)
    assert err > atol + rtol  # the premise: float32 does not determine this trajectory
    assert not bool(res.converged)
    assert float(res.condition) * float(jnp.finfo(jnp.float32).eps) > atol + rtol
    with jax.enable_x64(True):
        step, params, xs = _problem("gru", 5.0, 1, jnp.float64, 1000)
        y0 = jnp.zeros((N,), jnp.float64)
        res = solve(xs, params, y0)
        assert bool(res.converged)
        ref = deer.sequential(step, y0, xs, params)
        assert float(jnp.max(jnp.abs(res.value - ref))) <= 1e-10


@pytest.mark.parametrize("cell, dtype", [("gru", jnp.float32), ("tanh", jnp.float64)])
def test_randomised_property_over_scales(cell, dtype):
    """A seeded random sweep (hypothesis is not installed): 6 draws of recurrent scale in
    [1, 5] and seed, every method. Same shapes as the fixed-scale test above (T = 64, 6
    problems), so the compiled solver is reused and the sweep costs only its run time."""
    rng = np.random.default_rng(20240719 + (dtype == jnp.float64))
    draws = [(float(rng.uniform(1.0, 5.0)), int(rng.integers(1e6))) for _ in range(6)]
    with jax.enable_x64(dtype == jnp.float64):
        probs = [_problem(cell, scale, seed, dtype, 64) for scale, seed in draws]
        params, xs = _stack([p for _, p, _ in probs]), jnp.stack([x for _, _, x in probs])
        results, ref = _solve_all(params, xs, probs[0][0], _ALL)
        _check_property(results, ref, dtype, (cell, draws))
