"""Every job kind, registered: importing the module of each kind's owner fills ``jobs.registry``.

The jobs package imports no domain package, so whoever submits, checks, schedules or runs jobs calls
``load()`` first (``services.startup.start`` does). A worker runs one job: it loads only that job's kind
(``load(kind)``), since importing every kind's module costs each worker start ~1.2 s of CPU, which a
busy embedded server pays once per job.
"""

from __future__ import annotations

import importlib

# The module that registers each kind (``tests/jobs/test_kinds.py``: every registered kind is here, with
# the module that registers it).
MODULES = {
    "analyze": "imts.analysis.jobs",
    "split": "imts.data.jobs",
    "eval": "imts.evals.jobs",
    "loop_feedback": "imts.flywheel.jobs",
    "sleep": "imts.jobs.sleep",
    "data_fix": "imts.optimise.jobs",
    "train": "imts.train.jobs",
}


def load(kind: str | None = None) -> None:
    """Register every job kind, or only ``kind`` when it is known (idempotent: a module registers once,
    on import)."""
    modules = [MODULES[kind]] if kind in MODULES else sorted(set(MODULES.values()))
    for module in modules:
        importlib.import_module(module)


def worker_modules() -> list[str]:
    """What a job worker imports, whatever its kind: the worker's entry module and every kind's module
    (the server's worker launcher imports them once, ``jobs/launcher.py``)."""
    from imts.jobs.executors import WORKER_MODULE

    return [WORKER_MODULE, *sorted(set(MODULES.values()))]
