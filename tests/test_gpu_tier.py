"""The GPU tier on CPU: every gpu config compiles at full shape (dry run), report and archive.

The dry run is parametrised by experiment so ``pytest -n 2`` spreads the compiles over both
workers; it is the CI check that a shape or sharding error of a gpu config fails here, not in
the one 10-minute GPU call.
"""

import io
import json
import pathlib
import tarfile

import jax
import jax.numpy as jnp
import pytest

from jaxlab import gpu_programs as programs_mod
from jaxlab import gpu_tier
from jaxlab.experiments import RUNNERS
from jaxlab.main import main

# The bfloat16 gpu configs: their residual stream must stay bfloat16 (models.Block casts the
# float32 attention output back), so they lower under the test suite's strict promotion too.
BF16_IMPLICIT_PROMOTION = ("lm_baseline", "rope_extrapolation")


@pytest.mark.parametrize("name", list(RUNNERS))
def test_dry_run_compiles_gpu_config(name):
    out = io.StringIO()
    # The CLI's dtype promotion (standard), not the test suite's strict one: this checks what
    # the GPU run will compile. The strict failure is kept below as an expected failure.
    with jax.numpy_dtype_promotion("standard"):
        code, results = gpu_tier.dry_run([name], out=out)
    assert code == 0, out.getvalue()
    entry = results[name]
    assert entry["error"] is None
    if name in programs_mod.PROGRAMS:
        assert entry["programs"], f"{name}: the hook returned no programs"
        for prog, r in entry["programs"].items():
            assert r["bytes"] is not None and r["bytes"] > 0, (name, prog)
            assert r["bytes"] <= gpu_tier.DEVICE_BYTES
    assert f"[dry-run] {name}:gpu" in out.getvalue()


@pytest.mark.parametrize("name", BF16_IMPLICIT_PROMOTION)
def test_bf16_gpu_configs_lower_under_strict_promotion(name):
    from jaxlab import launch, sharding

    config = launch.load_config(f"{name}:gpu")
    train_step = programs_mod.PROGRAMS[name](config, sharding.data_mesh())[0]
    train_step.fn.lower(*train_step.args)  # lowering only: the promotion error is raised here


def test_every_experiment_is_compiled_or_says_why_not():
    assert set(programs_mod.PROGRAMS) | set(programs_mod.UNCOMPILED) == set(RUNNERS)
    assert not set(programs_mod.PROGRAMS) & set(programs_mod.UNCOMPILED)


def test_every_experiment_has_a_budget_and_they_sum_to_the_tier():
    assert set(gpu_tier.BUDGET_S) == set(RUNNERS)
    assert sum(gpu_tier.BUDGET_S.values()) <= gpu_tier.TOTAL_BUDGET_S


def _broken(config, mesh):  # a matmul of mismatched shapes: fails at lowering
    a, b = jax.ShapeDtypeStruct((3, 4), jnp.float32), jax.ShapeDtypeStruct((5, 6), jnp.float32)
    return [programs_mod.Program("bad_matmul", jax.jit(jnp.matmul), (a, b))]


def test_dry_run_fails_with_one_line_on_a_shape_error(monkeypatch, capsys):
    monkeypatch.setitem(programs_mod.PROGRAMS, "quanta_theory", _broken)
    code, results = gpu_tier.dry_run(["quanta_theory"], out=io.StringIO())
    assert code == 1
    assert results["quanta_theory"]["error"].startswith("TypeError")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["jaxlab: error: gpu dry run failed for quanta_theory"]


def test_dry_run_fails_when_the_estimate_exceeds_the_device(monkeypatch):
    def small(config, mesh):
        x = jax.ShapeDtypeStruct((1024, 1024), jnp.float32)
        return [programs_mod.Program("square", jax.jit(lambda a: a @ a), (x,))]

    monkeypatch.setitem(programs_mod.PROGRAMS, "quanta_theory", small)
    monkeypatch.setattr(gpu_tier, "DEVICE_BYTES", 2**20)  # 1 MiB: 4 MiB in, 4 MiB out
    code, results = gpu_tier.dry_run(["quanta_theory"], out=io.StringIO())
    assert code == 1
    assert results["quanta_theory"]["error"].startswith("MemoryError")
    assert results["quanta_theory"]["programs"]["square"]["bytes"] >= 8 * 2**20


def test_cli_dry_run_needs_gpu_and_checks_only(capsys):
    assert main(["reproduce", "--dry-run"]) == 2
    assert "--dry-run: only with --gpu" in capsys.readouterr().err
    assert main(["reproduce", "--gpu", "--dry-run", "--only", "nope"]) == 2
    assert "unknown experiment(s) nope" in capsys.readouterr().err


def _fake_run(out: pathlib.Path, name: str, wall: float, config: dict | None = None):
    d = out / "gpu" / name
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({"wall_time_s": wall}))
    (d / "config.json").write_text(json.dumps({"config": config or {}}))
    return d


