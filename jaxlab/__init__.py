"""jaxlab: a JAX functional research codebase for eight 2023 ideas from kexue.fm.

Pure numerics live in noun-named modules (``scan``, ``deer``, ``rope``, ``quanta``, ...);
NNX modules (``attention``, ``models``) call them; ``experiments`` holds one runner per
experiment; ``main`` is the ``jaxlab`` command.
"""

__version__ = "0.1.0"
