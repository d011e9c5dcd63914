"""The run protocol under faults (issue 17 §3): kills, interrupts, damaged checkpoints, full disks.

Each fault ends in one of two ways: the run resumes and its figures are bit-identical to an
uninterrupted run's (every ``metrics.jsonl`` line equal, every final parameter equal bit for
bit), or it stops with one error line, no traceback and no ``results.json``. Faults that only a
separate process can suffer (``kill -9``, a file size limit) run this file as a child process
(``python tests/test_protocol.py SPEC``); the rest run in-process on one shared reference run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
STEPS = 10  # log every step, checkpoint every 2: a kill anywhere must lose nothing logged


def _configs():
    from jaxlab import train
    from jaxlab.models import lm_config

    model = lm_config(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, train_len=16)
    cfg = train.TrainConfig(
        batch_size=4, seq_len=16, num_steps=STEPS, learning_rate=1e-2, warmup_steps=2,
        log_every=1, eval_every=0, eval_windows=4, checkpoint_every=2,
    )  # fmt: skip
    return model, cfg


def _write_text(path: pathlib.Path) -> pathlib.Path:
    import numpy as np

    words = [b"alpha ", b"beta ", b"gamma ", b"delta\n"]
    path.write_bytes(b"".join(words[i] for i in np.random.default_rng(0).integers(0, 4, 1500)))
    return path


def _fit(text: pathlib.Path, workdir: pathlib.Path, **kwargs):
    from jaxlab import data, sharding, train

    model, cfg = _configs()
    corpus = data.load_corpus(data.DataConfig(files=(str(text),)))
    return train.fit(model, cfg, corpus, workdir, mesh=sharding.data_mesh(1), **kwargs)


def _child(spec: dict) -> None:
    """Runs in a child process: trains ``spec["workdir"]`` and SIGKILLs itself at a set point.

    ``kill = ["metrics", n]``: right after the n-th metrics line is written; ``["rename", n]``:
    inside orbax's n-th commit rename (a checkpoint half-committed); ``["none", 0]``: never.
    ``spec["slow"]``: sleep this long after each metrics line (a wide window for a kill from
    outside). ``spec["cli"]``: run ``jaxlab`` with these arguments instead (:func:`_child_cli`).
    """
    import jax

    jax.config.update("jax_num_cpu_devices", 4)  # as tests/conftest.py: same programs
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    from orbax.checkpoint._src.path import async_path

    from jaxlab import metrics

    kind, count = spec.get("kill", ("none", 0))
    calls = {"metrics": 0, "rename": 0}

    def hit(what: str) -> None:
        calls[what] += 1
        if what == kind and calls[what] == count:
            os.kill(os.getpid(), signal.SIGKILL)

    real_write, real_rename = metrics.MetricsWriter.write, async_path.rename

    def write(self, step, **values):
        record = real_write(self, step, **values)
        hit("metrics")
        time.sleep(spec.get("slow", 0))
        return record

    async def rename(src, dst):
        hit("rename")
        return await real_rename(src, dst)

    metrics.MetricsWriter.write = write
    async_path.rename = rename
    if "cli" in spec:
        _child_cli(spec)
    else:
        _fit(pathlib.Path(spec["text"]), pathlib.Path(spec["workdir"]))


def _child_cli(spec: dict) -> None:
    """``jaxlab run`` in a child: with a file size limit of ``spec["fsize"]`` bytes (a full
    disk: writes past it fail with EFBIG), then again without it. Prints both exit codes."""
    import resource

    from jaxlab.main import main

    codes = []
    if spec.get("fsize"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], hard))
        codes.append(main(spec["cli"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        print("--- space freed", file=sys.stderr, flush=True)
    codes.append(main(spec["cli"]))
    print("codes", *codes, flush=True)


def _spawn(spec: dict, cache: pathlib.Path | None = None) -> subprocess.Popen:
    """Starts the child; ``cache``: a JAX compilation cache shared by the children (the first
    compiles, the others load: ~8 s -> ~3 s of CPU each)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    if cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


if __name__ == "__main__":  # the child process
    _child(json.loads(sys.argv[1]))
    sys.exit(0)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from jaxlab import checkpoint, metrics, train  # noqa: E402


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return _write_text(tmp_path_factory.mktemp("text") / "text.txt")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("compilation_cache")


