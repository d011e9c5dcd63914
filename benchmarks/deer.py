"""DEER vs jitted lax.scan: time and memory for a GRU over T and hidden size, batch 16.

  python benchmarks/deer.py --quick     # CPU smoke run, < 1 min: T=1000, hidden {1, 4, 16}
  python benchmarks/deer.py             # the full grid (meant for a GPU): T {1e3, 1e4, 1e5},
                                        # hidden {1, 2, 4, 8, 16, 32, 64}
  python benchmarks/deer.py --grad      # forward + gradient instead of forward only
  python benchmarks/deer.py --num-devices 1   # one device (default 0: batch over all)
  python benchmarks/deer.py --lengths 100000 --hiddens 1,64   # a sub-grid (comma lists)
  python benchmarks/deer.py --no-verify # skip the dense result check (quasi stays O(T n))
  python benchmarks/deer.py --profile --emulate-tf32 --reference /tmp/deer-ref
        # sweeps and time per sweep vs n (T = 1000, n 1..32): Newton at full precision and with
        # TF32 emulated, quasi, the reference; XLA cost analysis (FLOPs, bytes) of one sweep
  python benchmarks/deer.py --gpu-grid --repeats 3 --reference .deer_ref
        # the issue-18 grid: n {1, 4, 16, 64} x T {1e3, 1e4, 1e5}, batch 16, float32, lax.scan
        # vs Newton vs quasi vs the reference, each row run or "does not fit: estimated X GiB";
        # tiny on CPU: --gpu-grid --lengths 100,1000 --hiddens 1,4 --batch 4

Precision: the scans multiply at ``jax.lax.Precision.HIGHEST`` (``jaxlab.deer.scan.PRECISION``).
At XLA's default precision a GPU rounds float32 matmul inputs to TF32 (10 mantissa bits); the
Newton iterate then jitters above DEER's float32 tolerance and the stopping test fails until
the T-sweep cap. ``--emulate-tf32`` reproduces that on CPU by rounding the operands of every
scan product (``emulate_tf32``). The reference (machine-discovery/deer, never vendored: pass
``--reference PATH`` or put a checkout in the git-ignored ``.deer_ref/``) uses the default.

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
import contextlib
import importlib
import os
import pathlib
import statistics
import subprocess
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import timing

from jaxlab import deer, sharding
from jaxlab.deer import cells, cost, scan


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


def _tf32(x):
    """Rounds float32 to TF32 (10 mantissa bits), to nearest: what a GPU tensor core does to
    the inputs of a float32 matmul at XLA's default precision (it accumulates in float32)."""
    if x.dtype != jnp.float32:
        return x
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    bits = (bits + jnp.uint32(0x1000)) & jnp.uint32(0xFFFFE000)  # drop the low 13 of 23 bits
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


@contextlib.contextmanager
def emulate_tf32(on: bool = True):
    """While active, every product of :func:`jaxlab.deer.scan.einsum` (the scans' combines and
    Newton's J_t y_{t-1}) rounds its operands to TF32, and the CPU broadcast combine is off (so
    that every combine is such a product). Functions must be traced inside the block."""
    if not on:
        yield
        return
    saved = scan.einsum, scan.BROADCAST_DENSE

    def tf32_einsum(subscripts, *operands):
        operands = [_tf32(o) for o in operands]
        return jnp.einsum(subscripts, *operands, precision=jax.lax.Precision.HIGHEST)

    scan.einsum, scan.BROADCAST_DENSE = tf32_einsum, ()
    try:
        yield
    finally:
        scan.einsum, scan.BROADCAST_DENSE = saved


def load_reference(path: str):
    """``(seq1d, DEER)`` of machine-discovery/deer from a checkout: ``path`` is the repository
    (holding ``deer/fseq1d.py``) or its ``deer`` package. The package ``__init__`` is skipped (it
    imports optimistix for the ODE solvers, which seq1d does not need). Never vendored: fetch it
    outside the repository, or into the git-ignored ``.deer_ref/`` to carry it to a GPU box."""
    root = pathlib.Path(path)
    pkg_dir = root / "deer" if (root / "deer" / "fseq1d.py").exists() else root
    if not (pkg_dir / "fseq1d.py").exists():
        raise SystemExit(f"--reference: no deer/fseq1d.py under {path!r}")
    pkg = types.ModuleType("deer")
    pkg.__path__ = [str(pkg_dir)]
    sys.modules["deer"] = pkg
    fseq1d = importlib.import_module("deer.fseq1d")
    return fseq1d.seq1d, fseq1d.DEER


