"""Unigram tokenization (SentencePiece-compatible): Viterbi, exact sampling, n-best, training.

Modules, by concept:

* ``model``: :class:`UnigramModel` (pieces, float32 scores, piece types, whitespace flags),
  SentencePiece's identity normaliser vectorised over a batch of lines, and its decoding.
* ``charsmap``: SentencePiece's rule-based normalisers (``nmt_nfkc``, ``nfkc_cf``, custom) read
  from a model's ``precompiled_charsmap``.
* ``spm``: read/write SentencePiece unigram ``.model`` files (hand-written protobuf reader).
* ``lattice``: host-side lattice construction (reversed-piece trie, exact lookups), NumPy.
* ``native``: the same host work (layout, trie walk, read-back) as small C kernels
  (``_native.c``, built at install time as an optional extension, called through ctypes);
  identical results, the lattice search about 5x faster. ``native.host_path()`` (and
  ``jaxlab tokenizer --version``) says whether they or NumPy are in use.
* ``native_dp``: the whole DP on the host in C (Viterbi and exact FFBS per line, the id lists
  built in C, parallel spans); same ids and uniforms as the JAX DP; the default DP path.
* ``decoding``: the JAX dynamic programs: Viterbi, log Z, entropy, FFBS / eager / one-pass
  exact samplers, Su's biased v1 sampler, n-best.
* ``encoder``: :class:`Tokenizer`, the batched host API (``encode``, ``tokenize``, ``decode``,
  ``log_partition``, ``entropy``, ``nbest``).
* ``reference``: pure-Python references (enumeration, reservoir, v1, 4e92759) for tests.
* ``training``: unigram EM with pruning.
* ``corpus``: the stdlib train/test split used by the benchmark and experiment.
* ``evaluation``: sampler exactness checks, SentencePiece parity, throughput, trainer comparison.
* ``cli``: ``jaxlab tokenizer train|encode|sample``.

Example::

    tok = Tokenizer(spm.from_sentencepiece("sp.model"))
    ids = tok.encode(["def f(x):"])                                   # = sp.encode
    sample = tok.encode(["def f(x):"], alpha=0.1, key=jax.random.key(0))  # alpha=None: Viterbi
"""

from jaxlab.tokenizer import spm
from jaxlab.tokenizer.encoder import Tokenizer
from jaxlab.tokenizer.model import UnigramModel, from_pieces

__all__ = ["Tokenizer", "UnigramModel", "from_pieces", "spm"]
