"""Every job kind, registered: importing the module of each kind's owner fills ``jobs.registry``.

The jobs package imports no domain package, so whoever submits, checks, schedules or runs jobs calls
``load()`` first (``services.startup.start`` does; so does the worker entry point).
"""

from __future__ import annotations


def load() -> None:
    """Register every job kind (idempotent; each module registers once, on import)."""
    import imts.analysis.jobs
    import imts.data.jobs
    import imts.evals.jobs
    import imts.flywheel.jobs
    import imts.jobs.sleep
    import imts.optimise.jobs
    import imts.train.jobs  # noqa: F401