def test_gpu_section_wall_times_and_parity_rate(tmp_path):
    _fake_run(tmp_path, "sparse_parity", 100.0, {"sweep": {"num_steps": 20_000}})
    _fake_run(tmp_path, "deer_train", 55.0)
    machine = dict(device_kind="NVIDIA H100 80GB HBM3", device_count=1, backend="gpu",
                   jax="0.11.2", jaxlib="0.11.2")  # fmt: skip
    text = gpu_tier.gpu_section(
        tmp_path, ["sparse_parity", "deer_train", "lm_baseline"], machine, 300.0
    )
    assert "device kind NVIDIA H100 80GB HBM3 x1" in text and "jax 0.11.2" in text
    assert "| sparse_parity | 100.0 | 120 | within |" in text
    assert "| deer_train | 55.0 | 40 | over budget |" in text
    assert "| lm_baseline | – | 40 | no results.json" in text
    # 20 000 steps in 100 s: 200 steps/s, 0.1 of the paper's 200 000, which would take 1000 s.
    assert "200.0 steps/s" in text and "0.100 of the paper's 200000 steps" in text
    assert "~1000 s" in text


def test_pack_brings_back_report_and_runs_without_checkpoints(tmp_path):
    out = tmp_path / "rep"
    d = _fake_run(out, "lm_baseline", 1.0)
    (d / "ckpt").mkdir()
    (d / "ckpt" / "big.bin").write_bytes(b"x" * 1000)
    (d / ".lock").write_text("")
    (out / "REPORT.md").write_text("# report\n")
    archive = gpu_tier.pack(out, out / "jaxlab-gpu-abc.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "rep/REPORT.md" in names and "rep/gpu/lm_baseline/results.json" in names
    assert not any("ckpt" in n or n.endswith(".lock") or ".tar.gz" in n for n in names)


def test_partial_report_lists_finished_and_cut_runs(tmp_path):
    _fake_run(tmp_path, "sparse_parity", 90.0, {"sweep": {"num_steps": 9_000}})
    (tmp_path / "gpu" / "rope_extrapolation").mkdir()  # started, cut before results.json
    text = gpu_tier.partial_report(tmp_path).read_text()
    assert text.startswith("# jaxlab reproduction report (gpu, partial: cut by the deadline)")
    assert "| sparse_parity | 90.0 | 120 | within |" in text
    assert "| rope_extrapolation | – | 60 | no results.json" in text
    assert "100.0 steps/s" in text


def test_tier_runs_every_experiment_once_in_priority_order(monkeypatch, tmp_path):
    seen = {}

    def fake_reproduce(mode, only, out):
        seen["names"] = only
        (pathlib.Path(out) / "REPORT.md").write_text("# r\n")
        return 0

    monkeypatch.setattr("jaxlab.launch.reproduce", fake_reproduce)
    monkeypatch.setattr(gpu_tier, "commit_id", lambda: "x")
    gpu_tier.run_gpu_tier(None, tmp_path)
    assert sorted(seen["names"]) == sorted(RUNNERS)
    assert seen["names"][:2] == ["sparse_parity", "rope_extrapolation"]


def test_run_gpu_tier_appends_section_and_packs(tmp_path, monkeypatch):
    def fake_reproduce(mode, only, out):
        assert mode == "gpu"
        _fake_run(pathlib.Path(out), "deer_train", 12.5)
        (pathlib.Path(out) / "REPORT.md").write_text("# jaxlab reproduction report (gpu)\n")
        return 0

    monkeypatch.setattr("jaxlab.launch.reproduce", fake_reproduce)
    monkeypatch.setenv("JAXLAB_COMMIT", "cafe123")
    monkeypatch.setattr(gpu_tier, "commit_id", lambda: "cafe123")
    assert gpu_tier.run_gpu_tier(["deer_train"], tmp_path) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "## GPU tier" in report and "commit cafe123" in report
    assert "| deer_train | 12.5 | 40 | within |" in report
    with tarfile.open(tmp_path / "jaxlab-gpu-cafe123.tar.gz") as tar:
        member = tar.extractfile(f"{tmp_path.name}/REPORT.md").read().decode()
    assert member == report


def test_commit_id_from_git_else_environment(monkeypatch):
    from jaxlab import metrics

    info = metrics.machine_info()
    monkeypatch.setenv("JAXLAB_COMMIT", "envsha")
    monkeypatch.setattr(metrics, "machine_info", lambda: {**info, "git_commit": "gitsha"})
    assert gpu_tier.commit_id() == "gitsha"
    monkeypatch.setattr(metrics, "machine_info", lambda: {**info, "git_commit": ""})
    assert gpu_tier.commit_id() == "envsha"
    monkeypatch.delenv("JAXLAB_COMMIT")
    assert gpu_tier.commit_id() == "unknown"
