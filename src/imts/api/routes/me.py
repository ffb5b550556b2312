"""The caller itself."""

from __future__ import annotations

from fastapi import APIRouter

from imts.api.deps import CurrentUser, WorkspaceDep
from imts.services import identity
from imts.services.identity import MeView

router = APIRouter(tags=["me"])


@router.get("/me", response_model=MeView)
def me(who: CurrentUser, ws: WorkspaceDep) -> MeView:
    """The signed-in user, its tenants and roles (within its key's scope), and the key it used."""
    return identity.me(ws, who)