def _batched(mode: str, reference=None, verify: bool = False):
    """A jitted batched solve ``(xs [B, T, n], params) -> (y, sweeps [B], converged [B])`` of a
    GRU from y_0 = 0; ``mode`` is ``scan`` (jitted lax.scan), ``reference`` (machine-discovery
    DEER, sweeps -1: it does not report them) or a DEER mode name."""

    def one(xs, params):
        y0 = jnp.zeros((params.b.shape[-1],), xs.dtype)
        if mode == "scan":
            return deer.sequential(cells.gru, y0, xs, params), jnp.int32(0), jnp.bool_(True)
        if mode == "reference":
            seq1d, ref_deer = reference
            res = seq1d(cells.gru, y0, xs, params, method=ref_deer())
            return res.value, jnp.int32(-1), jnp.all(res.success)
        method = deer.method_from_name(mode)
        res = deer.deer(cells.gru, y0, xs, params, method=method, verify=verify)
        return res.value, res.iterations, res.converged

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _time(fn, *args, repeats: int):
    """(median wall s, median CPU s of this process, output) after one untimed warm call."""
    out = jax.block_until_ready(fn(*args))
    wall, cpu = [], []
    for _ in range(max(repeats, 1)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), out


def _gru_problem(t, n, batch, dtype=jnp.float32):
    key = jax.random.key(1000 * n + t)
    params = cells.init_gru(n, n, key=key, dtype=dtype)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (batch, t, n), dtype)
    return xs, params


def _maxdiff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def profile(lengths, hiddens, batch, repeats, tf32: bool, reference) -> None:
    """Sweeps and time per sweep of dense Newton against n (with and without TF32 emulation),
    quasi-DEER and the reference, plus XLA's static cost of one sweep (per sequence)."""
    rows, cost_rows = [], []
    for t in lengths:
        for n in hiddens:
            xs, params = _gru_problem(t, n, batch)
            wall, cpu, (y_ref, _, _) = _time(_batched("scan"), xs, params, repeats=repeats)
            row = [t, n, f"{1e3 * wall:.3g} / {1e3 * cpu:.3g}"]
            variants = [("newton", False), ("newton", True)] if tf32 else [("newton", False)]
            variants.append(("quasi", False))
            for mode, emulate in variants:
                with emulate_tf32(emulate):
                    wall, cpu, (y, it, ok) = _time(_batched(mode), xs, params, repeats=repeats)
                sweeps = int(np.max(it))
                row += [
                    f"{sweeps}",
                    f"{1e3 * wall / sweeps:.3g} / {1e3 * cpu / sweeps:.3g}",
                    f"{np.mean(ok):.2g}",
                    f"{_maxdiff(y, y_ref):.1e}",
                ]
            if reference is not None:
                wall, cpu, (y, _, ok) = _time(
                    _batched("reference", reference), xs, params, repeats=repeats
                )
                row += [f"{1e3 * wall:.3g} / {1e3 * cpu:.3g}", f"{_maxdiff(y, y_ref):.1e}"]
            rows.append(row)
            print(" | ".join(map(str, row)), flush=True)
            y0 = jnp.zeros((n,), jnp.float32)
            dense = cost.sweep_cost(cells.gru, y0, xs[0], params, deer.Newton())
            quasi = cost.sweep_cost(cells.gru, y0, xs[0], params, deer.Quasi())
            sd, sq = cost.scan_cost("dense", t, n), cost.scan_cost("diag", t, n)
            cost_rows.append(
                [t, n]
                + [f"{c['flops'] / 1e6:.3g} / {c['bytes'] / 2**20:.3g}" for c in (dense, quasi)]
                + [f"{sd['flops'] / 1e6:.3g}", f"{sq['flops'] / 1e6:.3g}"]
                + [f"{sd['flops'] / sq['flops']:.3g}"]
            )
    header = ["T", "n", "lax.scan ms wall / CPU"]
    names = ["Newton", "Newton TF32-emulated"] if tf32 else ["Newton"]
    for name in names + ["quasi"]:
        header += [f"{name} sweeps", f"{name} ms/sweep wall / CPU", "conv.", "max abs diff"]
    if reference is not None:
        header += ["reference ms wall / CPU", "reference max abs diff"]
    print(f"\nDEER per sweep, GRU, batch {batch}, float32, {jax.default_backend()}")
    print("(sweeps: the batch's max, what a vmapped while loop runs; ms/sweep = solve / sweeps;")
    print(" conv.: fraction of the batch with converged=True, verify off):\n")
    print(timing.markdown_table(header, rows))
    header = ["T", "n", "Newton sweep MFLOP / MiB", "quasi sweep MFLOP / MiB"]
    header += ["dense scan MFLOP", "diag scan MFLOP", "dense/diag scan FLOPs"]
    print("\nXLA cost analysis of one sweep / one scan, one sequence (static, deterministic):\n")
    print(timing.markdown_table(header, cost_rows))


