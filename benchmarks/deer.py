"""DEER vs jitted lax.scan: time and memory for a GRU over T and hidden size, batch 16.

  python benchmarks/deer.py --quick     # CPU smoke run, < 1 min: T=1000, hidden {1, 4, 16}
  python benchmarks/deer.py             # the full grid (meant for a GPU): T {1e3, 1e4, 1e5},
                                        # hidden {1, 2, 4, 8, 16, 32, 64}
  python benchmarks/deer.py --grad      # forward + gradient instead of forward only
  python benchmarks/deer.py --num-devices 1   # one device (default 0: batch over all)
  python benchmarks/deer.py --lengths 100000 --hiddens 1,64   # a sub-grid (comma lists)
  python benchmarks/deer.py --no-verify # skip the dense result check (quasi stays O(T n))
  python benchmarks/deer.py --profile   # per-sweep time of dense Newton vs hidden size, and the
                                        # dense associative-scan combine (einsum vs broadcast)

Setup as the reference's experiments/01_speed_benchmark/seq1d.py: untrained GRU (input = hidden
size), batch 16, float32, inputs N(0, 1), DEER default tolerances, baseline = jitted
``lax.scan`` (``jaxlab.deer.sequential``) vmapped over the batch. Both sides run in this process
on the same inputs and device; the table reports median/best of ``--repeats`` after a separate
compile, the speed-up scan/DEER, the max abs difference, and XLA's compiled memory estimate
(arguments + outputs + temporaries, from ``compiled.memory_analysis()``; per device when
sharded). Out-of-memory cases are recorded as OOM. On CPU the sequential scan wins
(spec/deer.md); speed claims need a GPU.

Data parallel (STYLE 2.8): both sides are ``jax.jit(..., in_shardings=..., out_shardings=...)``
with the batch axis of ``xs`` (and of the forward output) split over the ``data`` axis of a
``--num-devices`` mesh and the GRU parameters (and their gradient) replicated. The batch must
divide over the devices (no padding: it would change the timed work); otherwise the script fails
at the start. With ``--grad`` on more than one device the parameters are broadcast to the batch
inside the jitted function, so their per-example cotangents are summed once after the scans
instead of by a cross-device all-reduce inside every step of the baseline's backward
``lax.scan`` (what XLA emits for shared parameters); one device keeps shared parameters.
"""

from __future__ import annotations

import argparse
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import timing

from jaxlab import deer, sharding
from jaxlab.deer import cells


def _memory_mb(fn, *args) -> float:
    try:
        mem = fn.lower(*args).compile().memory_analysis()
        total = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
        return total / 2**20
    except Exception:  # noqa: BLE001 - some backends do not report it
        return float("nan")


def _solvers(grad: bool, scan_method: str, mesh: jax.sharding.Mesh, verify: bool = True):
    """``make(mode)``: a jitted batched solve ``(xs_BTD, params)``, B split over ``data``."""
    rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)

    def fwd(mode):
        def one(xs, params):
            y0 = jnp.zeros((params.b.shape[-1],), xs.dtype)
            if mode == "scan":
                return deer.sequential(cells.gru, y0, xs, params)
            method = deer.method_from_name(mode, scan=scan_method)
            return deer.deer(cells.gru, y0, xs, params, method=method, verify=verify).value

        def batched(xs, params):
            if grad and mesh.size > 1:
                # Per-example parameters (a broadcast): their cotangents are summed by the
                # broadcast's transpose after the scans, not by an all-reduce in every step.
                bcast = lambda a: jnp.broadcast_to(a, (xs.shape[0], *a.shape))
                out = jax.vmap(one)(xs, jax.tree.map(bcast, params))
            else:
                out = jax.vmap(one, in_axes=(0, None))(xs, params)
            return jax.lax.with_sharding_constraint(out, data)

        if not grad:
            return jax.jit(batched, in_shardings=(data, rep), out_shardings=data)
        loss = lambda xs, p: jnp.sum(jnp.sin(batched(xs, p)))
        return jax.jit(jax.grad(loss, argnums=1), in_shardings=(data, rep), out_shardings=rep)

    return fwd


def _combine_einsum(earlier, later):
    a = jnp.einsum("...ij,...jk->...ik", later[0], earlier[0])
    return a, jnp.einsum("...ij,...j->...i", later[0], earlier[1]) + later[1]


def _combine_broadcast(earlier, later):
    a = jnp.sum(later[0][..., :, :, None] * earlier[0][..., None, :, :], axis=-2)
    return a, jnp.sum(later[0] * earlier[1][..., None, :], axis=-1) + later[1]


