"""Test configuration: 4 simulated CPU devices, strict promotion, a per-test key (STYLE 2.9).

Flags are set at import, before any JAX backend starts.
"""

import os
import zlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
# 4 simulated devices share 2 cores with a second pytest worker: XLA's default 40 s collective
# rendezvous timeout can abort the process under load, so give collectives 10 minutes.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_collective_timeout_seconds=600"
    + " --xla_cpu_collective_call_terminate_timeout_seconds=600"
).strip()

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
