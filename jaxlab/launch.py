"""Loading configs, applying overrides, running experiments into workdirs, and ``reproduce``.

The run protocol: ``workdir/config.json`` is written first (resolved config + machine); the
runner writes ``metrics.jsonl``, plots and ``ckpt/``; ``results.json`` is written last, atomically,
and marks the run as finished. A workdir holding a finished run of another config is refused, so
is an unfinished one (it resumes with its own config), except one that stopped on an error
(``failed.json``): a corrected command moves its files to ``failed-run-N/`` and runs.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import importlib.util
import json
import pathlib
import shutil
import sys
import time
import traceback

import ml_collections

from jaxlab import metrics, report
from jaxlab.config_args import UsageError, parse_value, shorten

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


def _runners():
    from jaxlab.experiments import RUNNERS  # imported lazily: `jaxlab --help` stays fast

    return RUNNERS


def _describe(name: str) -> str:
    from jaxlab.experiments import describe

    return describe(name)


def resolve_config_path(name: str) -> pathlib.Path:
    """``configs/x.py`` or a bare experiment name ``x`` → an existing config file."""
    path = pathlib.Path(name)
    if path.suffix == ".py":
        if path.is_file():
            return path
        if (REPO_ROOT / path).is_file():
            return REPO_ROOT / path
    elif (CONFIG_DIR / f"{name}.py").is_file():
        return CONFIG_DIR / f"{name}.py"
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.py")))
    raise UsageError(f"config file not found: {name!r} (known configs: {known})")


def load_config(spec: str, overrides: list[str] | None = None) -> ml_collections.ConfigDict:
    """Loads ``"configs/x.py:quick,seed=1"`` (or ``"x:quick"``), applies overrides, validates.

    The config file may define ``CHOICES = {"dotted.key": (allowed values, ...)}`` for its
    enum-like fields; they and the generic rules of :func:`validate_config` are checked after
    ``overrides`` (``--config.KEY=VALUE`` items) are applied. A config without
    ``known_disagreements`` gets ``()`` (claims it is known to disagree with: ``(name, reason)``
    pairs).

    Raises:
      UsageError: missing file, no ``get_config``, bad argument or override, a value out of
        range, unknown experiment. A config file that itself fails (an exception in its code)
        first prints one line naming the file, then raises the original error.
    """
    name, _, arg = spec.partition(":")
    path = resolve_config_path(name)
    module_spec = importlib.util.spec_from_file_location(f"jaxlab_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise UsageError(f"config file {path} defines no get_config(arg)")
        config = module.get_config(arg or None)
    except SyntaxError as e:
        raise UsageError(f"config file {path} does not parse: {e.msg} (line {e.lineno})") from None
    except UsageError:
        raise
    except Exception as e:  # the user's code failed: name the file first, then its traceback
        print(f"jaxlab: error: config file {path} failed: {type(e).__name__}", file=sys.stderr)
        raise
    if not isinstance(config, ml_collections.ConfigDict):
        raise UsageError(f"config file {path}: get_config returned {type(config).__name__}")
    experiment = config.get("experiment")
    if experiment not in _runners():
        known = ", ".join(sorted(_runners()))
        raise UsageError(f"config {path} names unknown experiment {experiment!r} (known: {known})")
    if "known_disagreements" not in config:
        config.known_disagreements = ()
    config.lock()
    apply_overrides(config, overrides or [])
    validate_config(config, getattr(module, "CHOICES", {}))
    return config


# Fields that must be positive / non-negative wherever they appear (validate_config).
POSITIVE = ("learning_rate", "lr", "grad_clip", "batch_size", "batch", "seq_len", "length")
NON_NEGATIVE = ("weight_decay", "warmup_steps", "log_every", "eval_every", "checkpoint_every")


def _walk(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, ml_collections.ConfigDict):
            yield from _walk(v, f"{prefix}{k}.")
        else:
            yield prefix + k, k, v


def validate_config(config: ml_collections.ConfigDict, choices: dict | None = None) -> None:
    """Checks values at the config boundary, so a bad value is one line, not a traceback.

    Generic rules by field name: ``seed`` in [0, 2^63); ``steps``, ``num_steps`` and
    ``*_steps`` (but ``warmup_steps`` >= 0) at least 1; ``num_devices`` in [0, devices
    available]; :data:`POSITIVE` fields > 0 and :data:`NON_NEGATIVE` ones >= 0; every path in a
    ``files`` field an existing file. ``choices`` maps dotted keys of
    enum-like fields to their allowed values (a tuple field: each item).

    Raises:
      UsageError: naming the key, what is allowed and what was given.
    """
    for key, leaf, value in _walk(config):
        if isinstance(value, bool):
            continue
        if leaf == "seed" and isinstance(value, int) and not 0 <= value < 2**63:
            raise UsageError(f"{key}: expected an integer in [0, 2^63), got {value}")
        steps = leaf in ("steps", "num_steps") or leaf.endswith("_steps")
        if steps and isinstance(value, int):
            low = 0 if leaf == "warmup_steps" else 1
            if value < low:
                raise UsageError(f"{key}: expected a step count >= {low}, got {value}")
        if leaf == "num_devices" and isinstance(value, int):
            import jax

            if not 0 <= value <= jax.device_count():
                raise UsageError(
                    f"{key}: expected 0 (all) to {jax.device_count()} (devices available), "
                    f"got {value}"
                )
        if leaf in POSITIVE and isinstance(value, int | float) and not value > 0:
            raise UsageError(f"{key}: expected a number > 0, got {value}")
        if leaf in NON_NEGATIVE and isinstance(value, int | float) and not value >= 0:
            raise UsageError(f"{key}: expected a number >= 0, got {value}")
        if leaf == "files" and isinstance(value, tuple | list):
            for f in value:
                if not isinstance(f, str) or not pathlib.Path(f).is_file():
                    raise UsageError(f"{key}: no such file: {shorten(str(f))}")
    for key, allowed in (choices or {}).items():
        node = config
        for part in key.split("."):
            node = node[part]
        for value in node if isinstance(node, tuple | list) else (node,):
            if value not in allowed:
                shown = ", ".join(map(repr, allowed))
                raise UsageError(f"{key}: expected one of {shown}, got {shorten(str(value))}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> None:
    """Applies ``--config.a.b=value`` items in place; unknown keys and wrong types are errors."""
    for item in overrides:
        if not item.startswith("--config.") or "=" not in item:
            raise UsageError(f"bad override {item!r}: expected --config.KEY=VALUE")
        key, _, text = item[len("--config.") :].partition("=")
        *parents, leaf = key.split(".")
        node = config
        for i, part in enumerate(parents):
            if not isinstance(node, ml_collections.ConfigDict):
                where = ".".join(parents[:i])
                raise UsageError(f"config key {where!r} is not a group: cannot set {key!r}")
            if part not in node:
                raise UsageError(f"unknown config key {key!r}")
            node = node[part]
        if not isinstance(node, ml_collections.ConfigDict):
            where = ".".join(parents)
            raise UsageError(f"config key {where!r} is not a group: cannot set {key!r}")
        if leaf not in node:
            raise UsageError(f"unknown config key {key!r}")
        if isinstance(node[leaf], ml_collections.ConfigDict):
            raise UsageError(f"config key {key!r} is a group; set one of its fields")
        value = parse_value(text, node[leaf], name=f"--config.{key}")
        with node.unlocked():
            node[leaf] = value


def config_to_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(json.dumps(config.to_dict(), default=str))


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(prefix + k)
    return keys


def _check_workdir(workdir: pathlib.Path, resolved: dict):
    """Returns stored results if ``workdir`` already holds this finished run, else None."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"workdir {workdir} is not writable: {e.strerror or e}") from None
    config_file, results_file = workdir / "config.json", workdir / "results.json"
    if not config_file.exists():
        if results_file.exists():
            raise UsageError(f"workdir {workdir} holds results.json without config.json")
        return None
    try:
        stored = json.loads(config_file.read_text())["config"]
        if not isinstance(stored, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, OSError):
        raise UsageError(
            f"workdir {workdir} has an unreadable config.json (not a jaxlab run?); choose"
            " another --workdir"
        ) from None
    differs = _diff_keys(stored, resolved)
    if differs:
        finished = results_file.exists()
        started = (workdir / "ckpt").exists() or bool(metrics.read_metrics(workdir))
        if not finished and not started:  # a run that failed before training owns nothing
            return None
        if not finished and (workdir / FAILED).is_file():  # e.g. stopped by the NaN guard
            kept = _set_aside(workdir)
            print(f"jaxlab: note: moved the failed run in {workdir} to {kept}", file=sys.stderr)
            return None
        state = "finished" if finished else "unfinished"
        shown = ", ".join(differs[:5]) + (" ..." if len(differs) > 5 else "")
        raise UsageError(
            f"workdir {workdir} holds a {state} run of a different config (differs in {shown});"
            " rerun with its config to resume, or choose another --workdir"
        )
    if results_file.exists():
        try:
            results = json.loads(results_file.read_text())
            if not isinstance(results, dict):
                raise TypeError
        except (ValueError, TypeError, OSError):
            raise UsageError(
                f"workdir {workdir} has a damaged results.json; delete it to run again"
            ) from None
        return results
    return None


