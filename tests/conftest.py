"""Test configuration: 4 simulated CPU devices, strict promotion, a per-test key (STYLE 2.9).

Flags are set at import, before any JAX backend starts.
"""

import os
import zlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")
# Relax locally where a third-party library objects:
#   with jax.numpy_dtype_promotion("standard"): ...
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key(request):
    """A deterministic key, different for every test."""
    return jax.random.key(zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF)


def pytest_collection_modifyitems(config, items):
    if jax.default_backend() != "cpu":
        return
    skip = pytest.mark.skip(reason="device test: needs a GPU/TPU backend, this run is CPU-only")
    for item in items:
        if "device" in item.keywords:
            item.add_marker(skip)
