"""Orbax checkpoints: the only module that imports orbax (STYLE 2.11).

A checkpoint holds one pytree ``{"state": <nnx state of (model, optimizer)>, "step": int32,
"key": uint32 key data}``. Restores go against an abstract state (shapes, dtypes, shardings), so a
resumed run gets arrays placed exactly as a fresh one. Uses the orbax-checkpoint V1 API, so its
move to top level in orbax 1.0 is a change to this file only.

Two guards make a resume trustworthy. Each checkpoint carries, in its custom metadata, the
identity of the run's config (``config_id``, e.g. a hash of the resolved config) and a
fingerprint of every saved array (two wrapping uint32 sums of the array's bits per leaf,
computed on device). A restore refuses a checkpoint of another config
(:class:`CheckpointMismatchError`), and a checkpoint whose data no longer match their fingerprint
(or that fails to load at all) is skipped with a warning in favour of the next older one.

A save is atomic from the caller's view: it blocks until orbax has committed the checkpoint (a
kill leaves at most a temporary directory, which a later run ignores), an interrupt (SIGINT)
that arrives meanwhile is held until the save returns, and a failed write (a full disk) is one
:class:`CheckpointWriteError` after orbax's background threads have been shut down.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pathlib
import re
import signal
import sys
import threading
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from orbax.checkpoint import v1 as ocp

from jaxlab.config_args import UsageError, WriteError


class CheckpointWriteError(WriteError):
    """A checkpoint could not be written (disk full, file size limit, I/O error).

    The CLI prints it on one line; the checkpoints saved before it stay valid, so the same
    command resumes from them once there is space.
    """


class CheckpointMismatchError(UsageError):
    """The checkpoints in a directory were written by a run of a different config.

    A usage error: the CLI prints it on one line and exits 2.
    """


@contextlib.contextmanager
def hold_interrupts():
    """Defers SIGINT for the duration of the block, then delivers it (KeyboardInterrupt).

    Only the main thread can own signal handlers; elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        if callable(previous):
            previous(signal.SIGINT, held[-1])
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


class _OrbaxErrorFilter(logging.Filter):
    """Quiets orbax's log records while :class:`Checkpoints` turns the failure into its own line.

    ``active``: a save is failing; its exception reaches :meth:`Checkpoints.save`, which raises
    one :class:`CheckpointWriteError`, so orbax's ERROR records with a traceback (one per
    background thread) are dropped. ``restoring``: a restore reports each damaged checkpoint in
    one warning of its own, so orbax's WARNING and ERROR records (and asyncio's about orbax's
    abandoned reads) are dropped.
    """

    active = 0
    restoring = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.restoring and record.levelno >= logging.WARNING:
            return False
        if record.name == "asyncio" and self.ABANDONED_READ in record.getMessage():
            return False  # "Task exception was never retrieved" for a read restore reported
        return not (self.active and record.exc_info and record.levelno >= logging.ERROR)

    # orbax's array read task; a load that fails on a damaged file leaves its siblings' errors
    # unretrieved, and asyncio logs each when the task is collected (possibly much later).
    ABANDONED_READ = "coro=<_read_array_index_and_device_put("


_ORBAX_ERRORS = _OrbaxErrorFilter()
logging.getLogger("absl").addFilter(_ORBAX_ERRORS)
logging.getLogger("asyncio").addFilter(_ORBAX_ERRORS)


# A failed orbax load returns while tensorstore still completes its other reads; their
# callbacks then find orbax's event loop closed and Python reports each ("Exception ignored
# ... Event loop is closed") at some later moment. For a while after a failed load (the
# restore has already reported it) those reports are dropped; any other passes through.
_ABANDONED_READS = {"until": 0.0}
_ABANDONED_READ_SECONDS = 120.0


def _from_abandoned_read(unraisable) -> bool:
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc):
        return True
    code = getattr(unraisable.object, "cr_code", None)
    return code is not None and code.co_name == "_read_array_index_and_device_put"


def _install_unraisable_filter() -> None:
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if time.monotonic() < _ABANDONED_READS["until"] and _from_abandoned_read(unraisable):
            return
        previous(unraisable)

    sys.unraisablehook = hook


_install_unraisable_filter()


def _abandon_reads() -> None:
    """Marks that a load just failed, and collects what it left behind."""
    _ABANDONED_READS["until"] = time.monotonic() + _ABANDONED_READ_SECONDS
    gc.collect()


