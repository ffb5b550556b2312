"""Every job kind, registered: importing the module of each kind's owner fills ``jobs.registry``.

The jobs package imports no domain package, so whoever submits, checks, schedules or runs jobs calls
``load()`` first (``services.startup.start`` does). A worker runs one job: it loads only that job's kind
(``load(kind)``), since importing every kind's module costs each worker start ~1.2 s of CPU, which a
busy embedded server pays once per job.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imts.core.settings import Settings
    from imts.jobs.launcher import Launcher

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


def start_launcher(settings: Settings) -> Launcher | None:
    """This long-lived process's worker launcher (``imts server``, ``imts scheduler``), unless the
    settings turn it off (``IMTS_WORKER_LAUNCHER=0``); ``jobs.launcher.stop()`` ends it."""
    from imts.jobs import launcher

    return launcher.start(worker_modules()) if settings.worker_launcher else None