def profile(lengths, hiddens, batch, repeats) -> None:
    """Per-sweep cost of dense Newton against n, split into its parts (Jacobians + f, the dense
    associative scan with each combine formulation, the sequential scan), batch ``batch``."""
    from jaxlab.deer import scan
    from jaxlab.deer import sweep as sw

    state = lambda y: sw._State(y, jnp.zeros((), jnp.float32))

    rows = []
    for t in lengths:
        for n in hiddens:
            key = jax.random.key(n)
            params = cells.init_gru(n, n, key=key)
            xs = jax.random.normal(key, (batch, t, n), jnp.float32)
            y = jax.random.normal(jax.random.fold_in(key, 1), (batch, t, n), jnp.float32)
            y0 = jnp.zeros((n,), jnp.float32)
            sweep_fn = jax.jit(
                jax.vmap(
                    lambda x, y, y0=y0, p=params: (
                        sw._sweep(cells.gru, y0, x, p, state(y), deer.Newton(), None)[0].y
                    )
                )
            )
            jac = jax.jit(jax.vmap(lambda x, y, p=params: sw._jacobians(cells.gru, y, x, p)))
            a = 0.5 * jac(xs, y)
            b = y
            scans = {
                "einsum": lambda a, b: jax.lax.associative_scan(_combine_einsum, (a, b))[1],
                "broadcast": lambda a, b: jax.lax.associative_scan(_combine_broadcast, (a, b))[1],
                "library": lambda a, b, y0=y0: scan.linear_recurrence(a, b, y0),
                "sequential": lambda a, b, y0=y0: scan.linear_recurrence(
                    a, b, y0, method="sequential"
                ),
            }
            ms = lambda fn, *args: 1e3 * timing.time_fn(fn, *args, repeats=repeats)["best_s"]
            row = [t, n, f"{ms(sweep_fn, xs, y):.3g}", f"{ms(jac, xs, y):.3g}"]
            row += [f"{ms(jax.jit(jax.vmap(f)), a, b):.3g}" for f in scans.values()]
            rows.append(row)
            print(" | ".join(map(str, row)), flush=True)
    header = ["T", "n", "Newton sweep ms", "Jacobians ms"]
    header += [f"dense scan ({k}) ms" for k in ("einsum", "broadcast", "library", "sequential")]
    print(f"\nDense Newton per sweep, GRU, batch {batch}, float32, {jax.default_backend()}:\n")
    print(timing.markdown_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=1000, hidden {1, 4, 16}")
    parser.add_argument("--grad", action="store_true", help="time forward + gradient")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--modes", default="newton,quasi", help="comma-separated DEER modes")
    parser.add_argument("--scan-method", default="associative", help="DEER's linear solver")
    parser.add_argument(
        "--num-devices", type=int, default=0, help="data-parallel devices, batch split (0 = all)"
    )
    parser.add_argument("--lengths", help="comma-separated T (default: the --quick or full grid)")
    parser.add_argument("--hiddens", help="comma-separated hidden sizes (default: likewise)")
    parser.add_argument("--profile", action="store_true", help="per-sweep cost vs hidden size")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip deer's dense result check (one [T, n, n] Jacobian + scan per solve)",
    )
    args = parser.parse_args()
    if args.profile:
        timing.print_machine()
        lengths = tuple(int(v) for v in args.lengths.split(",")) if args.lengths else (1000,)
        hiddens = (
            tuple(int(v) for v in args.hiddens.split(",")) if args.hiddens else (1, 2, 4, 8, 16, 32)
        )
        profile(lengths, hiddens, args.batch, args.repeats)
        return
    mesh = sharding.data_mesh(args.num_devices or None)
    sharding.check_divisible(args.batch, mesh, "--batch")  # fail loudly, no padding
    timing.print_machine()
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("device:", jax.devices()[0], "| cpu count:", os.cpu_count())
    print(f"data parallel: batch {args.batch} split over {mesh.size} device(s)")
    lengths = (1000,) if args.quick else (1000, 10_000, 100_000)
    hiddens = (1, 4, 16) if args.quick else (1, 2, 4, 8, 16, 32, 64)
    if args.lengths:
        lengths = tuple(int(v) for v in args.lengths.split(","))
    if args.hiddens:
        hiddens = tuple(int(v) for v in args.hiddens.split(","))
    modes = args.modes.split(",")
    make = _solvers(args.grad, args.scan_method, mesh, verify=not args.no_verify)
    print("deer result check (verify):", not args.no_verify)
    rows = []
    for t in lengths:
        for n in hiddens:
            key = jax.random.key(1000 * n + t)
            params = cells.init_gru(n, n, key=key)
            xs = jax.random.normal(jax.random.fold_in(key, 1), (args.batch, t, n), jnp.float32)
            xs, params = sharding.shard_batch(xs, mesh), sharding.replicate(params, mesh)
            base_fn = make("scan")
            base = timing.time_fn(base_fn, xs, params, repeats=args.repeats)
            base_mb = _memory_mb(base_fn, xs, params)
            for mode in modes:
                fn = make(mode)
                try:
                    res = timing.time_fn(fn, xs, params, repeats=args.repeats)
                except Exception as err:  # noqa: BLE001 - record OOM, re-raise anything else
                    if "RESOURCE_EXHAUSTED" not in str(err) and "memory" not in str(err).lower():
                        raise
                    rows.append([t, n, mode, "OOM", "", "", "", "", "", ""])
                    continue
                diff = max(
                    float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                    for a, b in zip(
                        jax.tree_util.tree_leaves(res["out"]),
                        jax.tree_util.tree_leaves(base["out"]),
                        strict=True,
                    )
                )
                rows.append(
                    [
                        t,
                        n,
                        mode,
                        f"{1e3 * base['median_s']:.3g}",
                        f"{1e3 * res['median_s']:.3g}",
                        f"{1e3 * res['best_s']:.3g}",
                        f"{base['median_s'] / res['median_s']:.3g}x",
                        f"{diff:.1e}",
                        f"{base['compile_s']:.2f} / {res['compile_s']:.2f}",
                        f"{base_mb:.1f} / {_memory_mb(fn, xs, params):.1f}",
                    ]
                )
                print(" | ".join(map(str, rows[-1])), flush=True)
    header = [
        "T",
        "hidden",
        "mode",
        "scan median ms",
        "DEER median ms",
        "DEER best ms",
        "speed-up scan/DEER",
        "max abs diff",
        "compile s scan / DEER",
        "memory MB scan / DEER",
    ]
    what = "forward + gradient" if args.grad else "forward"
    where = f"{jax.default_backend()}, batch over {mesh.size} device(s)"
    print(f"\nGRU {what}, batch {args.batch}, float32, {where}:\n")
    print(timing.markdown_table(header, rows))


if __name__ == "__main__":
    main()