@pytest.fixture(scope="module")
def reference(text, tmp_path_factory):
    """An uninterrupted run: its metrics lines and final parameters."""
    workdir = tmp_path_factory.mktemp("reference")
    result = _fit(text, workdir)
    return metrics.read_metrics(workdir), _params(result.model)


@pytest.fixture(scope="module")
def stopped(text, tmp_path_factory):
    """A run stopped after step 6 (checkpoints 4 and 6 kept), to be damaged and resumed."""
    workdir = tmp_path_factory.mktemp("stopped")
    _fit(text, workdir, stop_at=6)
    assert _steps(workdir) == [4, 6]
    return workdir


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model))]


def _steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "ckpt").iterdir() if p.name.isdigit())


def assert_identical(result, workdir: pathlib.Path, reference) -> None:
    """Every metrics line equal (nothing lost or repeated) and every parameter equal bitwise."""
    lines, params = reference
    got = metrics.read_metrics(workdir)
    assert [r["step"] for r in got] == [r["step"] for r in lines]
    assert got == lines
    for a, b in zip(_params(result.model), params, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_kill_9_then_resume_is_bit_identical(text, reference, cache, tmp_path):
    """Two kills in a row, then a resume: right after the line of step 4 (a checkpoint step:
    its line goes first, so checkpoint 4 does not exist yet), then, resumed from 2, inside
    the commit of checkpoint 6 (orbax renames twice per save: its state, then the step)."""
    workdir = tmp_path / "run"
    for kill, committed in [(("metrics", 4), [2]), (("rename", 3), [2, 4])]:
        child = _spawn({"text": str(text), "workdir": str(workdir), "kill": list(kill)}, cache)
        out, err = child.communicate(timeout=240)
        assert child.returncode == -signal.SIGKILL, err
        assert _steps(workdir) == committed
    assert (workdir / "ckpt" / "6.orbax-checkpoint-tmp").is_dir()  # the half-written one
    result = _fit(text, workdir)
    assert result.resumed_from == 4
    assert_identical(result, workdir, reference)


def test_kill_9_at_a_random_time_then_resume_is_bit_identical(text, reference, cache, tmp_path):
    """A kill from outside, at a random moment after the first checkpoint is committed."""
    workdir = tmp_path / "run"
    child = _spawn({"text": str(text), "workdir": str(workdir), "slow": 0.05}, cache)
    deadline = time.monotonic() + 240
    while not (workdir / "ckpt" / "2").is_dir() and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    delay = np.random.default_rng().uniform(0.0, 0.3)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    result = _fit(text, workdir)
    assert_identical(result, workdir, reference)
    assert child.returncode == -signal.SIGKILL, f"finished before the kill ({delay:.3f} s)"


def test_interrupt_during_a_save_is_held_until_it_is_committed(
    text, reference, tmp_path, monkeypatch
):
    """SIGINT inside checkpoint 4's commit: the save finishes, then the run stops (130 in the
    CLI); checkpoint 4 and line 4 are on disk and the resumed run is bit-identical."""
    from orbax.checkpoint._src.path import async_path

    real_rename, calls = async_path.rename, []

    async def rename(src, dst):
        calls.append(str(dst))
        if len(calls) == 3:  # two renames per save (its state, then the step): checkpoint 4
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # let the signal land while the commit is still in progress
        return await real_rename(src, dst)

    monkeypatch.setattr(async_path, "rename", rename)
    workdir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _fit(text, workdir)
    monkeypatch.setattr(async_path, "rename", real_rename)
    assert _steps(workdir) == [2, 4]
    assert [p.name for p in (workdir / "ckpt").iterdir() if not p.name.isdigit()] == []
    assert metrics.read_metrics(workdir)[-1]["step"] == 4
    result = _fit(text, workdir)
    assert result.resumed_from == 4
    assert_identical(result, workdir, reference)


def test_hold_interrupts_delivers_after_the_block():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with checkpoint.hold_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            done.append("rest of the block ran")
    assert done == ["rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_right_after_a_checkpoint_keeps_its_metrics_line(
    text, reference, tmp_path, monkeypatch
):
    """Issue 17 §3.9: SIGINT just after checkpoint 4 lost line 4 (logged after the save)."""
    real_save = checkpoint.Checkpoints.save

    def save(self, step, *args, **kwargs):
        saved = real_save(self, step, *args, **kwargs)
        if step == 4:
            raise KeyboardInterrupt
        return saved

    monkeypatch.setattr(checkpoint.Checkpoints, "save", save)
    workdir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _fit(text, workdir)
    monkeypatch.setattr(checkpoint.Checkpoints, "save", real_save)
    assert [r["step"] for r in metrics.read_metrics(workdir)] == [1, 2, 3, 4]
    result = _fit(text, workdir)
    assert result.resumed_from == 4
    assert_identical(result, workdir, reference)


def _largest_data_file(step_dir: pathlib.Path) -> pathlib.Path:
    files = [p for p in step_dir.rglob("*") if p.is_file() and "metadata" not in p.name.lower()]
    return max(files, key=lambda p: p.stat().st_size)


def _flip(path: pathlib.Path) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) // 2, min(len(raw) // 2 + 64, len(raw))):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