def _first_line(e: BaseException) -> str:
    """The reason in one short line: the OS error's text (tensorstore wraps it) if there is one."""
    text = str(e).strip()
    os_error = re.search(r":\s*([^:\[]+?)\s*\[os_error_code", text)
    if os_error:
        return os_error.group(1)
    return text.splitlines()[0][:200] if text else type(e).__name__


def _leaf_bits(x: jax.Array) -> jax.Array:
    """The array's bits as a flat uint32 vector (16-bit types widened, 64-bit types split)."""
    x = jnp.ravel(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x).ravel()
    width = x.dtype.itemsize
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    if width == 4:
        return jax.lax.bitcast_convert_type(x, jnp.uint32)
    if width == 8:
        return jax.lax.bitcast_convert_type(x, jnp.uint32).ravel()
    if width == 2:
        return jax.lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32)
    return jax.lax.bitcast_convert_type(x, jnp.uint8).astype(jnp.uint32)


@jax.jit
def _fingerprint(tree) -> jax.Array:
    """``[num_leaves, 2]`` uint32: a plain and a position-weighted wrapping sum of each leaf's bits.

    Any single changed word changes the plain sum; the weighted sum also catches swapped words.
    """
    rows = []
    for leaf in jax.tree.leaves(tree):
        bits = _leaf_bits(leaf)
        weights = jnp.arange(bits.shape[0], dtype=jnp.uint32) * jnp.uint32(2654435761) + 1
        rows.append(jnp.stack([jnp.sum(bits, dtype=jnp.uint32), jnp.sum(bits * weights)]))
    return jnp.stack(rows) if rows else jnp.zeros((0, 2), jnp.uint32)


def fingerprint(tree) -> list[list[int]]:
    """Host copy of :func:`_fingerprint` (JSON-ready): one ``[sum, weighted sum]`` per leaf."""
    return np.asarray(jax.device_get(_fingerprint(tree))).astype(np.int64).tolist()


