"""The tokenizer's DP rows as a data-parallel population on 4 simulated CPU devices (STYLE 2.8):
sharded results equal unsharded ones, the output sharding is the declared one."""

import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from numerics import tol

from jaxlab import sharding
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import from_pieces


def _assert_on_data(x, mesh, spec):
    assert isinstance(x.sharding, NamedSharding)
    assert x.sharding.spec == spec
    assert len(x.sharding.device_set) == mesh.size == 4


def test_tokenizer_rows_sharded_equal_unsharded(key):
    vocab = {"a": -2.0, "b": -2.5, "c": -2.0, "ab": -3.0, "bc": -3.5, "abc": -4.0, "ca": -3.0}
    model = from_pieces(vocab)
    mesh = sharding.data_mesh()
    plain, sharded = (
        Tokenizer(model, target_row_len=16),
        Tokenizer(model, target_row_len=16, mesh=mesh),
    )
    texts = ["abcab", "cabcabca", "", "bca", "abcabcabcabc", "c"] * 3
    batch = sharded.prepare(texts)
    assert batch.ids.shape[2] % 4 == 0  # rows (last axis) padded to the mesh
    out = sharded._device(batch, "viterbi", 0.0, None)
    _assert_on_data(out, mesh, P(None, "data"))
    assert sharded.encode(texts) == plain.encode(texts)
    for method in ("ffbs", "v1"):
        got = sharded.encode(texts, alpha=0.5, key=key, method=method)
        assert got == plain.encode(texts, alpha=0.5, key=key, method=method)
    np.testing.assert_allclose(
        sharded.log_partition(texts), plain.log_partition(texts), **tol("float32")
    )
    with pytest.raises(ValueError, match="rows 3 is not divisible by the 4 devices"):
        sharding.shard_population(np.zeros((3, 16)), mesh, what="rows")
