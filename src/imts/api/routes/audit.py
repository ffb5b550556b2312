"""The audit log: query, export as JSON lines, verify the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from imts.api.deps import platform_ctx, tenant_ctx
from imts.core.permissions import Permission
from imts.services import audit
from imts.services.audit import AuditEntryView, AuditVerdict
from imts.store.context import Context

router = APIRouter(tags=["audit"])
PlatformCtx = Annotated[Context, Depends(platform_ctx)]
TenantAudit = Annotated[Context, Depends(tenant_ctx(Permission.AUDIT_VIEW))]
Since = Annotated[datetime | None, Query(description="entries at or after this time (ISO 8601)")]
Actor = Annotated[str | None, Query(description="who acted")]
Action = Annotated[str | None, Query(description="e.g. key.create, or key.* for a prefix")]
AfterSeq = Annotated[int, Query(ge=0, description="entries after this sequence number (paging)")]
Limit = Annotated[int, Query(ge=1, le=1000)]
JSONL = {200: {"content": {"application/x-ndjson": {}}, "description": "one entry per line"}}


@router.get("/audit", response_model=list[AuditEntryView])
def query_all(
    ctx: PlatformCtx, since: Since = None, actor: Actor = None, action: Action = None,
    after_seq: AfterSeq = 0, limit: Limit = 100,
) -> list[AuditEntryView]:  # fmt: skip
    """Entries of the whole installation (platform administrators)."""
    return audit.query(ctx, since, actor, action, after_seq, limit)


@router.get("/audit/export", response_class=StreamingResponse, responses=JSONL)
def export_all(
    ctx: PlatformCtx, since: Since = None, actor: Actor = None, action: Action = None
) -> StreamingResponse:
    """Every entry of the installation as JSON lines."""
    return StreamingResponse(audit.export_jsonl(ctx, since, actor, action), media_type="application/x-ndjson")


@router.get("/audit/verify", response_model=AuditVerdict)
def verify(ctx: PlatformCtx) -> AuditVerdict:
    """Check the hash chain: a modified or deleted entry is reported."""
    return audit.verify(ctx)


@router.get("/tenants/{tenant}/audit", response_model=list[AuditEntryView])
def query_tenant(
    ctx: TenantAudit, since: Since = None, actor: Actor = None, action: Action = None,
    after_seq: AfterSeq = 0, limit: Limit = 100,
) -> list[AuditEntryView]:  # fmt: skip
    """The tenant's entries."""
    return audit.query(ctx, since, actor, action, after_seq, limit)


@router.get("/tenants/{tenant}/audit/export", response_class=StreamingResponse, responses=JSONL)
def export_tenant(
    ctx: TenantAudit, since: Since = None, actor: Actor = None, action: Action = None
) -> StreamingResponse:
    """The tenant's entries as JSON lines."""
    return StreamingResponse(audit.export_jsonl(ctx, since, actor, action), media_type="application/x-ndjson")
