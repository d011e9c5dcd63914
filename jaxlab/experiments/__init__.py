"""Experiment runners: ``RUNNERS[name](config, workdir) -> results dict`` (see ``jaxlab.report``).

Each runner module's docstring opens with a one-line description, shown by ``jaxlab list``.
Its config lives in ``configs/<name>.py``. Add an experiment by writing both files and adding
one line here.
"""

from jaxlab.experiments import lm_baseline

RUNNERS = {
    "lm_baseline": lm_baseline.run,
}


def describe(name: str) -> str:
    """The first docstring line of the runner module for ``name``."""
    doc = RUNNERS[name].__module__
    import sys

    module = sys.modules[doc]
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
