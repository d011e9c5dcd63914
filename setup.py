"""Build script for the optional C extension; the project metadata lives in pyproject.toml.

``pip install .`` (and ``pip install -e .``) compiles ``jaxlab/tokenizer/_native.c``, the
tokenizer's host kernels, into ``jaxlab.tokenizer._native``. The extension is optional: if it
cannot be built (no C compiler, e.g. ``CC=/bin/false``) the install still succeeds and
``jaxlab.tokenizer`` uses its NumPy host path (``jaxlab tokenizer --version`` says which).
"""

import hashlib
import pathlib

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = "jaxlab/tokenizer/_native.c"


class BuildExt(build_ext):
    """Adds optimisation flags for gcc/clang (no -march=native: wheels must run anywhere)."""

    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                ext.extra_compile_args = ["-O3", "-std=c11", *ext.extra_compile_args]
        super().build_extensions()


def _source_hash() -> str:
    # native.py compares this with the hash of the installed source: a stale build is not used.
    text = (pathlib.Path(__file__).parent / SOURCE).read_bytes()
    return hashlib.sha256(text).hexdigest()[:16]


setup(
    ext_modules=[
        Extension(
            "jaxlab.tokenizer._native",
            [SOURCE],
            define_macros=[("JAXLAB_SOURCE_HASH", f'"{_source_hash()}"')],
            libraries=["m"],  # expf/logf of the host DP
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
