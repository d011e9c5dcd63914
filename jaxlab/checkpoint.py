"""Orbax checkpoints: the only module that imports orbax (STYLE 2.11).

A checkpoint holds one pytree ``{"state": <nnx state of (model, optimizer)>, "step": int32,
"key": uint32 key data}``. Restores go against an abstract state (shapes, dtypes, shardings), so a
resumed run gets arrays placed exactly as a fresh one. Uses the orbax-checkpoint V1 API, so its
move to top level in orbax 1.0 is a change to this file only.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
from orbax.checkpoint import v1 as ocp


class Checkpoints:
    """Periodic save and automatic resume under ``workdir/ckpt``.

    Args:
      directory: Where checkpoints live (created on first save).
      every: Save when ``step % every == 0`` (and always on ``force=True``).
      keep: Number of most recent checkpoints kept.
    """

    def __init__(self, directory: str | pathlib.Path, *, every: int, keep: int = 2):
        self.directory = pathlib.Path(directory).absolute()
        policies = ocp.training.save_decision_policies
        self._ckpt = ocp.training.Checkpointer(
            self.directory,
            save_decision_policy=policies.FixedIntervalPolicy(max(int(every), 1)),
            preservation_policy=ocp.training.preservation_policies.LatestN(keep),
        )

    def latest_step(self) -> int | None:
        latest = self._ckpt.latest
        return None if latest is None else int(latest.step)

    def save(
        self, step: int, state, key: jax.Array, *, force: bool = False, metadata: dict | None = None
    ) -> bool:
        """Saves if the policy says so; ``metadata`` (JSON) is stored with the checkpoint."""
        tree = {"state": state, "step": jnp.int32(step), "key": jax.random.key_data(key)}
        saved = self._ckpt.save(step, tree, force=force, custom_metadata=metadata)
        return saved

    def metadata(self, step: int | None = None) -> dict:
        """The JSON ``metadata`` saved with ``step`` (default: the latest checkpoint)."""
        return dict(self._ckpt.metadata(step).custom_metadata or {})

    def restore(self, abstract_state, key: jax.Array):
        """Loads the latest checkpoint; returns ``(state, step, key)``.

        Args:
          abstract_state: ``jax.ShapeDtypeStruct`` tree (with shardings) of the state.
          key: A key of the run's key type, used for the abstract key data.
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
        tree = self._ckpt.load(None, abstract)
        restored_key = jax.random.wrap_key_data(tree["key"], impl=jax.random.key_impl(key))
        return tree["state"], int(tree["step"]), restored_key

    def wait(self) -> None:
        self._ckpt.wait()

    def close(self) -> None:
        self._ckpt.close()
