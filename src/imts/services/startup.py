"""Process start-up: the workspace built once, crash recovery run once, job kinds registered, and a
context per call."""

from __future__ import annotations

from imts.core.permissions import Role
from imts.core.settings import Settings, get_settings
from imts.store.context import Context, open_context
from imts.store.workspace import Workspace

_recovered: set[int] = set()


def start(settings: Settings | None = None, recover: bool = True) -> Workspace:
    """The process's workspace, with crash recovery done once (idempotent: later calls cost nothing).

    Recovery deletes dataset shards that a killed import moved into the store but never committed.
    """
    from imts.services import kinds

    kinds.load()
    ws = Workspace.open(settings or get_settings())
    if recover and id(ws) not in _recovered:
        recover_workspace(ws)
        _recovered.add(id(ws))
    return ws


def recover_workspace(ws: Workspace) -> None:
    """Undo what killed processes left half-done: their staging folders, dataset shards they moved
    into the store but never committed, and runs they left ``running`` (marked ``interrupted``)."""
    from imts.data.versions import sweep_orphans
    from imts.store.runs import sweep_abandoned

    ws.artifacts.sweep()
    sweep_orphans(ws)
    sweep_abandoned(ws)


def local_context(settings: Settings | None = None, role: Role = "admin") -> Context:
    """The context of this machine's user: the tenant and project named by the settings."""
    settings = settings or get_settings()
    # The machine's user holds the database itself: it administers the installation.
    return open_context(
        start(settings), settings.tenant, settings.project, "local", role, platform_admin=True
    )
