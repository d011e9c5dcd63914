# ruff: noqa: F722  (jaxtyping shape strings are not forward annotations)
"""RoPE as a number system: base-β and mixed-radix digits of a position.

Su, kexue.fm/archives/9675.

Pair ``m`` of RoPE rotates by ``n/β^{m-1}`` with ``β = b^{2/d}``: the ``m``-th base-β digit of ``n``
before the floor and ``mod β``. NTK-fixed/mixed scalings read as mixed radices
(kexue.fm/archives/9706).
"""

import jax.numpy as jnp

from jaxlab.array_types import Array, ArrayLike, Float


def beta_digits(n: Float[ArrayLike, ""], beta: float | int, num_digits: int) -> Float[Array, " P"]:
    """Base-β digits of ``n``, lowest first: ``⌊n/β^{m-1}⌋ mod β`` for ``m = 1..num_digits``.

    RoPE's pair ``m`` uses ``cos/sin(n/β^{m-1})`` with ``β = b^{2/d}``: the same quotient with the
    floor dropped and ``mod β`` replaced by a periodic map (Su 9675).
    """
    powers = jnp.asarray(beta, jnp.float32) ** jnp.arange(num_digits, dtype=jnp.float32)
    return jnp.mod(jnp.floor(jnp.asarray(n, jnp.float32) / powers), beta)


def mixed_radix_digits(n: Float[ArrayLike, ""], radices: Float[Array, " P"]) -> Float[Array, " P"]:
    """Mixed-radix digits ``⌊n/(β_1⋯β_{m-1})⌋ mod β_m`` (seconds, minutes, hours; Su 9706).

    NTK-fixed/mixed read as radices ``β_m = β·λ_m``; with ``λ_m = 1`` this is ``beta_digits``.
    """
    radices = jnp.asarray(radices, jnp.float32)
    place = jnp.concatenate([jnp.ones(1, jnp.float32), jnp.cumprod(radices)[:-1]])
    return jnp.mod(jnp.floor(jnp.asarray(n, jnp.float32) / place), radices)
