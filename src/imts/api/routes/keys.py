"""The caller's API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from imts.api.deps import CurrentUser, user_ctx
from imts.core.permissions import Role
from imts.services import identity
from imts.services.identity import CreatedKey, KeyView
from imts.store.context import Context

router = APIRouter(prefix="/keys", tags=["keys"])
UserCtx = Annotated[Context, Depends(user_ctx)]


class KeyCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    tenant: str | None = None
    project: str | None = None
    role_ceiling: Role | None = None
    expires_days: float | None = Field(default=90, gt=0, le=3650)


@router.get("", response_model=list[KeyView])
def list_keys(ctx: UserCtx) -> list[KeyView]:
    """The caller's keys (prefixes only; secrets are never shown again)."""
    return identity.list_keys(ctx)


@router.post("", response_model=CreatedKey, status_code=201)
def create_key(body: KeyCreate, ctx: UserCtx, who: CurrentUser) -> CreatedKey:
    """Create a key for the caller; the response holds its secret, shown this once."""
    return identity.create_key(
        ctx, body.name, body.tenant, body.project, body.role_ceiling, body.expires_days, within=who
    )


@router.delete("/{key_id}", response_model=KeyView)
def revoke_key(key_id: str, ctx: UserCtx) -> KeyView:
    """Revoke one of the caller's keys; refused from the next request on."""
    return identity.revoke_key(ctx, key_id)
