"""File modes of what IMTS writes: every file readable like its siblings.

Some writers (safetensors, ``tempfile.mkstemp``) create files ``0600`` whatever the umask says, so a
model's weights or a report could not be read by the group that reads the rest of its folder.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_lock = threading.Lock()


def file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give a new file under this process's umask."""
    with _lock:  # reading the umask means setting it: no other thread may see the change
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def share_like_siblings(path: Path) -> None:
    """Give ``path`` (a file, or every file under a folder) the mode a plain write would have."""
    mode = file_mode()
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        if f.stat().st_mode & 0o777 != mode:
            os.chmod(f, mode)