DAMAGE = {  # issue 17 §3.1 and §3.7: ways the newest checkpoint can be damaged
    "flipped_bytes": lambda d: _flip(_largest_data_file(d)),
    "truncated_file": lambda d: os.truncate(f := _largest_data_file(d), f.stat().st_size // 2),
    "deleted_file": lambda d: _largest_data_file(d).unlink(),
    "no_checkpoint_metadata": lambda d: (d / "_CHECKPOINT_METADATA").unlink(),
    "garbled_checkpoint_metadata": lambda d: (d / "_CHECKPOINT_METADATA").write_text("{"),
    "no_array_metadata": lambda d: (d / "state" / "_METADATA").unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_with_a_warning(
    text, reference, stopped, tmp_path, damage, caplog
):
    """The one warning names the step and the reason; orbax's own log lines about the damage
    are not shown (and no "Exception ignored" traceback: pytest turns those into errors)."""
    workdir = tmp_path / "run"
    shutil.copytree(stopped, workdir)
    DAMAGE[damage](workdir / "ckpt" / "6")
    with pytest.warns(UserWarning, match="step 6 .* damaged") as caught:
        result = _fit(text, workdir)
    assert len(caught) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert result.resumed_from == 4
    assert_identical(result, workdir, reference)


def test_nan_gradient_norm_with_finite_loss_is_caught(text, tmp_path, monkeypatch):
    """Issue 17 §3.8: a NaN gradient with a finite loss used to pass the loss-only guard."""

    def finite_loss_nan_grad(model, logits_BLV, targets_BL):
        ce = train.cross_entropy(model, logits_BLV, targets_BL)
        return ce + 0.0 * jnp.sqrt(0.0 * logits_BLV.sum())  # value ce; gradient 0 * inf = NaN

    monkeypatch.setitem(train.LOSSES, "nan_grad", finite_loss_nan_grad)
    from jaxlab import data, sharding

    model, cfg = _configs()
    cfg = dataclasses.replace(cfg, loss="nan_grad", log_every=4)
    corpus = data.load_corpus(data.DataConfig(files=(str(text),)))
    with pytest.raises(FloatingPointError, match="at step 1 "):
        train.fit(model, cfg, corpus, tmp_path, mesh=sharding.data_mesh(1))
    last = metrics.read_metrics(tmp_path)[-1]
    assert last["first_nonfinite_step"] == 1 and last["step"] == 2  # the guard at checkpoint 2
    assert not (tmp_path / "ckpt").exists() or _steps(tmp_path) == []


def _cli(text: pathlib.Path, workdir: pathlib.Path, *extra: str) -> list[str]:
    """``jaxlab run`` of a tiny lm_baseline: 6 steps, a line every step, checkpoints every 2."""
    sizes = dict(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, train_len=16)
    return [
        "run", "lm_baseline:quick", "--workdir", str(workdir),
        f"--config.data.files=('{text}',)",
        *(f"--config.model.{k}={v}" for k, v in sizes.items()),
        "--config.train.seq_len=16", "--config.train.batch_size=4", "--config.train.num_steps=6",
        "--config.train.warmup_steps=2", "--config.train.log_every=1",
        "--config.train.eval_every=0", "--config.train.eval_windows=4",
        "--config.train.checkpoint_every=2",
        "--config.final_eval_windows=8", *extra,
    ]  # fmt: skip


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert len(lines) == 1, err  # progress lines ("[lm_baseline] 4/6 steps ...") aside
    return lines[0]


@pytest.fixture(scope="module")
def cli_reference(text, tmp_path_factory):
    """The figures of an uninterrupted `jaxlab run` of :func:`_cli`."""
    from jaxlab.main import main

    workdir = tmp_path_factory.mktemp("cli") / "whole"
    assert main(_cli(text, workdir)) == 0
    return workdir, json.loads((workdir / "results.json").read_text())["figures"]


def test_cli_sigint_at_a_random_time_then_resume_is_bit_identical(
    text, cli_reference, cache, tmp_path
):
    from jaxlab.main import main

    workdir = tmp_path / "cut"
    child = _spawn({"cli": _cli(text, workdir), "slow": 0.05}, cache)
    deadline = time.monotonic() + 240
    while not (workdir / "ckpt" / "2").is_dir() and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    delay = np.random.default_rng().uniform(0.0, 0.2)
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    codes = out.splitlines()[-1].split()
    assert codes == ["codes", "130"], f"finished before SIGINT ({delay:.3f} s): {err}"
    assert _one_error_line(err).startswith("jaxlab: interrupted")
    assert not (workdir / "results.json").exists()
    assert main(_cli(text, workdir)) == 0
    figures = json.loads((workdir / "results.json").read_text())["figures"]
    assert figures["resumed_from_step"] in (2, 4, 6)
    whole = cli_reference[1]
    assert {k: v for k, v in figures.items() if k != "resumed_from_step"} == {
        k: v for k, v in whole.items() if k != "resumed_from_step"
    }
    assert metrics.read_metrics(workdir) == metrics.read_metrics(cli_reference[0])


def test_cli_disk_full_during_a_checkpoint_is_one_line_then_resumes(text, tmp_path):
    """Issue 17 §3.7: a full disk in a checkpoint write is one line, no orbax thread left
    waiting (the child exits), and the same command completes once there is space."""
    workdir = tmp_path / "full"
    child = _spawn({"cli": _cli(text, workdir), "fsize": 16_384})
    out, err = child.communicate(timeout=240)
    assert child.returncode == 0, err
    assert out.splitlines()[-1].split() == ["codes", "1", "0"], err
    before, _, _ = err.partition("--- space freed")
    line = _one_error_line(before)
    assert line.startswith("jaxlab: error: cannot write the checkpoint of step 2"), line
    assert "File too large" in line and "rerun the same command" in line
    assert (workdir / "results.json").is_file()


def test_cli_checkpoint_path_that_is_a_file_is_one_line(text, tmp_path, capsys):
    from jaxlab.main import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ckpt").write_text("a file where the checkpoints go")
    assert main(_cli(text, tmp_path / "run")) == 2
    assert "is not a directory" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run" / "results.json").exists()


def test_cli_checkpoint_of_another_config_is_refused(text, cli_reference, tmp_path, capsys):
    """Issue 17 §3.2: config.json gone, ckpt/ kept: a run with another learning rate must not
    resume the old checkpoints and report them as its own result."""
    from jaxlab.main import main

    workdir = tmp_path / "run"
    shutil.copytree(cli_reference[0], workdir)
    (workdir / "config.json").unlink()
    (workdir / "results.json").unlink()
    capsys.readouterr()
    assert main(_cli(text, workdir, "--config.train.learning_rate=0.005")) == 2
    assert "holds checkpoints of another config" in _one_error_line(capsys.readouterr().err)
    assert not (workdir / "results.json").exists()


def test_cli_nan_guard_then_the_corrected_command_runs(text, cli_reference, tmp_path, capsys):
    """Issue 17 §3.6-3.8: a diverging run stops on one line (exit 1, no results.json, no
    checkpoint after the bad step); the corrected command then runs in the same workdir and
    the failed run's files are kept aside, not deleted."""
    from jaxlab.main import main

    workdir = tmp_path / "run"
    assert main(_cli(text, workdir, "--config.train.learning_rate=1e38")) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "non-finite loss or gradient norm at step" in line
    bad = int(line.split("at step ")[1].split()[0])
    assert all(step < bad for step in _steps(workdir))
    assert not (workdir / "results.json").exists()
    assert main(_cli(text, workdir)) == 0
    assert "moved the failed run" in capsys.readouterr().err
    assert (workdir / "failed-run-1" / "metrics.jsonl").is_file()
    figures = json.loads((workdir / "results.json").read_text())["figures"]
    assert figures == cli_reference[1]
