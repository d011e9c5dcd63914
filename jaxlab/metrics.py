"""Run outputs: the JSONL metrics writer, progress with rate/ETA, and the NaN guard (STYLE 2.10)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Mapping

import numpy as np

from jaxlab.config_args import WriteError


class MetricsWriteError(WriteError):
    """``metrics.jsonl`` could not be written (a full disk): printed on one line by the CLI."""


def to_jsonable(value):
    """Converts numpy/jax scalars and arrays (and nested containers) into JSON-ready values."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf/nan; keep them readable
    if isinstance(value, np.generic):
        return value.item()
    return value


class MetricsWriter:
    """Appends one JSON object per logged step to ``workdir/metrics.jsonl``.

    On resume, pass ``resume_step``: lines with ``step > resume_step`` (logged after the
    checkpoint that is being resumed from) are dropped so the file reads as one clean run; the
    kept lines are in ``kept``. Every line is flushed and fsynced before :meth:`write` returns,
    so a checkpoint saved after it never gets ahead of the file (a kill loses no logged step).
    """

    def __init__(self, workdir: str | pathlib.Path, *, resume_step: int | None = None):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.kept: list[dict] = []
        if resume_step is not None and self.path.exists():
            self.kept = [r for r in _records(self.path) if _step(r) <= resume_step]
        self._replace("".join(json.dumps(r) + "\n" for r in self.kept))
        self.last: dict | None = None

    def _replace(self, text: str) -> None:
        """Rewrites the file atomically (a kill leaves the old or the new file, never half)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
        except OSError as e:
            raise MetricsWriteError(f"cannot write {self.path}: {e.strerror or e}") from None

    def write(self, step: int, **values) -> dict:
        """Appends ``{"step": step, **values}`` as one line (flushed and fsynced); returns it.

        Raises:
          MetricsWriteError: the line could not be written (disk full): one line, exit 1.
        """
        record = {"step": int(step), **to_jsonable(values)}
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise MetricsWriteError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.last = record
        return record


def _step(record: dict) -> int | float:
    step = record.get("step", 0)
    return step if isinstance(step, int | float) else math.inf


def _records(path: pathlib.Path) -> list[dict]:
    """The JSON-object lines of ``path``; damaged lines (a truncated last line left by a kill or
    a full disk) are skipped with one warning line on stderr."""
    records, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    if bad:
        print(f"jaxlab: warning: skipped {bad} damaged line(s) of {path}", file=sys.stderr)
    return records


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """Reads ``workdir/metrics.jsonl`` back as a list of dicts (damaged lines skipped)."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return _records(path)


class Progress:
    """Prints ``name: step/total, rate, ETA`` to stderr at most every ``min_interval`` seconds."""

    def __init__(self, name: str, total: int, *, unit: str = "step", min_interval: float = 5.0):
        self.name, self.total, self.unit = name, int(total), unit
        self.min_interval = min_interval
        self.start = time.perf_counter()
        self.start_count = None
        self.last_print = -math.inf

    def update(self, count: int, extra: str = "", *, force: bool = False) -> None:
        now = time.perf_counter()
        if self.start_count is None:  # the first call (after compile) sets the baseline
            self.start_count, self.start, self.last_print = count, now, now
            if not force:
                return
        if not force and now - self.last_print < self.min_interval:
            return
        self.last_print = now
        done = count - self.start_count
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = (self.total - count) / rate if rate > 0 else math.inf
        eta_txt = f"{eta:.0f}s" if math.isfinite(eta) else "?"
        msg = f"[{self.name}] {count}/{self.total} {self.unit}s, {rate:.2f} {self.unit}s/s"
        msg += f", ETA {eta_txt}"
        print(msg + (f", {extra}" if extra else ""), file=sys.stderr, flush=True)


def check_finite(step: int, values: Mapping, writer: MetricsWriter | None = None) -> None:
    """NaN guard: raises FloatingPointError naming the step if any value is not finite.

    The offending metrics are written first so the last line of metrics.jsonl shows them.
    """
    bad = [k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    if bad:
        if writer is not None:
            writer.write(step, **values)
        raise FloatingPointError(f"non-finite {', '.join(bad)} at step {step}")


def machine_info() -> dict:
    """jax/jaxlib versions, backend, device kind and count, CPUs, Python version, git commit."""
    import os
    import platform
    import subprocess

    import jax
    import jaxlib

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=pathlib.Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    devices = jax.devices()
    return dict(
        jax=jax.__version__,
        jaxlib=jaxlib.__version__,
        backend=jax.default_backend(),
        device_kind=devices[0].device_kind,
        device_count=len(devices),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        platform=platform.platform(),
        git_commit=commit or "unknown",
    )
