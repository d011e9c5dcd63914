"""Tests for jaxlab.quanta.sparse_parity and parity_mlp: generator vs NumPy references, padded vs
unpadded training, vmapped seeds vs single runs, and emergence in frequency order on a tiny task."""

import functools
import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from numerics import NAMED, tol

from jaxlab.quanta import parity_mlp, parity_sweep
from jaxlab.quanta import sparse_parity as sp

TINY = sp.TaskConfig(n_tasks=6, n=8, k=2, alpha_code=1.4)
CONFIG, STEPS = parity_mlp.TrainConfig(batch_size=64, lr=1e-2), 20  # shared: fewer compiles
# Jitted once per shape: one compile is much cheaper than many eager op dispatches.
make_subtasks = jax.jit(sp.make_subtasks, static_argnums=(0, 1, 2))
sample_batch = jax.jit(sp.sample_batch, static_argnums=(2, 3))
make_test_set = jax.jit(sp.make_test_set, static_argnums=(1, 2, 3))
init_mlp = jax.jit(parity_mlp.init_mlp, static_argnums=(0, 1, 2, 3))
evaluate = jax.jit(parity_mlp.evaluate, static_argnums=(1,))


def test_make_subtasks_enumerates_every_subset_once(key):
    n, k = 7, 3
    total = math.comb(n, k)
    subsets = np.asarray(make_subtasks(total, n, k, key=key))
    assert subsets.shape == (total, k)
    assert sorted(map(tuple, subsets)) == list(itertools.combinations(range(n), k))


@pytest.mark.parametrize("n_tasks,n,k", [(500, 100, 3), (20, 12, 2)])
def test_make_subtasks_distinct_sorted_rows(key, n_tasks, n, k):
    s = np.asarray(make_subtasks(n_tasks, n, k, key=key))
    assert s.min() >= 0 and s.max() < n
    assert np.all(np.diff(s, axis=1) > 0)  # sorted, hence distinct within a row
    assert len(set(map(tuple, s))) == n_tasks
    with pytest.raises(ValueError):
        sp.make_subtasks(math.comb(n, k) + 1, n, k, key=key)


def test_batch_labels_and_control_bits_match_numpy(key):
    subtasks = make_subtasks(TINY.n_tasks, TINY.n, TINY.k, key=jax.random.fold_in(key, 0))
    logits = sp.task_logits(TINY.n_tasks, TINY.alpha_code)
    batch = sample_batch(subtasks, logits, 512, TINY.n, key=key)
    x = np.asarray(sp.dense_inputs(batch, TINY.n_tasks))
    task, bits, y, s = (np.asarray(a) for a in (batch.task, batch.bits, batch.y, subtasks))
    assert x.shape == (512, TINY.n_tasks + TINY.n)
    np.testing.assert_array_equal(x[:, : TINY.n_tasks], np.eye(TINY.n_tasks)[task])
    np.testing.assert_array_equal(x[:, TINY.n_tasks :], bits.astype(np.float32))
    expected = np.array([bits[i, s[t]].sum() % 2 for i, t in enumerate(task)])
    np.testing.assert_array_equal(y, expected)
    assert 0.4 < y.mean() < 0.6


def test_task_frequencies_chi_square(key):
    n_tasks, alpha_code, draws = 20, 1.4, 1_000_000
    subtasks = make_subtasks(n_tasks, 8, 2, key=jax.random.fold_in(key, 0))
    logits = sp.task_logits(n_tasks, alpha_code)
    batch = sample_batch(subtasks, logits, draws, 8, key=key)
    counts = np.bincount(np.asarray(batch.task), minlength=n_tasks)
    p = sp.task_probs(n_tasks, alpha_code)
    np.testing.assert_allclose(p, np.arange(1, 21) ** -1.4 / np.sum(np.arange(1, 21) ** -1.4))
    assert scipy.stats.chisquare(counts, draws * p).pvalue > 1e-3


def test_same_key_same_batch_different_key_differs(key):
    subtasks = make_subtasks(TINY.n_tasks, TINY.n, TINY.k, key=key)
    logits = sp.task_logits(TINY.n_tasks, TINY.alpha_code)
    a = sample_batch(subtasks, logits, 64, TINY.n, key=key)
    b = sample_batch(subtasks, logits, 64, TINY.n, key=key)
    c = sample_batch(subtasks, logits, 64, TINY.n, key=jax.random.fold_in(key, 1))
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(np.asarray(a.bits), np.asarray(c.bits))


