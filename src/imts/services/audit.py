"""Reading the audit log: query, export as JSON lines, verify the chain. Writing is ``store/audit.record``,
called by each changing service function in its own transaction; there is no update or delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select

from imts.core.errors import PermissionDeniedError
from imts.core.permissions import Permission
from imts.store.audit import AuditEntryView, AuditVerdict, record, verify_entries
from imts.store.context import Context
from imts.store.models import AuditEntry, AuditHead

__all__ = ["AuditEntryView", "AuditVerdict", "export_jsonl", "query", "record", "verify"]
PAGE = 500


def _scope(ctx: Context) -> str | None:
    """The tenant id whose entries the context may read; None: all (platform administrators only)."""
    if ctx.tenant_id:
        ctx.require(Permission.AUDIT_VIEW)
        return ctx.tenant_id
    if not ctx.platform_admin:
        raise PermissionDeniedError("only a platform administrator may read the whole audit log")
    return None


def query(
    ctx: Context,
    since: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEntryView]:
    """Entries in sequence order: the context's tenant's (a tenant context), or all of them (a platform
    context), filtered by time, actor and action (``action`` ending in ``.*``: a prefix)."""
    tenant_id = _scope(ctx)
    q = select(AuditEntry).where(AuditEntry.seq > after_seq).order_by(AuditEntry.seq).limit(limit)
    if tenant_id:
        q = q.where(AuditEntry.tenant_id == tenant_id)
    if since is not None:
        q = q.where(AuditEntry.at >= since.isoformat(timespec="microseconds"))
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where(
            AuditEntry.action.startswith(action[:-1]) if action.endswith("*") else AuditEntry.action == action
        )
    with ctx.session() as s:
        return [AuditEntryView.model_validate(e) for e in s.scalars(q)]


def export_jsonl(
    ctx: Context, since: datetime | None = None, actor: str | None = None, action: str | None = None
) -> Iterator[str]:
    """Every matching entry as one JSON line, read page by page (no whole log in memory)."""
    after = 0
    while page := query(ctx, since, actor, action, after_seq=after, limit=PAGE):
        for e in page:
            yield json.dumps(e.model_dump(), ensure_ascii=False) + "\n"
        after = page[-1].seq


def verify(ctx: Context) -> AuditVerdict:
    """Check the whole chain (platform administrators): a modified, inserted or deleted entry breaks it."""
    if not ctx.platform_admin:
        raise PermissionDeniedError("only a platform administrator may verify the audit log")
    with ctx.session() as s:
        head = s.get(AuditHead, 1)
        assert head is not None  # written by the migration
        entries = s.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=PAGE))
        return verify_entries(entries.scalars(), head.seq, head.hash)
