"""Identifiers: short, sortable by creation time, prefixed by the kind of thing they name."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    """A new id such as ``run_0192f3a1b2c4_7f3a9c``: millisecond timestamp (hex) plus randomness."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(3)}"
