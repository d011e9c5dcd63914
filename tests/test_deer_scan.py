"""Tests for jaxlab.deer.scan: associative scans vs NumPy loops, associativity, damped steps."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import NAMED, tol

from jaxlab.deer import scan


def _random_problem(rng, t, d, layout, k=2):
    if layout == "dense":
        a = rng.normal(size=(t, d, d)) / np.sqrt(d)
    elif layout == "diag":
        a = rng.normal(size=(t, d))
    else:
        a = rng.normal(size=(t, d // k, k, k)) / np.sqrt(k)
    return a, rng.normal(size=(t, d)), rng.normal(size=(d,))


def _dense(a, layout):
    """Per-step dense matrices [T, D, D] from any layout (NumPy)."""
    if layout == "dense":
        return a
    if layout == "diag":
        return np.stack([np.diag(row) for row in a])
    t, g, k, _ = a.shape
    out = np.zeros((t, g * k, g * k))
    for i in range(g):
        out[:, i * k : (i + 1) * k, i * k : (i + 1) * k] = a[:, i]
    return out


def _numpy_recurrence(a, b, y0, reverse=False):
    t = b.shape[0]
    ys, y = np.zeros_like(b), y0
    for i in reversed(range(t)) if reverse else range(t):
        y = a[i] @ y + b[i]
        ys[i] = y
    return ys


_jitted = functools.partial(jax.jit, static_argnames=("layout", "reverse", "method"))(
    scan.linear_recurrence
)


@functools.partial(jax.jit, static_argnames=("layout",))
def _all_variants(a, b, y0, layout):
    """Forward and reverse, associative and sequential: one compile per shape."""
    return {
        (reverse, method): scan.linear_recurrence(
            a, b, y0, layout=layout, reverse=reverse, method=method
        )
        for reverse in (False, True)
        for method in scan.METHODS
    }


@pytest.mark.parametrize("layout", scan.LAYOUTS)
@pytest.mark.parametrize("t", [1, 2, 7, pytest.param(1000, marks=pytest.mark.slow)])
def test_associative_equals_numpy_float64(layout, t):
    rng = np.random.default_rng(t)
    a, b, y0 = _random_problem(rng, t, 4, layout)
    dense = _dense(a, layout)
    if t == 1000:  # keep products bounded over long horizons
        rho = np.max(np.abs(np.linalg.eigvals(dense)), axis=-1)
        a = 0.9 * a / rho.reshape((t,) + (1,) * (a.ndim - 1))
        dense = _dense(a, layout)
    with jax.enable_x64(True):
        got = _all_variants(jnp.asarray(a), jnp.asarray(b), jnp.asarray(y0), layout)
    for (reverse, method), y in got.items():
        want = _numpy_recurrence(dense, b, y0, reverse)
        np.testing.assert_allclose(y, want, **tol("float64"), err_msg=f"{reverse} {method}")


def test_associative_long_diag_float64():
    """T = 1000 in the fast suite for the cheap layout (dense/block: -m slow)."""
    rng = np.random.default_rng(5)
    t, d = 1000, 4
    a = rng.uniform(-0.99, 0.99, size=(t, d))
    b, y0 = rng.normal(size=(t, d)), rng.normal(size=(d,))
    with jax.enable_x64(True):
        got = _jitted(jnp.asarray(a), jnp.asarray(b), jnp.asarray(y0), layout="diag")
    np.testing.assert_allclose(got, _numpy_recurrence(_dense(a, "diag"), b, y0), **tol("float64"))


def test_associative_float32_long_diag():
    """T = 4097 (not a power of 2), float32 against the float64 loop, relative 1e-5."""
    rng = np.random.default_rng(0)
    t, d = 4097, 3
    a = rng.uniform(-0.99, 0.99, size=(t, d))
    b, y0 = rng.normal(size=(t, d)), rng.normal(size=(d,))
    want = _numpy_recurrence(_dense(a, "diag"), b, y0)
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    got = _jitted(f32(a), f32(b), f32(y0), layout="diag")
    assert got.dtype == jnp.float32
    scale = np.max(np.abs(want))
    assert np.max(np.abs(np.asarray(got, np.float64) - want)) / scale <= 1e-5


@pytest.mark.parametrize(
    "combine,layout",
    [(scan.combine_dense, "dense"), (scan.combine_diag, "diag"), (scan.combine_block, "block")],
)
def test_operator_is_associative_and_ordered(combine, layout):
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        elems = [_random_problem(rng, 1, 4, layout)[:2] for _ in range(3)]
        if layout == "block":
            elems = [(a[0], b[0].reshape(2, 2)) for a, b in elems]
        else:
            elems = [(a[0], b[0]) for a, b in elems]
        x, y, z = [tuple(map(jnp.asarray, e)) for e in elems]
        left = combine(combine(x, y), z)
        right = combine(x, combine(y, z))
        for u, v in zip(left, right, strict=True):
            np.testing.assert_allclose(u, v, **NAMED["recompute64"])
        if layout != "diag":  # earlier-then-later: applying x then y to h
            h = rng.normal(size=elems[0][1].shape)
            a, b = combine(x, y)
            xh = jnp.einsum("...ij,...j->...i", x[0], h) + x[1]
            want = jnp.einsum("...ij,...j->...i", y[0], xh) + y[1]
            np.testing.assert_allclose(
                jnp.einsum("...ij,...j->...i", a, h) + b, want, **NAMED["identity64"]
            )


@pytest.mark.parametrize("layout", ["dense", "diag"])
def test_gradients_match_sequential(layout):
    rng = np.random.default_rng(2)
    a, b, y0 = _random_problem(rng, 13, 3, layout)
    w = rng.normal(size=(13, 3))
    with jax.enable_x64(True):
        a, b, y0 = map(jnp.asarray, (a, b, y0))

        def loss(a, b, y0, method):
            y = scan.linear_recurrence(a, b, y0, layout=layout, method=method)
            return jnp.sum(jnp.sin(y) * w)

        g = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
        for u, v in zip(g(a, b, y0, "associative"), g(a, b, y0, "sequential"), strict=True):
            np.testing.assert_allclose(u, v, **tol("float64"))


def test_block_diagonal_extracts_blocks():
    a = np.arange(2 * 36, dtype=np.float32).reshape(2, 6, 6)
    blocks = np.asarray(scan.block_diagonal(jnp.asarray(a), 3))
    assert blocks.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(blocks[1, 1], a[1, 3:, 3:])
    np.testing.assert_array_equal(blocks[0, 0], a[0, :3, :3])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="dense A"):
        scan.linear_recurrence(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros(2))
    with pytest.raises(ValueError, match="layout"):
        scan.linear_recurrence(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros(2), layout="x")


def _lm_least_squares(a, b, y_obs, y0, sigmasq):
    """Dense solve of sum |y_t - A_t y_{t-1} - b_t|^2 + (1/sigmasq) sum |y_t - y_obs_t|^2."""
    t, d = b.shape
    rows, rhs = [], []
    for i in range(t):
        row = np.zeros((d, t * d))
        row[:, i * d : (i + 1) * d] = np.eye(d)
        r = b[i].copy()
        if i > 0:
            row[:, (i - 1) * d : i * d] = -a[i]
        else:
            r = r + a[0] @ y0
        rows.append(row)
        rhs.append(r)
    lam = 1.0 / np.sqrt(sigmasq)
    rows.append(lam * np.eye(t * d))
    rhs.append(lam * y_obs.reshape(-1))
    sol = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)[0]
    return sol.reshape(t, d)


@functools.partial(jax.jit, static_argnames=("layout",))
def _damped_all(a, b, y_obs, y0, sigmasqs, layout):
    """Smoother steps for several sigmasq and the filter step at the first: one compile."""
    step = lambda s, filt: scan.damped_linear_recurrence(
        a, b, y_obs, y0, s, layout=layout, filter_only=filt
    )
    return jax.vmap(lambda s: step(s, False))(sigmasqs), step(sigmasqs[0], True)


@pytest.mark.parametrize("layout", ["dense", "diag"])
def test_damped_step_equals_dense_least_squares(layout):
    rng = np.random.default_rng(3)
    t, d = 9, 3
    a, b, y0 = _random_problem(rng, t, d, layout)
    y_obs = rng.normal(size=(t, d))
    sigmasqs = [1e12, 1.0, 0.1]
    with jax.enable_x64(True):
        args = tuple(map(jnp.asarray, (a, b, y_obs, y0)))
        smoothed, filtered = _damped_all(*args, jnp.asarray(sigmasqs), layout)
        undamped = scan.linear_recurrence(*args[:2], args[3], layout=layout, method="sequential")
    prev_step = np.inf
    for sigmasq, got in zip(sigmasqs, np.asarray(smoothed), strict=True):
        want = _lm_least_squares(_dense(a, layout), b, y_obs, y0, sigmasq)
        np.testing.assert_allclose(got, want, **NAMED["reference64"])
        step = np.abs(got - y_obs).max()
        assert step < prev_step  # smaller sigmasq (more damping) shrinks the step
        prev_step = step
    # sigmasq -> inf: one undamped (Newton) step, for the smoother and the filter alike.
    np.testing.assert_allclose(smoothed[0], undamped, **NAMED["damped_newton64"])
    np.testing.assert_allclose(filtered, undamped, **NAMED["damped_newton64"])
