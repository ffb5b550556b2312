"""A tenant's members and their roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from imts.api.deps import tenant_ctx
from imts.core.permissions import Permission, Role
from imts.services import identity
from imts.services.identity import MemberView
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/members", tags=["members"])
Manage = Annotated[Context, Depends(tenant_ctx(Permission.USERS_MANAGE))]


class RoleBody(BaseModel):
    role: Role


@router.get("", response_model=list[MemberView])
def list_members(ctx: Annotated[Context, Depends(tenant_ctx(Permission.PROJECT_VIEW))]) -> list[MemberView]:
    """The tenant's members and their roles."""
    return identity.list_members(ctx)


@router.put("/{username}", response_model=MemberView)
def set_member(username: str, body: RoleBody, ctx: Manage) -> MemberView:
    """Add a user to the tenant with a role, or change its role."""
    return identity.add_member(ctx, username, body.role)


@router.delete("/{username}", response_model=MemberView)
def remove_member(username: str, ctx: Manage) -> MemberView:
    """Remove a user from the tenant (effective on its next request)."""
    return identity.remove_member(ctx, username)
