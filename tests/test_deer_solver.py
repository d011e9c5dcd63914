"""Tests for jaxlab.deer: every mode against lax.scan, the <= T property, implicit gradients."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import NAMED

from jaxlab import deer
from jaxlab.deer import cells

T, N, M = 32, 4, 3


def _problem(cell, dtype, *, key, scale=1.0, t=T, n=N):
    step, init = cells.CELLS[cell]
    k1, k2 = jax.random.split(key)
    params = init(n, M, scale=scale, dtype=dtype, key=k1)
    xs = jax.random.normal(k2, (t, M)).astype(dtype)
    y0 = jnp.full((cells.state_size(cell, n),), 0.1, dtype)
    return step, y0, xs, params


def _tight(dtype):
    return NAMED["solver_tight64"] if dtype == jnp.float64 else NAMED["solver_tight32"]


@functools.partial(jax.jit, static_argnames=("step", "dtype"))
def _all_modes(y0, xs, params, A, step, dtype):
    """Every mode on one problem, in one compile. Newton: associative scan, default tolerances
    (float32) or tight ones (float64); linear modes: tight tolerances, sequential linear solves
    (the associative path is covered by the Newton run and tests/test_deer_scan.py)."""
    run = lambda method, **kw: deer.deer(step, y0, xs, params, method=method, **kw)
    out = {"sequential": run(deer.Sequential())}
    out["newton"] = run(deer.Newton(), **(_tight(dtype) if dtype == jnp.float64 else {}))
    tight, seq = _tight(dtype), "sequential"
    out["quasi"] = run(deer.Quasi(scan=seq), **tight)
    out["picard"] = run(deer.Picard(), **tight)
    out["su"] = run(deer.Constant(A, scan=seq), **tight)
    out["block"] = run(deer.Block(2, scan=seq), **tight)
    return out


_slow = pytest.mark.slow  # ~5 s CPU each; the fast suite keeps one float64 and two float32 cells


@pytest.mark.parametrize(
    "cell,dtype",
    [
        ("tanh", jnp.float64),
        ("gru", jnp.float32),
        ("lstm", jnp.float32),
        pytest.param("tanh", jnp.float32, marks=_slow),
        pytest.param("gru", jnp.float64, marks=_slow),
        pytest.param("lstm", jnp.float64, marks=_slow),
    ],
)
def test_every_mode_equals_sequential(cell, dtype, key):
    with jax.enable_x64(dtype == jnp.float64):
        step, y0, xs, params = _problem(cell, dtype, key=key)
        A = 0.5 * jnp.eye(y0.shape[0], dtype=dtype)
        out = _all_modes(y0, xs, params, A, step, dtype)
        ref = deer.sequential(step, y0, xs, params)
        bound = 1e-10 if dtype == jnp.float64 else 1e-5
        for mode, res in out.items():
            assert res.value.dtype == dtype
            err = float(jnp.max(jnp.abs(res.value - ref)))
            assert bool(res.converged), mode
            assert int(res.iterations) <= T, mode
            assert err <= bound, (mode, err)
        assert int(out["newton"].iterations) < int(out["picard"].iterations)


@pytest.mark.slow  # ~8 s CPU compile; the LM step itself is tested in tests/test_deer_scan.py
def test_damped_modes_converge_float64(key):
    with jax.enable_x64(True):
        step, y0, xs, params = _problem("tanh", jnp.float64, key=key, t=16)
        ref = deer.sequential(step, y0, xs, params)
        run = jax.jit(
            lambda y0, xs, p, s: (
                deer.deer(
                    step,
                    y0,
                    xs,
                    p,
                    method=deer.Damped(sigmasq=s, adaptive=False),
                    max_iter=400,
                    **_tight(jnp.float64),
                ),
                deer.deer_trace(
                    step, y0, xs, p, num_iters=1, method=deer.Damped(sigmasq=s, adaptive=False)
                )[0],
            )
        )
        newton1 = deer.deer_trace(
            step, y0, xs, params, num_iters=1, method=deer.Newton(scan="sequential")
        )[0]
        res, one = run(y0, xs, params, 1e12)
        assert bool(res.converged)
        assert float(jnp.max(jnp.abs(res.value - ref))) <= 1e-10
        # sigmasq large: Newton
        np.testing.assert_allclose(one, newton1, **NAMED["damped_newton64"])
        res_small, one_small = run(y0, xs, params, 10.0)  # strong damping: slow, linear
        y_init = jnp.broadcast_to(y0, one.shape)
        assert float(jnp.max(jnp.abs(one_small - y_init))) < float(jnp.max(jnp.abs(one - y_init)))
        assert bool(res_small.converged)
        assert int(res_small.iterations) > int(res.iterations)
        assert float(jnp.max(jnp.abs(res_small.value - ref))) <= 1e-9


@pytest.mark.parametrize("mode", ["newton", "quasi", "picard", "constant"])
def test_first_k_states_exact_after_k_sweeps(mode, key):
    """Through the config-layer names (deer.method_from_name), as the runners call it."""
    with jax.enable_x64(True):
        step, y0, xs, params = _problem("tanh", jnp.float64, key=key, scale=1.5, t=60)
        A = 1.5 * jax.random.normal(key, (N, N), jnp.float64) / N**0.5  # rho(A) > 1 likely
        trace = jax.jit(
            lambda y0, xs, p: deer.deer_trace(
                step,
                y0,
                xs,
                p,
                num_iters=60,
                method=deer.method_from_name(mode, A=A, scan="sequential"),
            )
        )(y0, xs, params)
        ref = np.asarray(deer.sequential(step, y0, xs, params))
        for k in (1, 5, 50, 60):
            np.testing.assert_allclose(trace[k - 1, :k], ref[:k], **NAMED["recompute64"])
        # Not yet exact beyond the prefix at the first sweep: the property is not trivial.
        assert np.max(np.abs(trace[0] - ref)) > 1e-3


def test_constant_mode_unstable_A_still_converges_within_T(key):
    with jax.enable_x64(True):
        step, y0, xs, params = _problem("tanh", jnp.float64, key=key, t=40)
        A = 3.0 * jnp.eye(N, dtype=jnp.float64)  # rho(A) = 3: every sweep overflows
        res = deer.deer(step, y0, xs, params, method=deer.Constant(A, scan="sequential"))
        assert bool(res.converged) and int(res.iterations) <= 40
        ref = deer.sequential(step, y0, xs, params)
        assert float(jnp.max(jnp.abs(res.value - ref))) <= 1e-10


def test_iteration_counts_and_quadratic_convergence(key):
    with jax.enable_x64(True):
        step, y0, xs, params = _problem("tanh", jnp.float64, key=key, scale=1.0, t=200)
        tol = NAMED["solver_counts64"]
        methods = dict(
            newton=deer.Newton(scan="sequential"),
            quasi=deer.Quasi(scan="sequential"),
            picard=deer.Picard(),
        )
        its = {
            m: int(deer.deer(step, y0, xs, params, method=method, **tol).iterations)
            for m, method in methods.items()
        }
        assert its["newton"] <= 20
        assert its["quasi"] > its["newton"] and its["picard"] > its["newton"]
        trace = deer.deer_trace(step, y0, xs, params, num_iters=its["newton"])
        ref = deer.sequential(step, y0, xs, params)
        errs = np.max(np.abs(np.asarray(trace) - np.asarray(ref)[None]), axis=(1, 2))
        near = [(a, b) for a, b in zip(errs[:-1], errs[1:], strict=True) if 1e-7 < a < 1e-2]
        assert near, errs
        for a, b in near:  # quadratic: e_{k+1} <= C e_k^2 with a modest C
            assert b / a**2 < 1e3, errs


def _loss(solver, step, y0, xs, params, w):
    return jnp.sum(w * jnp.sin(solver(step, y0, xs, params)))


_solvers = {
    "deer": lambda step, y0, xs, p: deer.deer(step, y0, xs, p).value,
    # float64 runs use sequential linear solves (cheaper to compile); the associative adjoint is
    # covered by the float32 tests.
    "deer_tight": lambda step, y0, xs, p: (
        deer.deer(
            step, y0, xs, p, method=deer.Newton(scan="sequential"), **NAMED["solver_tight64"]
        ).value
    ),
    "deer_mem": lambda step, y0, xs, p: (
        deer.deer(
            step,
            y0,
            xs,
            p,
            method=deer.Newton(scan="sequential"),
            **NAMED["solver_tight64"],
            memory_efficient=True,
        ).value
    ),
    "bptt": deer.sequential,
}


@functools.partial(jax.jit, static_argnames=("solver", "step"))
def _grad(y0, xs, params, w, solver, step):
    return jax.grad(lambda *a: _loss(_solvers[solver], step, *a, w), argnums=(0, 1, 2))(
        y0, xs, params
    )


def _rel_err(a, b):
    a, b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    num = max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a, b, strict=True))
    return num / max(float(jnp.max(jnp.abs(v))) for v in b)


@pytest.mark.parametrize("cell", ["tanh", pytest.param("gru", marks=_slow)])
def test_gradients_float64_match_bptt_and_finite_differences(cell, key):
    with jax.enable_x64(True):
        step, y0, xs, params = _problem(cell, jnp.float64, key=key, t=32)
        w = jax.random.normal(jax.random.fold_in(key, 1), (32, N), jnp.float64)
        g_deer = _grad(y0, xs, params, w, "deer_tight", step)
        g_bptt = _grad(y0, xs, params, w, "bptt", step)
        assert _rel_err(g_deer, g_bptt) <= 1e-8
        assert _rel_err(_grad(y0, xs, params, w, "deer_mem", step), g_bptt) <= 1e-8
        # Central differences on a few coordinates of y0, xs and the first weight matrix.
        h = 1e-6
        loss = jax.jit(lambda y0, xs, p: _loss(_solvers["deer_tight"], step, y0, xs, p, w))
        w0 = params[0]
        for name, idx in [("y0", (1,)), ("xs", (5, 2)), ("p", (0,) * w0.ndim)]:

            def shifted(s, name=name, idx=idx):
                if name == "y0":
                    return loss(y0.at[idx].add(s), xs, params)
                if name == "xs":
                    return loss(y0, xs.at[idx].add(s), params)
                return loss(y0, xs, params._replace(**{params._fields[0]: w0.at[idx].add(s)}))

            fd = (shifted(h) - shifted(-h)) / (2 * h)
            g = {"y0": g_deer[0], "xs": g_deer[1], "p": g_deer[2][0]}[name][idx]
            assert abs(float(fd - g)) <= 1e-6 * max(abs(float(g)), 1e-3), name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gradients_float32_default_tolerance_match_bptt(cell, key):
    step, y0, xs, params = _problem(cell, jnp.float32, key=key)
    w = jax.random.normal(jax.random.fold_in(key, 1), (T, y0.shape[0]), jnp.float32)
    err = _rel_err(_grad(y0, xs, params, w, "deer", step), _grad(y0, xs, params, w, "bptt", step))
    assert err <= 1e-4


def test_backward_rule_has_no_loop_and_does_not_depend_on_iterations(key):
    step, y0, xs, params = _problem("tanh", jnp.float32, key=key, t=16)
    w = jnp.ones((16, N), jnp.float32)
    grad = jax.grad(lambda p: _loss(_solvers["deer"], step, y0, xs, p, w))
    easy = params._replace(W=0.1 * params.W)
    hard = params._replace(W=3.0 * params.W)
    its = [int(deer.deer(step, y0, xs, p).iterations) for p in (easy, hard)]
    assert its[0] < its[1]
    jaxprs = [str(jax.make_jaxpr(grad)(p)) for p in (easy, hard)]
    assert jaxprs[0] == jaxprs[1]
    assert jaxprs[0].count("while[") == 1  # the forward solve only; reverse mode of a
    # while_loop would raise, so a working grad proves the custom_vjp is used.


def test_vmap_equals_stack_and_iterations_per_element(key):
    step, y0, xs, params = _problem("tanh", jnp.float32, key=key, t=32)
    w_b = jnp.stack([0.1 * params.W, params.W, 3.0 * params.W])
    solve = jax.jit(lambda w: deer.deer(step, y0, xs, params._replace(W=w)))
    batched = jax.jit(jax.vmap(solve))(w_b)
    singles = [solve(w) for w in w_b]
    for i, single in enumerate(singles):
        np.testing.assert_allclose(batched.value[i], single.value, **NAMED["vmap_fp32"])
        assert int(batched.iterations[i]) == int(single.iterations)
    assert len(set(np.asarray(batched.iterations).tolist())) > 1


def test_no_recompilation_on_repeated_calls(key):
    step, y0, xs, params = _problem("gru", jnp.float32, key=key, t=16)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def solve(y0, xs, params):
        return deer.deer(step, y0, xs, params).value

    for i in range(3):
        solve(y0 + i, xs * (i + 1), params)


def test_rejects_low_precision_and_bad_method(key):
    step, y0, xs, params = _problem("tanh", jnp.float32, key=key, t=4)
    with pytest.raises(TypeError, match="float32 and float64"):
        deer.deer(step, y0.astype(jnp.bfloat16), xs, params)
    with pytest.raises(ValueError, match="method must be a solver object.*method_from_name"):
        deer.deer(step, y0, xs, params, method="quasi")
    with pytest.raises(ValueError, match="mode must be one of"):
        deer.method_from_name("magic")
    with pytest.raises(ValueError, match="needs the matrix A"):
        deer.method_from_name("constant")
    with pytest.raises(ValueError, match="needs block_size"):
        deer.method_from_name("block")
    with pytest.raises(ValueError, match="scan must be one of"):
        deer.Newton(scan="fast")
    with pytest.raises(ValueError, match="Block size"):
        deer.Block(0)


def test_method_from_name_maps_every_config_name():
    got = {name: deer.method_from_name(name, A=jnp.eye(2), block_size=2) for name in deer.METHODS}
    assert got["newton"] == deer.Newton() and got["quasi"] == deer.Quasi()
    assert got["block"] == deer.Block(2) and got["picard"] == deer.Picard()
    assert isinstance(got["constant"], deer.Constant) and got["sequential"] == deer.Sequential()
    assert not got["damped"].quasi and got["quasi_damped"].quasi
    assert deer.method_from_name("su", A=jnp.eye(2), scan="sequential").scan == "sequential"
    assert deer.method_from_name("damped", sigmasq=1e2, scan="sequential").sigmasq == 1e2


def test_full_trace_records_every_iterate(key):
    with jax.enable_x64(True):
        step, y0, xs, params = _problem("tanh", jnp.float64, key=key, t=16)
        opts = dict(method=deer.Quasi(scan="sequential"), **NAMED["solver_tight64"])
        res = deer.deer(step, y0, xs, params, full_trace=True, **opts)
        k = int(res.iterations)
        assert res.trace.shape == (16, 16, N) and 1 < k <= 16
        fixed = deer.deer_trace(
            step, y0, xs, params, num_iters=k, method=deer.Quasi(scan="sequential")
        )
        np.testing.assert_allclose(res.trace[:k], fixed, **NAMED["recompute64"])
        np.testing.assert_array_equal(res.trace[-1], res.value)
        assert deer.deer(step, y0, xs, params, **opts).trace is None
