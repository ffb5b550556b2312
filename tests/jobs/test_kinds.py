"""The worker loads only its job's kind: ``services.kinds.MODULES`` must name every kind's module."""

from __future__ import annotations

import subprocess
import sys

from imts.jobs import registry
from imts.services import kinds


def test_every_registered_kind_is_mapped_to_the_module_that_registers_it() -> None:
    kinds.load()
    found = {name: registry.get(name).run.__module__ for name in registry.names()}
    assert found == kinds.MODULES


def test_a_worker_imports_its_kind_only() -> None:
    """In a fresh interpreter, loading the sleep kind registers it without importing the others' modules
    (a worker of a sleep job starts without the analysis, training and evaluation stacks)."""
    code = (
        "import sys\n"
        "from imts.services import kinds\n"
        "from imts.jobs import registry\n"
        "kinds.load('sleep')\n"
        "others = [m in sys.modules for m in ('imts.analysis.jobs', 'imts.train.jobs')]\n"
        "print(sorted(registry.names()), *others)\n"
        "kinds.load('no-such-kind')\n"  # unknown: every kind, so the worker's error lists them all
        "print(len(registry.names()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    first, second = out.splitlines()
    assert first == "['sleep'] False False"
    assert int(second) == len(kinds.MODULES)
