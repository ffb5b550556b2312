"""The workspace: settings + metadata database + artifact store, handed to every service function."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from imts.core.ids import new_id
from imts.core.settings import Settings, get_settings
from imts.store.artifacts import LocalArtifactStore
from imts.store.db import session_factory
from imts.store.models import Project


@dataclass
class Workspace:
    """Where IMTS keeps its state. Cheap to create; the database is migrated on first use."""

    settings: Settings = field(default_factory=get_settings)

    def __post_init__(self) -> None:
        self.settings.workspace.mkdir(parents=True, exist_ok=True)
        self.artifacts = LocalArtifactStore(self.settings.artifacts_dir)
        self._sessions = session_factory(self.settings.db_url)
        self._project_id: str | None = None
        if self.artifacts.dead_pending("pending-shards.json"):
            from imts.data.versions import sweep_orphans  # data depends on store, not the reverse

            sweep_orphans(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back on an exception."""
        with self._sessions() as s, s.begin():
            yield s

    @property
    def project_id(self) -> str:
        """Id of the current project (``settings.project``), created on first use."""
        if self._project_id is None:
            name = self.settings.project
            with self.session() as s:
                project = s.scalar(select(Project).where(Project.name == name))
                if project is None:
                    project = Project(id=new_id("prj"), name=name)
                    s.add(project)
                    s.flush()
                self._project_id = project.id
        return self._project_id
