"""Shape-annotated array aliases and the shape-letter table (STYLE 2.6).

Letters used in jaxtyping strings and in local tensor suffixes (``q_BLHK``):

  B batch, T recurrence steps, L sequence length, H heads, K head dim,
  D width/state, V vocab, N population/samples, G generations.
"""

from jax import Array
from jax.typing import ArrayLike
from jaxtyping import Bool, Float, Int, Integer, PRNGKeyArray, Shaped

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "Float",
    "Int",
    "Integer",
    "PRNGKeyArray",
    "Shaped",
    "Scalar",
]

Scalar = Float[Array, ""]