class Checkpoints:
    """Periodic save and automatic, verified resume under ``workdir/ckpt``.

    Args:
      directory: Where checkpoints live (created on first save).
      every: Save when ``step % every == 0`` (and always on ``force=True``).
      keep: Number of most recent checkpoints kept (older ones are the fallback when the newest
        is damaged, so keep at least 2).
      config_id: Identity of the run's config, stored with every checkpoint; :meth:`restore`
        refuses checkpoints with another id. None disables the check.
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        *,
        every: int,
        keep: int = 2,
        config_id: str | None = None,
    ):
        self.directory = pathlib.Path(directory).absolute()
        self.config_id = config_id
        # Fail at once (orbax's background threads would otherwise wait forever on a save).
        if self.directory.exists() and not self.directory.is_dir():
            raise UsageError(f"checkpoint directory {self.directory} exists and is not a directory")
        parent = self.directory if self.directory.exists() else self.directory.parent
        if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"checkpoint directory {parent} is not writable")
        policies = ocp.training.save_decision_policies
        _ORBAX_ERRORS.restoring += 1  # it reads every step's metadata: restore reports damage
        try:
            self._ckpt = ocp.training.Checkpointer(
                self.directory,
                save_decision_policy=policies.FixedIntervalPolicy(max(int(every), 1)),
                preservation_policy=ocp.training.preservation_policies.LatestN(keep),
            )
        finally:
            _ORBAX_ERRORS.restoring -= 1
        self._closed = False

    def latest_step(self) -> int | None:
        _ORBAX_ERRORS.restoring += 1  # a damaged newest checkpoint is reported by restore
        try:
            latest = self._ckpt.latest
        finally:
            _ORBAX_ERRORS.restoring -= 1
        return None if latest is None else int(latest.step)

    def should_save(self, step: int) -> bool:
        return bool(self._ckpt.should_save(step))

    def save(
        self, step: int, state, key: jax.Array, *, force: bool = False, metadata: dict | None = None
    ) -> bool:
        """Saves if the policy says so (or ``force``); ``metadata`` (JSON) is stored with it.

        Blocks until the checkpoint is committed; SIGINT is held meanwhile (see
        :func:`hold_interrupts`).

        Raises:
          CheckpointWriteError: the write failed (orbax is closed first, so no thread waits).
        """
        if not (force or self.should_save(step)):
            return False
        tree = {"state": state, "step": jnp.int32(step), "key": jax.random.key_data(key)}
        meta = {**(metadata or {}), "config_id": self.config_id, "fingerprint": fingerprint(tree)}
        with hold_interrupts():
            _ORBAX_ERRORS.active += 1
            try:
                return self._ckpt.save(step, tree, force=True, custom_metadata=meta)
            except Exception as e:  # noqa: BLE001  (orbax raises ValueError for an I/O error)
                try:
                    previous = max((int(c.step) for c in self._ckpt.checkpoints), default=None)
                except Exception:  # noqa: BLE001
                    previous = None
                self.close(quiet=True)
                resume = f"step {previous}" if previous is not None else "the start"
                raise CheckpointWriteError(
                    f"cannot write the checkpoint of step {step} in {self.directory}: "
                    f"{_first_line(e)} (free space, then rerun the same command: it resumes "
                    f"from {resume})"
                ) from None
            finally:
                _ORBAX_ERRORS.active -= 1

    def _custom_metadata(self, step: int) -> dict:
        """The custom metadata saved with ``step`` ({} if unreadable: the load then decides)."""
        try:
            return dict(self._ckpt.metadata(step).custom_metadata or {})
        except Exception:  # noqa: BLE001  (a damaged metadata file is handled by the load)
            return {}

    def metadata(self, step: int | None = None) -> dict:
        """The JSON ``metadata`` saved with ``step`` (default: the latest checkpoint)."""
        return dict(self._ckpt.metadata(step).custom_metadata or {})

    def restore(self, abstract_state, key: jax.Array):
        """Loads the newest intact checkpoint; returns ``(state, step, key)`` or None if none is.

        A checkpoint that fails to load or whose arrays differ from their saved fingerprint is
        removed with a ``UserWarning`` naming its step (a later save of that step would collide
        with it); the next older one is tried.

        Args:
          abstract_state: ``jax.ShapeDtypeStruct`` tree (with shardings) of the state.
          key: A key of the run's key type, used for the abstract key data.

        Raises:
          CheckpointMismatchError: a checkpoint was written by a run with another ``config_id``.
        """
        data = jax.random.key_data(key)
        leaves = jax.tree.leaves(abstract_state)
        where = getattr(leaves[0], "sharding", None) if leaves else None
        if where is not None:  # step and key go where the (replicated) state goes
            where = jax.sharding.NamedSharding(where.mesh, jax.sharding.PartitionSpec())
        abstract = {
            "state": abstract_state,
            "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=where),
            "key": jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=where),
        }
        steps = sorted((int(c.step) for c in self._ckpt.checkpoints), reverse=True)
        _ORBAX_ERRORS.restoring += 1
        try:
            return self._restore_newest(steps, abstract, key)
        finally:
            _ORBAX_ERRORS.restoring -= 1

    def _restore_newest(self, steps: list[int], abstract, key: jax.Array):
        for step in steps:
            meta = self._custom_metadata(step)
            saved_id = meta.get("config_id")
            if self.config_id is not None and saved_id is not None and saved_id != self.config_id:
                raise CheckpointMismatchError(
                    f"{self.directory} holds checkpoints of another config or training data "
                    f"({saved_id} != {self.config_id}); use a new --workdir or delete it"
                )
            reason = None
            try:
                tree = self._ckpt.load(step, abstract)
                expected = meta.get("fingerprint")
                if expected is None:
                    raise ValueError("its fingerprint metadata is missing or unreadable")
                if fingerprint(tree) != expected:
                    raise ValueError("its arrays do not match the fingerprint saved with them")
            except Exception as e:  # noqa: BLE001  (any load failure means: try an older one)
                _ABANDONED_READS["until"] = time.monotonic() + _ABANDONED_READ_SECONDS
                while e.__cause__ is not None or e.__context__ is not None:  # the root cause
                    e = e.__cause__ or e.__context__
                reason = f"{type(e).__name__}: {_first_line(e)[:160]}"
            if reason is not None:
                _abandon_reads()
                warnings.warn(
                    f"checkpoint at step {step} in {self.directory} is damaged ({reason}); "
                    "removed it and fell back to an older one",
                    stacklevel=3,
                )
                self._ckpt.delete(step)  # else a later save at this step would collide
                continue
            restored_key = jax.random.wrap_key_data(tree["key"], impl=jax.random.key_impl(key))
            return tree["state"], int(tree["step"]), restored_key
        return None

    def wait(self) -> None:
        """Kept for callers of the old API: :meth:`save` already blocks until committed."""

    def close(self, *, quiet: bool = False) -> None:
        """Shuts orbax's threads down; ``quiet`` swallows the error of a failed save again."""
        if self._closed:
            return
        self._closed = True
        with hold_interrupts():
            _ORBAX_ERRORS.active += quiet
            try:
                self._ckpt.close()
            except Exception:
                if not quiet:
                    raise
            finally:
                _ORBAX_ERRORS.active -= quiet
