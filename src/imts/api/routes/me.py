"""The caller itself."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from imts.api.deps import CurrentUser, WorkspaceDep, user_ctx
from imts.services import identity
from imts.services.identity import MeView, UserView
from imts.store.context import Context

router = APIRouter(tags=["me"])


@router.get("/me", response_model=MeView)
def me(who: CurrentUser, ws: WorkspaceDep) -> MeView:
    """The signed-in user, its tenants and roles (within its key's scope), and the key it used."""
    return identity.me(ws, who)


class Preferences(BaseModel):
    lang: Literal["en", "zh"] = Field(..., description="The console's language.")


@router.put("/me/preferences", response_model=UserView)
def set_preferences(body: Preferences, ctx: Annotated[Context, Depends(user_ctx)]) -> UserView:
    """Remember the caller's preferences (the console's language)."""
    return identity.set_lang(ctx, body.lang)
