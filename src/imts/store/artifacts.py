"""Artifact storage: the bytes behind datasets, checkpoints, models and reports.

One interface (``ArtifactStore``); the local-folder implementation is the embedded default. Writers
never write into a final location directly: they fill a staging folder and ``commit`` it, which is a
rename on the same filesystem, so a killed process leaves no half-written artifact behind (stale
staging folders of dead processes are swept by the start-up recovery, ``services.startup``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from imts.core.ids import new_id


def shard_key(digest: str) -> str:
    """Key of a dataset shard, content-addressed by its SHA-256 (``datasets/shards/ab/ab….parquet``)."""
    return f"datasets/shards/{digest[:2]}/{digest}.parquet"


class ArtifactStore(Protocol):
    def path(self, key: str) -> Path:
        """Local path of the artifact ``key`` (a relative, slash-separated name)."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` has been committed."""

    def staging(self) -> Iterator[Path]:
        """Context manager: a fresh private folder, removed on exit unless its content was committed."""

    def commit(self, staged: Path, key: str, *, content_addressed: bool = False) -> Path:
        """Move ``staged`` (file or folder) to ``key`` atomically.

        Args:
            staged: a path inside a staging folder.
            key: destination key.
            content_addressed: the key names the content, so an existing artifact is kept and
                ``staged`` discarded; otherwise an existing key is an error.

        Returns:
            The committed path.
        """

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""

    def dead_pending(self, manifest: str) -> list[tuple[Path, list[str]]]:
        """Staging folders of dead processes holding the manifest file ``manifest``, with its keys."""

    def delete_staging(self, folder: Path) -> None:
        """Remove a staging folder returned by ``dead_pending``."""


class LocalArtifactStore:
    """Artifacts under one local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".staging"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if key.startswith("/") or ".." in Path(key).parts:
            raise ValueError(f"artifact key must be relative and stay inside the store: {key!r}")
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    @contextmanager
    def staging(self) -> Iterator[Path]:
        folder = self._tmp / f"{os.getpid()}-{new_id('stg')}"
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staged: Path, key: str, *, content_addressed: bool = False) -> Path:
        dest = self.path(key)
        if dest.exists():
            if content_addressed:
                return dest
            raise FileExistsError(f"artifact already exists: {key}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)
        return dest

    def delete(self, key: str) -> None:
        p = self.path(key)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()

    def sweep(self) -> int:
        """Remove staging folders left by processes that no longer run. Returns how many.

        Folders holding a pending-commit manifest (a ``*.json`` list of keys the dead process was
        moving into the store) are kept for ``dead_pending``: deciding which of those keys are orphans
        needs the metadata database, which this store does not know.
        """
        removed = 0
        for entry in self._dead():
            if not any(entry.glob("pending-*.json")):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    def dead_pending(self, manifest: str) -> list[tuple[Path, list[str]]]:
        """(folder, keys) of dead processes' staging folders that hold the manifest ``manifest``."""
        out = []
        for entry in self._dead():
            f = entry / manifest
            if f.is_file():
                try:
                    keys = json.loads(f.read_text())
                except ValueError:  # killed while writing the manifest: nothing was moved yet
                    keys = []
                out.append((entry, [str(k) for k in keys]))
        return out

    def delete_staging(self, folder: Path) -> None:
        if folder.parent == self._tmp:
            shutil.rmtree(folder, ignore_errors=True)

    def _dead(self) -> list[Path]:
        out = []
        for entry in self._tmp.iterdir():
            pid_text = entry.name.split("-", 1)[0]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                out.append(entry)
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
