"""Recurrent cells as pure step functions ``cell(h_prev, x_t, params) -> h_t`` (unbatched).

Each cell has a NamedTuple of parameters and an ``init_*`` function. All cells fit
:func:`jaxlab.deer.deer` and :func:`jaxlab.deer.sequential`. The LSTM's state is the
concatenation [h, c] (size 2D) so that it is one vector, as DEER needs.

References: Cho et al. (2014) (GRU); Hochreiter & Schmidhuber (1997) (LSTM); Danieli et al.
(2025), "ParaRNN", arXiv:2510.21450 (diagonal-recurrence cells whose Jacobian is diagonal).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlab.array_types import Array, Float


class TanhRNNParams(NamedTuple):
    """h_t = tanh(W h_{t-1} + U x_t + b)."""

    W: Float[Array, "D D"]
    U: Float[Array, "D M"]
    b: Float[Array, " D"]


class GRUParams(NamedTuple):
    """Stacked gates in the order (update z, reset r, candidate)."""

    W: Float[Array, "3 D M"]
    U: Float[Array, "3 D D"]
    b: Float[Array, "3 D"]


class DiagGRUParams(NamedTuple):
    """Like :class:`GRUParams` but with diagonal recurrent weights, so df/dh is diagonal."""

    W: Float[Array, "3 D M"]
    u: Float[Array, "3 D"]
    b: Float[Array, "3 D"]


class LSTMParams(NamedTuple):
    """Stacked gates in the order (input i, forget f, output o, candidate g)."""

    W: Float[Array, "4 D M"]
    U: Float[Array, "4 D D"]
    b: Float[Array, "4 D"]


def tanh_rnn(
    h: Float[Array, " D"], x: Float[Array, " M"], params: TanhRNNParams
) -> Float[Array, " D"]:
    """h_t = tanh(W h_{t-1} + U x_t + b)."""
    return jnp.tanh(params.W @ h + params.U @ x + params.b)


def gru(h: Float[Array, " D"], x: Float[Array, " M"], params: GRUParams) -> Float[Array, " D"]:
    """GRU step: z, r = sigmoid(W x + U h + b); c = tanh(W_c x + U_c (r * h) + b_c);
    h_t = (1 - z) h + z c."""
    wx = params.W @ x + params.b
    z = jax.nn.sigmoid(wx[0] + params.U[0] @ h)
    r = jax.nn.sigmoid(wx[1] + params.U[1] @ h)
    c = jnp.tanh(wx[2] + params.U[2] @ (r * h))
    return (1.0 - z) * h + z * c


def diag_gru(
    h: Float[Array, " D"], x: Float[Array, " M"], params: DiagGRUParams
) -> Float[Array, " D"]:
    """GRU with elementwise recurrent weights (ParaGRU-like): its Jacobian df/dh is diagonal,
    so ``method=Block(1)`` is exact Newton."""
    wx = params.W @ x + params.b
    z = jax.nn.sigmoid(wx[0] + params.u[0] * h)
    r = jax.nn.sigmoid(wx[1] + params.u[1] * h)
    c = jnp.tanh(wx[2] + params.u[2] * (r * h))
    return (1.0 - z) * h + z * c


def lstm(
    state: Float[Array, " S"], x: Float[Array, " M"], params: LSTMParams
) -> Float[Array, " S"]:
    """LSTM step on the state [h, c]: i, f, o = sigmoid(.), g = tanh(.); c_t = f c + i g,
    h_t = o tanh(c_t); returns [h_t, c_t]."""
    d = params.b.shape[1]
    h, c = state[:d], state[d:]
    pre = params.W @ x + params.U @ h + params.b
    i, f, o = jax.nn.sigmoid(pre[0]), jax.nn.sigmoid(pre[1]), jax.nn.sigmoid(pre[2])
    g = jnp.tanh(pre[3])
    c = f * c + i * g
    return jnp.concatenate([o * jnp.tanh(c), c])


def _normal(key, shape, std, dtype):
    return (std * jax.random.normal(key, shape)).astype(dtype)


def init_tanh_rnn(
    hidden: int, inputs: int, *, scale: float = 1.0, dtype=jnp.float32, key: Array
) -> TanhRNNParams:
    """W ~ N(0, scale^2 / D) (spectral radius about ``scale``), U ~ N(0, 1/M), b = 0."""
    k1, k2 = jax.random.split(key)
    return TanhRNNParams(
        W=_normal(k1, (hidden, hidden), scale / hidden**0.5, dtype),
        U=_normal(k2, (hidden, inputs), 1.0 / inputs**0.5, dtype),
        b=jnp.zeros((hidden,), dtype),
    )


def init_gru(
    hidden: int, inputs: int, *, scale: float = 1.0, dtype=jnp.float32, key: Array
) -> GRUParams:
    """Recurrent weights N(0, scale^2 / D), input weights N(0, 1/M), zero biases."""
    k1, k2 = jax.random.split(key)
    return GRUParams(
        W=_normal(k1, (3, hidden, inputs), 1.0 / inputs**0.5, dtype),
        U=_normal(k2, (3, hidden, hidden), scale / hidden**0.5, dtype),
        b=jnp.zeros((3, hidden), dtype),
    )


def init_diag_gru(
    hidden: int, inputs: int, *, scale: float = 1.0, dtype=jnp.float32, key: Array
) -> DiagGRUParams:
    """Diagonal recurrent weights N(0, scale^2), input weights N(0, 1/M), zero biases."""
    k1, k2 = jax.random.split(key)
    return DiagGRUParams(
        W=_normal(k1, (3, hidden, inputs), 1.0 / inputs**0.5, dtype),
        u=_normal(k2, (3, hidden), scale, dtype),
        b=jnp.zeros((3, hidden), dtype),
    )


def init_lstm(
    hidden: int, inputs: int, *, scale: float = 1.0, dtype=jnp.float32, key: Array
) -> LSTMParams:
    """Recurrent weights N(0, scale^2 / D), input weights N(0, 1/M), forget bias 1."""
    k1, k2 = jax.random.split(key)
    return LSTMParams(
        W=_normal(k1, (4, hidden, inputs), 1.0 / inputs**0.5, dtype),
        U=_normal(k2, (4, hidden, hidden), scale / hidden**0.5, dtype),
        b=jnp.zeros((4, hidden), dtype).at[1].set(1.0),
    )


CELLS = {
    "tanh": (tanh_rnn, init_tanh_rnn),
    "gru": (gru, init_gru),
    "diag_gru": (diag_gru, init_diag_gru),
    "lstm": (lstm, init_lstm),
}


def state_size(cell: str, hidden: int) -> int:
    """Length of the state vector: 2 * hidden for the LSTM ([h, c]), else hidden."""
    return 2 * hidden if cell == "lstm" else hidden