def test_test_set_exact_counts_and_order(key):
    subtasks = make_subtasks(TINY.n_tasks, TINY.n, TINY.k, key=key)
    test = make_test_set(subtasks, TINY, 1000, 7, key=key)
    counts = np.bincount(np.asarray(test.freq.task), minlength=TINY.n_tasks)
    p = sp.task_probs(TINY.n_tasks, TINY.alpha_code)
    np.testing.assert_array_equal(counts, np.floor(p * 1000))
    np.testing.assert_array_equal(np.asarray(test.per_task.task), np.repeat(np.arange(6), 7))


def test_fixed_dataset_epochs_visit_every_sample_once(key):
    subtasks = make_subtasks(TINY.n_tasks, TINY.n, TINY.k, key=key)
    logits = sp.task_logits(TINY.n_tasks, TINY.alpha_code)
    data = sample_batch(subtasks, logits, 48, TINY.n, key=key)
    ids = sp.Batch(task=jnp.arange(48, dtype=jnp.int32), bits=data.bits, y=data.y)
    take = jax.jit(lambda s: sp.dataset_batch(ids, s, 16, key=key).task)
    epochs = [np.concatenate([np.asarray(take(3 * e + i)) for i in range(3)]) for e in range(2)]
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(48))
    assert not np.array_equal(epochs[0], epochs[1])  # re-shuffled
    np.testing.assert_array_equal(np.asarray(take(4)), np.asarray(take(4)))


def test_param_count_matches_paper_and_init():
    assert parity_mlp.param_count(9, 500, 100) == 5_429
    assert parity_mlp.param_count(500, 500, 100) == 301_502
    assert all(parity_mlp.param_count(w, 500, 100) == 603 * w + 2 for w in (1, 10, 77))
    params = init_mlp(500, 100, 9, 9, key=jax.random.key(0))
    assert sum(a.size for a in jax.tree.leaves(params)) == 5_429


def test_init_is_independent_of_padding_and_masked_units_are_zero(key):
    small = init_mlp(TINY.n_tasks, TINY.n, 5, 5, key=key)
    big = init_mlp(TINY.n_tasks, TINY.n, 5, 12, key=key)
    chex.assert_trees_all_equal(
        small,
        jax.tree.map(lambda a: a[..., :5] if a.ndim == 2 else a, big)._replace(
            b1=big.b1[:5], w2=big.w2[:5], b2=big.b2
        ),
    )
    for a in (big.w_task[:, 5:], big.w_bits[:, 5:], big.b1[5:], big.w2[5:]):
        assert not np.any(np.asarray(a))
    bound1, bound2 = 1 / math.sqrt(TINY.n_tasks + TINY.n), 1 / math.sqrt(5)
    assert np.abs(np.asarray(small.w_task)).max() <= bound1
    assert np.abs(np.asarray(small.w2)).max() <= bound2
    assert np.abs(np.asarray(small.w2)).max() > bound1  # output scale uses the true width


def test_logits_and_eval_match_float64_dense_reference(key):
    subtasks = make_subtasks(TINY.n_tasks, TINY.n, TINY.k, key=key)
    params = init_mlp(TINY.n_tasks, TINY.n, 5, 8, key=key)
    test = make_test_set(subtasks, TINY, 300, 10, key=key)
    p = {k: np.asarray(v, np.float64) for k, v in params._asdict().items()}

    def ref_nll(batch):
        x = np.asarray(sp.dense_inputs(batch, TINY.n_tasks), np.float64)
        h = np.maximum(x @ np.concatenate([p["w_task"], p["w_bits"]]) + p["b1"], 0)
        logits = h @ p["w2"] + p["b2"]
        logz = np.log(np.exp(logits).sum(1))
        y = np.asarray(batch.y)
        return logz - logits[np.arange(len(y)), y], logits.argmax(1) == y, logits

    _, _, logits = ref_nll(test.freq)
    np.testing.assert_allclose(
        jax.jit(parity_mlp.mlp_logits, static_argnums=1)(params, 5, test.freq.task, test.freq.bits),
        logits,
        **tol("float32"),
    )
    m = evaluate(params, 5, test)
    nll, ok, _ = ref_nll(test.freq)
    t_nll, t_ok, _ = ref_nll(test.per_task)
    np.testing.assert_allclose(m["loss"], nll.mean() / np.log(2), **tol("float32"))
    np.testing.assert_allclose(m["accuracy"], ok.mean(), **tol("float32"))
    np.testing.assert_allclose(
        m["task_loss"], t_nll.reshape(6, 10).mean(1) / np.log(2), **tol("float32")
    )
    np.testing.assert_allclose(m["task_accuracy"], t_ok.reshape(6, 10).mean(1), **tol("float32"))


