"""Experiment runners: ``RUNNERS[name](config, workdir) -> results dict`` (see ``jaxlab.report``).

Each runner module's docstring opens with a one-line description, shown by ``jaxlab list``.
Its config lives in ``configs/<name>.py``. Add an experiment by writing both files and adding
one line here.
"""

import sys

from jaxlab.experiments import (
    ab_plus_c,
    attention_extrapolation,
    attention_scale,
    deer_convergence,
    deer_train,
    emo_finetune,
    lm_baseline,
    mad_gaussian,
    mad_learned,
    quanta_theory,
    rope_extrapolation,
    sparse_parity,
    tokenizer_sampling,
)

RUNNERS = {
    "ab_plus_c": ab_plus_c.run,
    "attention_extrapolation": attention_extrapolation.run,
    "attention_scale": attention_scale.run,
    "deer_convergence": deer_convergence.run,
    "deer_train": deer_train.run,
    "emo_finetune": emo_finetune.run,
    "lm_baseline": lm_baseline.run,
    "mad_gaussian": mad_gaussian.run,
    "mad_learned": mad_learned.run,
    "quanta_theory": quanta_theory.run,
    "rope_extrapolation": rope_extrapolation.run,
    "sparse_parity": sparse_parity.run,
    "tokenizer_sampling": tokenizer_sampling.run,
}


def describe(name: str) -> str:
    """The first docstring line of the runner module for ``name`` (shown by ``jaxlab list``)."""
    doc = sys.modules[RUNNERS[name].__module__].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
