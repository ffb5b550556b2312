"""The workspace: settings + metadata database + artifact store — the infrastructure every call shares.

Built once per process (``Workspace.open``): it creates no rows and scans nothing. Crash recovery is
an explicit start-up step (``imts.services.startup``), and who acts in which tenant and project is a
per-call ``Context`` (``imts.store.context``), not part of the workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

from sqlalchemy.orm import Session

from imts.core.settings import Settings, get_settings
from imts.store.artifacts import LocalArtifactStore
from imts.store.db import session_factory


@dataclass(eq=False)
class Workspace:
    """Where IMTS keeps its state: the metadata database (migrated on first use) and the artifacts."""

    settings: Settings = field(default_factory=get_settings)
    _open: ClassVar[dict[tuple[str, str], Workspace]] = {}

    def __post_init__(self) -> None:
        self.settings.workspace.mkdir(parents=True, exist_ok=True)
        self.artifacts = LocalArtifactStore(self.settings.artifacts_dir)
        self._sessions = session_factory(self.settings.db_url)
        # (tenant name, project name) -> (tenant id, project id): contexts are cheap after the first
        self.ids: dict[tuple[str, str], tuple[str, str]] = {}

    @classmethod
    def open(cls, settings: Settings | None = None) -> Workspace:
        """The process's workspace for these settings' database and folder, built on first use."""
        settings = settings or get_settings()
        key = (settings.db_url, str(settings.workspace))
        if key not in cls._open:
            cls._open[key] = cls(settings)
        return cls._open[key]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back on an exception."""
        with self._sessions() as s, s.begin():
            yield s