def _device_bytes() -> float:
    """Memory the first device may use (GPU: XLA's bytes_limit; CPU: physical RAM)."""
    stats = None
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        pass
    if stats and stats.get("bytes_limit"):
        return float(stats["bytes_limit"])
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def gpu_grid(lengths, hiddens, batch, repeats, modes, reference, limit_gib, verify) -> None:
    """lax.scan vs DEER modes vs the reference on one device, batch ``batch``, float32. Each row
    is compiled first; XLA's memory estimate (arguments + outputs + temporaries) above the
    device's limit prints "does not fit: estimated X GiB" instead of running it."""
    limit = limit_gib * 2**30 if limit_gib else _device_bytes()
    print(f"memory limit: {limit / 2**30:.3g} GiB; deer verify: {verify}")
    rows = []
    for t in lengths:
        for n in hiddens:
            xs, params = _gru_problem(t, n, batch)
            base_wall, y_ref = None, None
            for mode in ["scan"] + list(modes):
                if mode == "reference" and reference is None:
                    continue
                fn = _batched(mode, reference, verify=verify)
                row = [t, n, mode]
                try:
                    c0 = time.perf_counter()
                    compiled = fn.lower(xs, params).compile()
                    compile_s = time.perf_counter() - c0
                    mem = compiled.memory_analysis()
                    est = mem.argument_size_in_bytes + mem.output_size_in_bytes
                    est += mem.temp_size_in_bytes
                except Exception as err:  # noqa: BLE001 - record, keep the grid going
                    rows.append(row + [f"compile failed: {str(err).splitlines()[0][:80]}"])
                    print(" | ".join(map(str, rows[-1])), flush=True)
                    continue
                if est > limit:
                    rows.append(row + [f"does not fit: estimated {est / 2**30:.3g} GiB"])
                    print(" | ".join(map(str, rows[-1])), flush=True)
                    continue
                try:
                    wall, cpu, (y, it, ok) = _time(compiled, xs, params, repeats=repeats)
                except Exception as err:  # noqa: BLE001 - an OOM at run time is a result
                    if "RESOURCE_EXHAUSTED" not in str(err) and "memory" not in str(err).lower():
                        raise
                    msg = f"out of memory at run time (estimated {est / 2**30:.3g} GiB)"
                    rows.append(row + [msg])
                    print(" | ".join(map(str, rows[-1])), flush=True)
                    continue
                if mode == "scan":
                    base_wall, y_ref = wall, y
                sweeps = int(np.max(it))
                per = f"{1e3 * wall / sweeps:.3g}" if sweeps > 0 else ""
                speed = f"{base_wall / wall:.3g}x" if base_wall else ""
                diff = f"{_maxdiff(y, y_ref):.1e}" if y_ref is not None else ""
                rows.append(
                    row
                    + [f"{1e3 * wall:.4g}", f"{1e3 * cpu:.4g}", str(sweeps) if sweeps >= 0 else ""]
                    + [per, speed, diff, f"{np.mean(ok):.2g}", f"{compile_s:.2f}"]
                    + [f"{est / 2**30:.3g}"]
                )
                print(" | ".join(map(str, rows[-1])), flush=True)
    header = ["T", "n", "mode", "median ms (wall)", "median ms (CPU)", "sweeps", "ms/sweep"]
    header += ["speed-up vs scan", "max abs diff", "converged", "compile s", "memory est. GiB"]
    width = len(header)
    rows = [r if len(r) == width else r + [""] * (width - len(r)) for r in rows]
    print(f"\nGPU grid: GRU forward, batch {batch}, float32, {jax.devices()[0].device_kind}:\n")
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
        "--emulate-tf32",
        action="store_true",
        help="--profile: also run Newton with the scans' matmul inputs rounded to TF32",
    )
    parser.add_argument(
        "--reference",
        help="machine-discovery/deer checkout (repo or its deer/ package) to run side by side;"
        " default: .deer_ref/ when it exists",
    )
    parser.add_argument(
        "--gpu-grid",
        action="store_true",
        help="n {1,4,16,64} x T {1e3,1e4,1e5}, batch 16: scan vs newton vs quasi vs reference",
    )
    parser.add_argument(
        "--memory-limit-gib",
        type=float,
        help="--gpu-grid: rows whose XLA memory estimate exceeds this are not run"
        " (default: the device's limit)",
    )
    parser.add_argument(
        "--verify", action="store_true", help="--profile/--gpu-grid: run deer's result check"
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip deer's dense result check (one [T, n, n] Jacobian + scan per solve)",
    )
    args = parser.parse_args()
    ints = lambda text, default: tuple(int(float(v)) for v in text.split(",")) if text else default
    ref_path = args.reference
    if ref_path is None and pathlib.Path(".deer_ref").exists():
        ref_path = ".deer_ref"
    reference = load_reference(ref_path) if ref_path else None
    if args.profile or args.gpu_grid:
        timing.print_machine()
        print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
        print("reference:", ref_path or "none")
    if args.profile:
        lengths = ints(args.lengths, (1000,))
        hiddens = ints(args.hiddens, (1, 2, 4, 8, 16, 32))
        profile(lengths, hiddens, args.batch, args.repeats, args.emulate_tf32, reference)
        return
    if args.gpu_grid:
        lengths = ints(args.lengths, (1000, 10_000, 100_000))
        hiddens = ints(args.hiddens, (1, 4, 16, 64))
        modes = args.modes.split(",") + ["reference"]
        gpu_grid(
            lengths,
            hiddens,
            args.batch,
            args.repeats,
            modes,
            reference,
            args.memory_limit_gib,
            args.verify,
        )
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