@functools.cache
def _trainer(task, config, num_steps, widths, packed=True):
    fn = functools.partial(
        parity_mlp.train_widths,
        num_steps=num_steps,
        task=task,
        config=config,
        widths=widths,
        packed=packed,
    )
    return jax.jit(fn)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _setup(task, config, widths, max_width, key):
    subtasks = sp.make_subtasks(task.n_tasks, task.n, task.k, key=key)
    states = jax.vmap(
        lambda w: parity_mlp.init_state(task, config, w, max_width, key=jax.random.fold_in(key, w))
    )(jnp.asarray(widths, jnp.int32))
    return states, subtasks


def test_packed_and_masked_widths_train_like_separate_unpadded_models(key):
    logits = sp.task_logits(TINY.n_tasks, TINY.alpha_code)
    widths = (3, 8)
    states, subtasks = _setup(TINY, CONFIG, widths, 8, key)
    alone, _ = _setup(TINY, CONFIG, (3,), 3, key)
    init_w2 = np.asarray(alone.params.w2)
    packed, loss_p = _trainer(TINY, CONFIG, STEPS, widths)(states, subtasks, logits, 0, key=key)
    masked, loss_m = _trainer(TINY, CONFIG, STEPS, widths, False)(
        states, subtasks, logits, 0, key=key
    )
    alone, loss_a = _trainer(TINY, CONFIG, STEPS, (3,), False)(alone, subtasks, logits, 0, key=key)
    assert np.abs(np.asarray(alone.params.w2) - init_w2).max() > 1e-2  # it did train
    np.testing.assert_allclose(loss_p, loss_m, **NAMED["train_fp32"])
    np.testing.assert_allclose(loss_p[:, 0], loss_a[:, 0], **NAMED["train_fp32"])
    for a, b in zip(jax.tree.leaves(packed.params), jax.tree.leaves(masked.params), strict=True):
        np.testing.assert_allclose(a, b, **NAMED["train_fp32_params"])
    p, a = jax.tree.map(lambda x: x[0], packed.params), jax.tree.map(lambda x: x[0], alone.params)
    for name in ("w_task", "w_bits", "b1"):
        np.testing.assert_allclose(
            getattr(p, name)[..., :3], getattr(a, name), **NAMED["train_fp32_params"], err_msg=name
        )
    np.testing.assert_allclose(p.w2[:3], a.w2, **NAMED["train_fp32_params"])
    np.testing.assert_allclose(p.b2, a.b2, **NAMED["train_fp32_params"])
    for m in (packed, masked):  # width 3 padded to 8
        q = jax.tree.map(lambda x: x[0], m.params)
        for x in (q.w_task[:, 3:], q.w_bits[:, 3:], q.b1[3:], q.w2[3:]):
            assert not np.any(np.asarray(x)), "padded units must stay exactly zero"


def test_packed_logits_equal_stacked_single_model_logits(key):
    params = jax.vmap(lambda w: parity_mlp.init_mlp(TINY.n_tasks, TINY.n, w, 8, key=key))(
        jnp.array([2, 8, 5])
    )
    subtasks = make_subtasks(TINY.n_tasks, TINY.n, TINY.k, key=key)
    batch = sample_batch(subtasks, sp.task_logits(6, 1.4), 32, TINY.n, key=key)
    got = jax.jit(parity_mlp.packed_logits, static_argnums=1)(
        params, (2, 8, 5), batch.task, batch.bits
    )
    want = jax.vmap(parity_mlp.mlp_logits, in_axes=(0, 0, None, None), out_axes=1)(
        params, jnp.array([2, 8, 5]), batch.task, batch.bits
    )
    np.testing.assert_allclose(got, want, **tol("float32"))