# Written by a run that stopped on an error (not an interrupt: that one resumes with its config).
FAILED = "failed.json"
RUN_FILES = ("config.json", "metrics.jsonl", "ckpt", FAILED)


def _set_aside(workdir: pathlib.Path) -> pathlib.Path:
    """Moves a failed run's files (:data:`RUN_FILES`) into ``workdir/failed-run-N``; returns it.

    A failed run does not own its workdir (issue 17 §3.6), but nothing it wrote is deleted.
    """
    n = 1
    while (workdir / f"failed-run-{n}").exists():
        n += 1
    kept = workdir / f"failed-run-{n}"
    kept.mkdir()
    for name in RUN_FILES:
        if (workdir / name).exists():
            (workdir / name).replace(kept / name)
    return kept


@contextlib.contextmanager
def _workdir_lock(workdir: pathlib.Path):
    """Holds an exclusive lock on ``workdir/.lock``: two runs never share one workdir."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        handle = open(workdir / ".lock", "a")  # noqa: SIM115 - closed below
    except OSError as e:
        raise UsageError(f"workdir {workdir} is not writable: {e.strerror or e}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(
                f"workdir {workdir} is in use by another run (wait for it, or choose another"
                " --workdir)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_experiment(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Runs ``RUNNERS[config.experiment]`` in ``workdir`` following the run protocol.

    A finished run of the same config is not repeated: its stored results are returned.
    An unfinished one is resumed (runners with checkpoints pick up ``workdir/ckpt``). The
    workdir is locked for the whole run (a concurrent run into it is refused).
    """
    workdir = pathlib.Path(workdir)
    with _workdir_lock(workdir):
        return _run_locked(config, workdir)


