"""Quanta benchmarks: batched multi-width/multi-seed sparse-parity training vs a Python loop, and
the throughput of the vmapped quanta grid simulation.

  python benchmarks/quanta.py [--quick]

Part 1 trains the same MLPs (same init, same batches, same steps): all widths x seeds in one
jitted program (seeds vmapped and split data-parallel over as many devices as divide them, one
on a plain CPU; widths stored padded to the widest and computed either packed, the default, or
masked at the full padded cost), and one model at a time in a Python loop on one device, each
with its own jitted, unpadded ``lax.scan`` loop. Steady-state times exclude compilation, which
is reported apart. Part 2 times
``jaxlab.quanta.simulate_grid`` (the whole gamma x N x D x tau x seed grid, one program) in
configurations per second, next to a Python loop over jitted ``loss_of_data_poisson`` calls.
"""

import argparse
import functools
import itertools
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import timing  # noqa: E402

from jaxlab import quanta  # noqa: E402
from jaxlab.quanta import parity_mlp
from jaxlab.quanta import sparse_parity as sp  # noqa: E402
from jaxlab.sharding import batch_sharding, data_mesh, shard_population  # noqa: E402


def _setup(task, config, widths, max_width, key):
    k_sub, k_init, k_data = jax.random.split(key, 3)
    subtasks = sp.make_subtasks(task.n_tasks, task.n, task.k, key=k_sub)
    states = jax.vmap(
        lambda w: parity_mlp.init_state(
            task, config, w, max_width, key=jax.random.fold_in(k_init, w)
        )
    )(jnp.asarray(widths, jnp.int32))
    return states, subtasks, k_data


def bench_training(quick: bool) -> list:
    task = sp.TaskConfig(n_tasks=20, n=12, k=2, alpha_code=1.4)
    config = parity_mlp.TrainConfig(batch_size=500, lr=3e-3)
    widths = (2, 4, 8, 16, 32) if quick else (2, 4, 8, 12, 16, 24, 32, 48, 64)
    num_seeds, steps = (2, 100) if quick else (4, 200)
    logits = sp.task_logits(task.n_tasks, task.alpha_code)
    seed_keys = jax.random.split(jax.random.key(0), num_seeds)
    train = functools.partial(parity_mlp.train_widths, num_steps=steps, task=task, config=config)

    # Batched: every (seed, width) in one program, packed (default) or masked compute, with the
    # seed axis split over the data axis of the largest device count that divides the seeds
    # (no padding: padded seeds would be counted as throughput).
    mesh = data_mesh(math.gcd(num_seeds, jax.device_count()))
    seeds = batch_sharding(mesh)
    setup_b = jax.jit(
        jax.vmap(_setup, in_axes=(None, None, None, None, 0)),
        static_argnums=(0, 1, 2, 3),
        out_shardings=seeds,
    )
    seed_keys_sharded = shard_population(seed_keys, mesh, what="number of seeds")
    states, subtasks, data_keys = setup_b(task, config, widths, max(widths), seed_keys_sharded)
    batched = {}
    for packed in (True, False):
        fn = jax.jit(
            jax.vmap(
                lambda st, sub, k, p=packed: train(
                    st, sub, logits, 0, widths=widths, packed=p, key=k
                )
            ),
            in_shardings=seeds,
            out_shardings=seeds,
        )
        batched[packed] = timing.time_fn(fn, states, subtasks, data_keys, repeats=5)
    loss_b = np.asarray(batched[True]["out"][1])  # (seeds, steps, W)
    diff_masked = float(np.abs(np.asarray(batched[False]["out"][1]) - loss_b).max())

    # Loop: each model alone, unpadded, one after another (a plain single-model step).
    setup_1 = jax.jit(_setup, static_argnums=(0, 1, 2, 3))
    loop_compile, loop_run, max_diff = 0.0, 0.0, 0.0
    for s, (i, w) in itertools.product(range(num_seeds), enumerate(widths)):
        single = jax.jit(
            lambda st, sub, k, w=w: train(st, sub, logits, 0, widths=(w,), packed=False, key=k)
        )
        st, sub, k = setup_1(task, config, (w,), w, seed_keys[s])
        t = timing.time_fn(single, st, sub, k, repeats=5)
        loop_compile += t["compile_s"] if s == 0 else 0.0  # one compile per width
        loop_run += t["median_s"]
        max_diff = max(
            max_diff, float(np.abs(np.asarray(t["out"][1])[:, 0] - loss_b[s, :, i]).max())
        )
    models = num_seeds * len(widths)
    print(
        f"training: {models} models ({num_seeds} seeds x widths {widths}), {steps} steps, "
        f"batch {config.batch_size}, {task.n_tasks} subtasks, n={task.n}, k={task.k}; batched: "
        f"seeds split over {mesh.size} device(s), loop: one device"
    )
    print(
        f"max |train loss packed - loop| over all steps and models: {max_diff:.2e} nats; "
        f"|packed - masked|: {diff_masked:.2e} nats (float rounding, amplified by training)"
    )
    rows = []
    for name, t in (
        ("batched, packed widths (default)", batched[True]),
        ("batched, masked to the widest", batched[False]),
    ):
        rows.append(
            [
                name,
                t["compile_s"],
                t["median_s"],
                models * steps / t["median_s"],
                loop_run / t["median_s"],
            ]
        )
    rows.append(
        ["Python loop, one model at a time", loop_compile, loop_run, models * steps / loop_run, 1.0]
    )
    tb = batched[True]
    return (
        rows,
        loop_run / tb["median_s"],
        (loop_run + loop_compile) / (tb["median_s"] + tb["compile_s"]),
    )