def test_vmapped_seeds_equal_single_runs_and_compile_once(key):
    logits = sp.task_logits(TINY.n_tasks, TINY.alpha_code)
    widths = (3, 8)

    @chex.assert_max_traces(n=1)
    def fn(states, subtasks, logits, start, key):
        return parity_mlp.train_widths(
            states,
            subtasks,
            logits,
            start,
            widths=widths,
            num_steps=STEPS,
            task=TINY,
            config=CONFIG,
            key=key,
        )

    train = jax.jit(jax.vmap(fn, in_axes=(0, 0, None, None, 0)))
    keys = jax.random.split(key, 3)
    setups = [_setup(TINY, CONFIG, widths, 8, k) for k in keys]
    stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)
    states, subtasks = stack([s[0] for s in setups]), stack([s[1] for s in setups])
    out, loss = train(states, subtasks, logits, 0, keys)
    out, _ = train(out, subtasks, logits, STEPS, keys)  # same shapes: no retrace
    single = _trainer(TINY, CONFIG, STEPS, widths)
    for i, (st, sub) in enumerate(setups):
        _, loss_i = single(st, sub, logits, 0, key=keys[i])
        np.testing.assert_allclose(loss[i], loss_i, **tol("float32"))
    assert not np.allclose(loss[0], loss[1])


def test_emergence_steps_brute_force():
    loss = np.array([[1.0, 1.0, 1.0], [0.4, 1.0, 0.9], [0.1, 0.45, 0.9]], np.float32)
    steps = np.array([0, 10, 20], np.int32)
    got = np.asarray(sp.emergence_steps(jnp.asarray(loss), jnp.asarray(steps), 0.5))
    np.testing.assert_array_equal(got, [10.0, 20.0, np.inf])


def test_tiny_task_subtasks_emerge_in_frequency_order(key):
    """Acceptance: per-subtask losses drop from ~1 bit, most frequent first."""
    task = sp.TaskConfig(n_tasks=6, n=8, k=2, alpha_code=2.0)
    config = parity_mlp.TrainConfig(batch_size=256, lr=1e-2)
    logits = sp.task_logits(task.n_tasks, task.alpha_code)
    states, subtasks = _setup(task, config, (32,), 32, key)
    test = make_test_set(subtasks, task, 2000, 300, key=jax.random.fold_in(key, 1))
    train = _trainer(task, config, 25, (32,))
    ev = jax.jit(
        lambda p: parity_mlp.evaluate(jax.tree.map(lambda a: a[0], p), 32, test)["task_loss"]
    )
    curves = [ev(states.params)]
    for i in range(16):
        states, _ = train(states, subtasks, logits, 25 * i, key=key)
        curves.append(ev(states.params))
    curves = np.stack(curves)
    assert np.all(curves[0] > 0.7)  # chance is 1 bit
    emerge = np.asarray(
        sp.emergence_steps(jnp.asarray(curves), jnp.arange(17, dtype=jnp.int32) * 25, 0.5)
    )
    done = np.isfinite(emerge)
    assert done[0] and curves[-1, 0] < 0.1 and done.sum() >= 3, emerge
    rho = scipy.stats.spearmanr(np.arange(6)[done], emerge[done]).statistic
    assert rho >= 0.8, emerge


def test_full_config_shapes_trace(key):
    """The paper's main config (500 subtasks, n=100, k=3, batch 20 000) traces; no compute."""
    task = sp.TaskConfig(n_tasks=500, n=100, k=3, alpha_code=1.4)
    config = parity_mlp.TrainConfig(batch_size=20_000)
    widths = jnp.asarray([10, 50, 500], jnp.int32)
    logits = sp.task_logits(task.n_tasks, task.alpha_code)

    def program(key):
        states, subtasks = _setup.__wrapped__(task, config, (10, 50, 500), 500, key)
        test = sp.make_test_set(subtasks, task, 1_000_000, 1_000, key=key)
        states, loss = parity_mlp.train_widths(
            states,
            subtasks,
            logits,
            0,
            widths=(10, 50, 500),
            num_steps=500,
            task=task,
            config=config,
            key=key,
        )
        m = jax.lax.map(lambda pw: parity_mlp.evaluate(pw[0], pw[1], test), (states.params, widths))
        return loss, m

    loss, m = jax.eval_shape(jax.vmap(program), jax.random.split(key, 2))
    assert loss.shape == (2, 500, 3)
    assert m["task_loss"].shape == (2, 3, 500) and m["loss"].shape == (2, 3)


