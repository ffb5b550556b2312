"""Worker entry point: ``python -m imts.services.worker JOB_ID --attempt N [--rank R]``.

The executors launch this module (never ``imts.jobs.worker`` directly): it registers every job kind,
which the jobs package cannot import itself (only the kind of the job it runs), in ``imts.jobs.worker.main``.
"""

from __future__ import annotations

import sys

from imts.jobs.worker import main
from imts.services import kinds


def run(argv: list[str] | None = None) -> int:
    return main(argv, load_kind=kinds.load)


if __name__ == "__main__":
    sys.exit(run())