def bench_grid(quick: bool) -> list:
    gamma = jnp.linspace(0.3, 0.8, 4 if quick else 8)
    num_params = jnp.geomspace(1e1, 1e4, 10 if quick else 20)
    data = jnp.geomspace(1e2, 1e5, 8 if quick else 16)
    tau = jnp.array([1.0, 4.0])
    num_seeds, num_quanta = (2, 5_000) if quick else (4, 10_000)
    sim = jax.jit(
        functools.partial(
            quanta.simulate_grid,
            num_seeds=num_seeds,
            num_quanta_poisson=num_quanta,
            key=jax.random.key(0),
        ),
    )
    t = timing.time_fn(sim, gamma, num_params, data, tau, repeats=3)
    cells = gamma.size * num_params.size * data.size * tau.size * num_seeds
    nan_frac = float(jnp.mean(jnp.isnan(t["out"].loss_joint_poisson)))
    # Loop reference: one jitted loss_of_data_poisson call per (gamma, D, tau, seed) cell
    # (no N axis), on a sample of cells, extrapolated per cell.
    one = jax.jit(functools.partial(quanta.loss_of_data_poisson, num_quanta=num_quanta))
    keys = jax.random.split(jax.random.key(1), num_seeds)
    sample = list(
        itertools.product(
            np.asarray(gamma)[:2], np.asarray(data)[:5], np.asarray(tau), range(num_seeds)
        )
    )
    jax.block_until_ready(one(data[0], gamma[0], tau[0], key=keys[0]))
    t0 = time.perf_counter()
    for g, d, u, s in sample:
        jax.block_until_ready(one(d, g, u, key=keys[s]))
    loop_rate = len(sample) / (time.perf_counter() - t0)
    grid_poisson_cells = gamma.size * data.size * tau.size * num_seeds
    print(
        f"grid: gamma {gamma.size} x N {num_params.size} x D {data.size} x tau {tau.size} x "
        f"seed {num_seeds} = {cells} joint configurations, K = {num_quanta} Poisson quanta, "
        f"dtype {t['out'].loss_joint_poisson.dtype}, NaN (K too small) fraction {nan_frac:.3f}"
    )
    return [
        [
            "simulate_grid, all arrays (joint gamma,N,D,tau,seed cells)",
            t["compile_s"],
            t["median_s"],
            cells / t["median_s"],
        ],
        [
            "simulate_grid, Poisson L(D) cells only (gamma,D,tau,seed)",
            t["compile_s"],
            t["median_s"],
            grid_poisson_cells / t["median_s"],
        ],
        [
            "loop of jitted loss_of_data_poisson, per (gamma,D,tau,seed)",
            float("nan"),
            1 / loop_rate,
            loop_rate,
        ],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 1 minute")
    args = parser.parse_args()
    timing.print_machine()
    print("load average (1, 5, 15 min):", os.getloadavg())
    rows, speedup, speedup_with_compile = bench_training(args.quick)
    print(
        timing.markdown_table(
            ["method", "compile s", "run s (median)", "model-steps/s", "speed-up vs loop"], rows
        )
    )
    print(
        f"speed-up of batched over loop: {speedup:.2f}x steady state, "
        f"{speedup_with_compile:.2f}x including compilation"
    )
    with jax.enable_x64(True):  # theory code runs in float64 (spec)
        grid_rows = bench_grid(args.quick)
    print(
        timing.markdown_table(
            ["grid simulation (float64)", "compile s", "run s (median)", "configurations/s"],
            grid_rows,
        )
    )
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
