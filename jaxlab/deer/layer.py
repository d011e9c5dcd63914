"""NNX ``ParallelRNN``: a recurrent layer evaluated by DEER (or ``lax.scan``), batch-first.

The cell is one of the pure step functions of :mod:`jaxlab.deer.cells`; its parameters are NNX
``Param``s; ``__call__`` vmaps :func:`jaxlab.deer.deer` over the batch, so gradients come from
the implicit-differentiation rule (one reverse scan), not from unrolled sweeps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlab.array_types import Array, Float
from jaxlab.deer import cells, methods, solver


@dataclasses.dataclass(frozen=True)
class ParallelRNNConfig:
    """Configuration of :class:`ParallelRNN`.

    Attributes:
      cell: ``"tanh"``, ``"gru"``, ``"diag_gru"`` or ``"lstm"``.
      in_features: M, input width.
      hidden: D, hidden width (the LSTM state is [h, c], 2D, of which h is returned).
      mode: A :data:`jaxlab.deer.METHODS` name (mapped by
        :func:`jaxlab.deer.method_from_name`); ``"sequential"`` is the lax.scan baseline.
      scale: Spectral scale of the recurrent weights at init.
      atol: Solver tolerance (None: dtype default).
      rtol: Solver tolerance (None: dtype default).
      scan_method: ``"associative"`` or ``"sequential"`` linear solves inside DEER.
      block_size: For ``mode="block"``.
    """

    cell: str = "gru"
    in_features: int = 1
    hidden: int = 8
    mode: str = "newton"
    scale: float = 1.0
    atol: float | None = None
    rtol: float | None = None
    scan_method: str = "associative"
    block_size: int | None = None


class ParallelRNN(nnx.Module):
    """A recurrent layer h_t = cell(h_{t-1}, x_t) evaluated in parallel over time.

    Examples:
      >>> from flax import nnx
      >>> layer = ParallelRNN(ParallelRNNConfig(in_features=2, hidden=3), rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((4, 10, 2))).shape
      (4, 10, 3)

    References: Lim et al. (2024), arXiv:2309.12252.
    """

    def __init__(self, config: ParallelRNNConfig, *, rngs: nnx.Rngs):
        self.config = config
        init = cells.CELLS[config.cell][1]
        params = init(config.hidden, config.in_features, scale=config.scale, key=rngs.params())
        self._fields = params._fields
        self._param_type = type(params)
        for name, value in zip(params._fields, params, strict=True):
            setattr(self, f"cell_{name}", nnx.Param(value))

    def cell_params(self):
        """The cell's parameter NamedTuple (plain arrays)."""
        return self._param_type(*(getattr(self, f"cell_{f}")[...] for f in self._fields))

    def __call__(self, x_BTM: Float[Array, "B T M"]) -> Float[Array, "B T D"]:
        c = self.config
        step = cells.CELLS[c.cell][0]
        params = self.cell_params()
        size = cells.state_size(c.cell, c.hidden)
        y0 = jnp.zeros((size,), x_BTM.dtype)

        def one(x_TM):
            method = methods.method_from_name(c.mode, block_size=c.block_size, scan=c.scan_method)
            return solver.deer(
                step, y0, x_TM, params, method=method, atol=c.atol, rtol=c.rtol
            ).value

        h_BTS = jax.vmap(one)(x_BTM)
        return h_BTS[..., : c.hidden]
