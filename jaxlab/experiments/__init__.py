"""Experiment runners: ``RUNNERS[name](config, workdir) -> results dict`` (see ``jaxlab.report``).

Each runner module's docstring opens with a one-line description, shown by ``jaxlab list``.
Its config lives in ``configs/<name>.py``. Add an experiment by writing both files and adding
one line here.
"""

import sys

from jaxlab.experiments import lm_baseline

RUNNERS = {
    "lm_baseline": lm_baseline.run,
}


def describe(name: str) -> str:
    """The first docstring line of the runner module for ``name`` (shown by ``jaxlab list``)."""
    doc = sys.modules[RUNNERS[name].__module__].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