def test_eval_steps_and_width_groups():
    assert parity_sweep.eval_steps(1000, 100, 500, 0) == [500, 1000]
    got = parity_sweep.eval_steps(10_000, 500, 5_000, 5)
    assert got[0] == 500 and got[-1] == 10_000 and 5_000 in got
    assert all(s % 500 == 0 for s in got) and got == sorted(set(got))
    assert parity_sweep.group_widths((8, 2, 4), 2) == [[2, 4], [8]]
    assert parity_sweep.group_widths((8, 2, 4), 0) == [[2, 4, 8]]


def test_finite_k_tail_is_the_explicit_zipf_sum():
    n_tasks, alpha_code = 30, 1.4
    p = np.arange(1, n_tasks + 1, dtype=np.float64) ** -alpha_code
    p /= p.sum()
    learned = np.array([0, 1, 5, 29, 30])
    want = [p[n:].sum() for n in learned]
    got = parity_sweep.finite_k_tail(learned, n_tasks, alpha_code)
    np.testing.assert_allclose(got, want, **tol("float64"))


def test_finite_k_alpha_matches_hurwitz_reference_and_steepens():
    """Learned counts n ∝ N: the finite-K slope equals a polyfit of the Hurwitz form of the
    finite tail, (ζ(s, n+1) − ζ(s, K+1)) / (ζ(s) − ζ(s, K+1)), and exceeds γ more as K nears n."""
    gamma = 0.4
    params = np.geomspace(1e3, 1e5, 12)
    learned = np.round(params / 1e3).astype(int)  # 1 ... 100 learned
    window = (params[0], params[-1])
    for k in (150, 10**6):
        s, rest = gamma + 1, scipy.special.zeta(gamma + 1, k + 1)
        tail = (scipy.special.zeta(s, learned + 1) - rest) / (scipy.special.zeta(s) - rest)
        ref = -np.polyfit(np.log(params), np.log(tail), 1)[0]
        got = parity_sweep.finite_k_alpha(params, learned, k, gamma + 1, window)
        np.testing.assert_allclose(got, ref, **NAMED["polyfit64"])
    small = parity_sweep.finite_k_alpha(params, learned, 150, gamma + 1, window)
    large = parity_sweep.finite_k_alpha(params, learned, 10**6, gamma + 1, window)
    assert small > large + 0.1  # K = 150 near n = 100: much steeper


def test_transition_decades_brute_force():
    steps = np.array([0, 100, 200, 400, 800, 1600])
    loss = np.array(
        [[1.0, 1.0, 1.0], [0.95, 0.5, 1.0], [0.5, 0.05, 1.0], [0.2, 0.0, 0.95],
         [0.05, 0.0, 0.6], [0.0, 0.0, 0.5]]
    )  # fmt: skip
    got = parity_sweep.transition_decades(loss, steps, 0.9, 0.1)
    # subtask 0: below 0.9 at 200, below 0.1 at 800; subtask 1: 100 -> 200; 2: never below 0.1
    np.testing.assert_allclose(got[:2], [np.log10(4.0), np.log10(2.0)], **tol("float64"))
    assert np.isnan(got[2])
    per_seed = parity_sweep.transition_decades(np.stack([loss, loss], 1), steps, 0.9, 0.1)
    assert per_seed.shape == (2, 3)
    np.testing.assert_array_equal(per_seed[1], got)


def test_gpu_config_loads_at_the_papers_shape():
    """The :gpu variant is only loaded here (it is sized for one H100)."""
    from jaxlab import config_args, launch

    c = launch.load_config("sparse_parity:gpu")
    task = config_args.to_dataclass(sp.TaskConfig, c.task)
    sweep = config_args.to_dataclass(parity_sweep.WidthSweep, c.sweep)
    config_args.to_dataclass(parity_mlp.TrainConfig, c.train)
    assert (task.n_tasks, task.n, task.k, task.alpha_code) == (500, 100, 3, 1.4)
    assert len(sweep.widths) == 30 and 0 < sweep.num_steps <= 200_000
    assert c.known_disagreements == ()