def _run_locked(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    resolved = config_to_json(config)
    stored = _check_workdir(workdir, resolved)
    if stored is not None:
        print(f"[{config.experiment}] {workdir} already holds this finished run", file=sys.stderr)
        return stored
    import jax

    if jax.process_index() != 0:  # multi-host: every process computes, only process 0 writes
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            return _runners()[config.experiment](config, pathlib.Path(scratch))
    info = {"config": resolved, "machine": metrics.machine_info()}
    info["started"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    (workdir / "config.json").write_text(json.dumps(info, indent=2))
    (workdir / FAILED).unlink(missing_ok=True)  # this config's run takes over (or resumes)
    start = time.perf_counter()
    try:
        results = _runners()[config.experiment](config, workdir)
    except Exception as e:  # not KeyboardInterrupt: an interrupted run resumes as it is
        with contextlib.suppress(OSError):  # a full disk may refuse this too
            error = f"{type(e).__name__}: {e}".splitlines()[0]
            (workdir / FAILED).write_text(json.dumps({"error": error}))
        raise
    results = metrics.to_jsonable(dict(results))
    results["wall_time_s"] = time.perf_counter() - start
    # The config's known disagreements travel with the results, so REPORT.md shows each reason.
    results["known_disagreements"] = [list(pair) for pair in config.known_disagreements]
    missing = [p for p in results.get("plots", []) if not (workdir / p).is_file()]
    if missing:
        raise RuntimeError(f"runner {config.experiment} listed plots it did not write: {missing}")
    if not (workdir / "metrics.jsonl").is_file():
        raise RuntimeError(f"runner {config.experiment} wrote no metrics.jsonl")
    tmp = workdir / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(workdir / "results.json")
    return results


REPRODUCE_MARK = ".made-by-jaxlab-reproduce"


def _claim_folder(workdir: pathlib.Path) -> bool:
    """Creates ``workdir`` with a marker file; True when reproduce made it (now or before)."""
    if not workdir.exists():
        workdir.mkdir(parents=True)
        (workdir / REPRODUCE_MARK).write_text("")
    return (workdir / REPRODUCE_MARK).is_file()


def reproduce(mode: str, only: list[str] | None, out: str | pathlib.Path) -> int:
    """Runs every registered experiment (``:quick``, ``:gpu`` or full); writes ``out/REPORT.md``.

    Returns the exit code: 0 when every experiment ran (claims may still disagree), 1 otherwise.
    """
    runners = _runners()
    if only is not None and not only:
        raise UsageError("--only: expected one or more experiment names (comma-separated)")
    names = list(runners) if only is None else only
    unknown = [n for n in names if n not in runners]
    if unknown:
        known = ", ".join(runners)
        raise UsageError(f"--only: unknown experiment(s) {', '.join(unknown)} (known: {known})")
    out = pathlib.Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out} is not writable: {e.strerror or e}") from None
    arg = {"quick": ":quick", "gpu": ":gpu"}.get(mode, "")  # gpu: jaxlab.gpu_tier
    configs = {name: load_config(f"{name}{arg}") for name in names}  # fail fast on bad configs
    sections, failed = [], []
    total_start = time.perf_counter()
    for i, name in enumerate(names):
        workdir = out / mode / name
        print(f"[reproduce] {i + 1}/{len(names)} {name} -> {workdir}", file=sys.stderr, flush=True)
        owned = _claim_folder(workdir)
        try:
            results = run_experiment(configs[name], workdir)
        except UsageError as e:
            if not owned:  # never delete what reproduce did not create
                raise UsageError(
                    f"{e}; reproduce did not create {workdir}, so it leaves it"
                ) from None
            shutil.rmtree(workdir)  # a stale run of an older config, made by reproduce
            _claim_folder(workdir)
            results = run_experiment(configs[name], workdir)
        except Exception as e:  # noqa: BLE001 - one failing experiment must not hide the rest
            traceback.print_exc()
            results = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
            failed.append(name)
        sections.append((name, _describe(name), results, workdir))
    machine = metrics.machine_info()
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")
    header = "\n".join(
        [
            f"# jaxlab reproduction report ({mode})",
            "",
            f"Generated {when} by `jaxlab reproduce --{mode}` in "
            f"{time.perf_counter() - total_start:.0f} s.",
            "Machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()) + ".",
            "",
            "Each section lists the claims checked against their source, the measured figure, "
            "the tolerance the experiment's config declares, and the verdict. *reported* means "
            "measured but not checked (e.g. a GPU-only figure). Disagreements are kept, not "
            "tuned away.",
        ]
    )
    try:
        path = report.write_report(out / "REPORT.md", sections, header)
    except OSError as e:
        raise UsageError(
            f"cannot write {out / 'REPORT.md'}: {e.strerror or e} (the runs are kept in {out})"
        ) from None
    print(f"[reproduce] wrote {path}", file=sys.stderr)
    if failed:
        print(f"[reproduce] FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
