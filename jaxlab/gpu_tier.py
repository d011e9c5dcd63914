"""The GPU tier: ``jaxlab reproduce --gpu`` and its CPU check ``jaxlab reproduce --gpu --dry-run``.

A GPU is lent to this project rarely (one 10-minute command on a bare machine), so every
experiment has a ``configs/<name>.py:gpu`` variant sized to a share of one ~8-minute run on one
H100, compilation included (:data:`BUDGET_S`; each config's docstring gives the estimate its
size rests on). Two entry points:

* :func:`dry_run` (CPU, CI): lowers and compiles every gpu config's main jitted programs
  (:mod:`jaxlab.gpu_programs`) at their full shapes on abstract inputs, without running
  them, and prints per program the compile time, XLA's memory estimate
  (``compiled.memory_analysis()``: arguments + outputs + temporaries - aliased) and FLOPs
  (``compiled.cost_analysis()``). A compile error, or an estimate above :data:`DEVICE_BYTES`
  (one H100), fails the dry run with one line.
* :func:`run_gpu_tier`: ``launch.reproduce`` in mode ``gpu`` (each experiment's ``:gpu``
  config), then a GPU section appended to REPORT.md (machine, commit, per-experiment wall time
  against its budget, sparse parity's achieved steps/s against the paper's 200 000 steps), then
  the run directory packed into one ``.tar.gz`` under ``--out``.

The memory estimate is the CPU compiler's: the GPU compiler fuses and schedules differently, so
it is a check of shapes and of the order of magnitude, not a GPU figure.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tarfile
import time

# Seconds of the ~8-minute (480 s) H100 run given to each experiment, compilation included.
BUDGET_S = {
    "sparse_parity": 120,
    "rope_extrapolation": 60,
    "lm_baseline": 40,
    "emo_finetune": 40,
    "deer_train": 40,
    "tokenizer_sampling": 35,
    "ab_plus_c": 30,
    "attention_extrapolation": 25,
    "deer_convergence": 20,
    "attention_scale": 20,
    "mad_gaussian": 20,
    "mad_learned": 20,
    "quanta_theory": 10,
}
TOTAL_BUDGET_S = 480
# Order of the run: the claims that need scale first (issue 18), so a deadline cuts the least.
ORDER = (
    "sparse_parity",
    "rope_extrapolation",
    "deer_train",
    "lm_baseline",
    "attention_scale",
    "emo_finetune",
    "attention_extrapolation",
    "mad_learned",
    "mad_gaussian",
    "deer_convergence",
    "quanta_theory",
    "tokenizer_sampling",
    "ab_plus_c",
)
DEVICE_BYTES = 78 * 2**30  # one H100's usable memory (the smaller of the lent kinds)
PAPER_PARITY_STEPS = 200_000  # Michaud et al. 2023: steps of the sparse-parity scaling runs


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _gib(n: int | float) -> str:
    return f"{n / 2**30:.2f} GiB"


def compile_program(program) -> dict:
    """Lowers and compiles one :class:`~jaxlab.gpu_programs.Program`; never runs it.

    Returns ``dict(compile_s, bytes, flops)``: ``bytes`` = arguments + outputs + temporaries -
    aliased (donated) bytes from ``memory_analysis()``; ``flops`` from ``cost_analysis()``, or
    None where the backend gives none.
    """
    start = time.perf_counter()
    with program.context():
        compiled = program.fn.lower(*program.args).compile()
    mem = compiled.memory_analysis()
    total = None
    if mem is not None:
        total = (
            mem.argument_size_in_bytes
            + mem.output_size_in_bytes
            + mem.temp_size_in_bytes
            - mem.alias_size_in_bytes
        )
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):  # older jax: one dict per computation
        cost = cost[0] if cost else None
    flops = float(cost["flops"]) if cost and "flops" in cost else None
    return dict(compile_s=time.perf_counter() - start, bytes=total, flops=flops)


def dry_run(only: list[str] | None = None, *, out=None) -> tuple[int, dict]:
    """Compiles every gpu config's programs on abstract inputs; returns (exit code, results).

    ``results[name]`` is ``{"programs": {program: compile_program(...)}, "error": str|None,
    "hook": bool}``. Prints one line per program and per experiment to ``out`` (stdout), and on
    failure one final line naming the failed experiments.
    """
    from jaxlab import launch, sharding
    from jaxlab.experiments import RUNNERS
    from jaxlab.gpu_programs import PROGRAMS, UNCOMPILED

    out = out or sys.stdout
    names = list(RUNNERS) if only is None else only
    results, failed = {}, []
    for name in names:
        entry = results[name] = {"programs": {}, "error": None, "hook": name in PROGRAMS}
        start = time.perf_counter()
        try:
            config = launch.load_config(f"{name}:gpu")
            if name in PROGRAMS:
                mesh = sharding.data_mesh(config.get("num_devices") or None)
                for program in PROGRAMS[name](config, mesh):
                    r = entry["programs"][program.name] = compile_program(program)
                    mem = "memory n/a" if r["bytes"] is None else f"memory {_gib(r['bytes'])}"
                    flops = "flops n/a" if r["flops"] is None else f"{r['flops']:.3g} flops"
                    print(
                        f"  {name}/{program.name}: compiled in {r['compile_s']:.1f} s, {mem}, "
                        f"{flops}",
                        file=out,
                        flush=True,
                    )
                    if r["bytes"] is not None and r["bytes"] > DEVICE_BYTES:
                        raise MemoryError(
                            f"{program.name} needs ~{_gib(r['bytes'])} > {_gib(DEVICE_BYTES)}"
                        )
        except Exception as e:  # noqa: BLE001 - every experiment is checked, failures listed
            entry["error"] = _one_line(e)
            failed.append(name)
        peak = max((r["bytes"] or 0 for r in entry["programs"].values()), default=0)
        flops = sum(r["flops"] or 0 for r in entry["programs"].values())
        if entry["error"]:
            status = f"FAILED {entry['error']}"
        elif not entry["hook"]:
            status = f"config checked only ({UNCOMPILED.get(name, 'no programs hook')})"
        else:
            status = (
                f"{len(entry['programs'])} programs, peak memory {_gib(peak)}, {flops:.3g} flops"
            )
        print(
            f"[dry-run] {name}:gpu {status} ({time.perf_counter() - start:.1f} s, "
            f"budget {BUDGET_S.get(name, '?')} s)",
            file=out,
            flush=True,
        )
    if failed:
        print(f"jaxlab: error: gpu dry run failed for {', '.join(failed)}", file=sys.stderr)
        return 1, results
    return 0, results


def commit_id() -> str:
    """The git commit (``metrics.machine_info``), else ``$JAXLAB_COMMIT`` (a tree without .git)."""
    from jaxlab import metrics

    commit = metrics.machine_info().get("git_commit") or os.environ.get("JAXLAB_COMMIT", "")
    return commit or "unknown"


def wall_times(out: pathlib.Path, names: list[str]) -> list[dict]:
    """Per experiment: wall time from ``out/gpu/<name>/results.json`` (None if it has none)."""
    rows = []
    for name in names:
        path = out / "gpu" / name / "results.json"
        wall, error = None, None
        try:
            results = json.loads(path.read_text())
            wall = results.get("wall_time_s")
        except (OSError, ValueError):
            error = "no results.json (failed or not run)"
        rows.append(dict(name=name, wall_s=wall, budget_s=BUDGET_S.get(name), error=error))
    return rows


def parity_throughput(out: pathlib.Path) -> dict | None:
    """sparse_parity:gpu steps, wall time, steps/s (a lower bound: compile and evals included)."""
    try:
        results = json.loads((out / "gpu" / "sparse_parity" / "results.json").read_text())
        config = json.loads((out / "gpu" / "sparse_parity" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    steps = int(config["config"]["sweep"]["num_steps"])
    wall = float(results["wall_time_s"])
    return dict(steps=steps, wall_s=wall, steps_per_s=steps / wall,
                paper_ratio=steps / PAPER_PARITY_STEPS,
                paper_s=PAPER_PARITY_STEPS / (steps / wall))  # fmt: skip


def gpu_section(out: pathlib.Path, names: list[str], machine: dict, total_s: float) -> str:
    """The markdown appended to REPORT.md by :func:`run_gpu_tier`."""
    from jaxlab import report

    lines = [
        "",
        "## GPU tier",
        "",
        f"Machine: device kind {machine.get('device_kind')} x{machine.get('device_count')}, "
        f"backend {machine.get('backend')}, jax {machine.get('jax')}, jaxlib "
        f"{machine.get('jaxlib')}, commit {commit_id()}. Whole tier: {total_s:.0f} s "
        f"(budget {TOTAL_BUDGET_S} s).",
        "",
    ]
    rows = []
    for r in wall_times(out, names):
        wall = "–" if r["wall_s"] is None else f"{r['wall_s']:.1f}"
        over = ""
        if r["wall_s"] is not None and r["budget_s"] is not None:
            over = "over budget" if r["wall_s"] > r["budget_s"] else "within"
        rows.append([r["name"], wall, r["budget_s"], r["error"] or over])
    lines.append(report.markdown_table(["experiment", "wall s", "budget s", "status"], rows))
    tp = parity_throughput(out)
    if tp is not None:
        lines += [
            "",
            f"sparse_parity:gpu: {tp['steps']} steps in {tp['wall_s']:.1f} s = "
            f"{tp['steps_per_s']:.1f} steps/s (wall time of the whole experiment, compilation "
            f"and evaluations included: a lower bound on the training rate); "
            f"{tp['paper_ratio']:.3f} of the paper's {PAPER_PARITY_STEPS} steps, which would "
            f"take ~{tp['paper_s']:.0f} s at this rate. Replace the estimated 250 steps/s in "
            "configs/sparse_parity.py (250, and its step count) with this figure.",
        ]
    return "\n".join(lines) + "\n"


def pack(out: pathlib.Path, archive: pathlib.Path) -> pathlib.Path:
    """Packs ``out`` (REPORT.md and the runs) into ``archive`` (.tar.gz), leaving out ``ckpt/``
    folders and lock files (checkpoints are large and resumable runs are not brought back)."""

    def keep(info: tarfile.TarInfo):
        parts = pathlib.PurePosixPath(info.name).parts
        if "ckpt" in parts or parts[-1] == ".lock" or ".tar.gz" in parts[-1]:  # + its .tmp
            return None
        return info

    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(out, arcname=out.name or "reproduce", filter=keep)
    tmp.replace(archive)
    return archive


def run_gpu_tier(only: list[str] | None, out: str | pathlib.Path) -> int:
    """``jaxlab reproduce --gpu``: runs the tier, appends the GPU section, packs the archive."""
    from jaxlab import launch, metrics
    from jaxlab.experiments import RUNNERS

    out = pathlib.Path(out)
    names = [n for n in ORDER if n in RUNNERS] + [n for n in RUNNERS if n not in ORDER]
    names = names if only is None else only
    start = time.perf_counter()
    code = launch.reproduce("gpu", names, out)
    total = time.perf_counter() - start
    machine = metrics.machine_info()
    report_path = out / "REPORT.md"
    with report_path.open("a") as f:
        f.write(gpu_section(out, names, machine, total))
    archive = pack(out, out / f"jaxlab-gpu-{commit_id()}.tar.gz")
    print(
        f"[reproduce] packed {archive} ({archive.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr
    )
    if machine.get("backend") == "cpu":
        print("[reproduce] warning: the gpu tier ran on the CPU backend", file=sys.stderr)
    return code


def partial_report(out: str | pathlib.Path) -> pathlib.Path:
    """REPORT.md for a tier cut before ``launch.reproduce`` wrote one (benchmarks/gpu.sh calls
    it after its deadline): the GPU section over the runs that have a folder under ``out/gpu``.
    """
    from jaxlab import metrics

    out = pathlib.Path(out)
    names = sorted(p.name for p in (out / "gpu").iterdir() if p.is_dir())
    path = out / "REPORT.md"
    text = "# jaxlab reproduction report (gpu, partial: cut by the deadline)\n"
    path.write_text(text + gpu_section(out, names, metrics.machine_info(), float("nan")))
    return path


def reproduce(only: list[str] | None, out: str | pathlib.Path, *, dry: bool) -> int:
    """Entry point of ``jaxlab reproduce --gpu [--dry-run]``."""
    from jaxlab.config_args import UsageError
    from jaxlab.experiments import RUNNERS

    if only is not None:
        if not only:
            raise UsageError("--only: expected one or more experiment names (comma-separated)")
        unknown = [n for n in only if n not in RUNNERS]
        if unknown:
            raise UsageError(
                f"--only: unknown experiment(s) {', '.join(unknown)} (known: {', '.join(RUNNERS)})"
            )
    if dry:
        start, cpu = time.perf_counter(), time.process_time()
        code, _ = dry_run(only)
        print(
            f"[dry-run] done in {time.perf_counter() - start:.1f} s wall, "
            f"{time.process_time() - cpu:.1f} s CPU",
            file=sys.stderr,
        )
        return code
    return run_gpu_tier(only, out)
