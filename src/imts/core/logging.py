"""Logging set-up: one call at process start. Secrets are never passed to loggers."""

from __future__ import annotations

import logging


def configure(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Third-party chatter that says nothing a user needs.
    for noisy in ("transformers", "urllib3", "filelock", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
