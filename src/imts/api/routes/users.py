"""Users of the installation (platform administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, SecretStr

from imts.api.deps import platform_ctx
from imts.services import identity
from imts.services.identity import UserView
from imts.store.context import Context

router = APIRouter(prefix="/users", tags=["users"])
PlatformCtx = Annotated[Context, Depends(platform_ctx)]


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: SecretStr = Field(min_length=1, max_length=1000)
    platform_admin: bool = False


@router.get("", response_model=list[UserView])
def list_users(ctx: PlatformCtx) -> list[UserView]:
    """Every user."""
    return identity.list_users(ctx)


@router.post("", response_model=UserView, status_code=201)
def create_user(body: UserCreate, ctx: PlatformCtx) -> UserView:
    """Create a user (give it a tenant role under /tenants/{tenant}/members)."""
    return identity.create_user(ctx, body.username, body.password.get_secret_value(), body.platform_admin)


@router.post("/{username}/disable", response_model=UserView)
def disable_user(username: str, ctx: PlatformCtx) -> UserView:
    """Disable a user: its sessions end and its keys stop working."""
    return identity.disable_user(ctx, username)
