"""Liveness: whether the server and its database answer."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text

from imts import __version__
from imts.api.deps import WorkspaceDep, public

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/health", response_model=Health, dependencies=[Depends(public)])
def health(ws: WorkspaceDep) -> Health:
    """Whether the server and its database answer (no credentials needed)."""
    with ws.session() as s:
        s.execute(text("SELECT 1"))
        dialect = s.get_bind().dialect.name
    return Health(status="ok", version=__version__, database=dialect)
