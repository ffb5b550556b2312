"""The audit log's one writer and its verifier: append-only, hash-chained, in the change's transaction.

Every service function that changes something calls ``record`` with the session it changes things in,
so the entry commits or rolls back with the change::

    with ctx.session() as s:
        ...change rows...
        audit.record(ctx, s, "dataset.delete", ("dataset", ds.id), before={"name": ds.name})

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's canonical JSON (sorted
keys, no spaces); ``audit_head`` holds the newest (seq, hash) and is locked by each writer, so
concurrent changes append one after the other instead of forking the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imts.store.context import Context
from imts.store.models import AuditEntry, AuditHead

GENESIS = "0" * 64
HASHED = ("seq", "at", "actor", "tenant_id", "tenant", "project", "action", "object_type", "object_id",
          "before", "after", "client")  # fmt: skip


class AuditEntryView(BaseModel):
    """One recorded change."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    seq: int
    at: str
    actor: str
    tenant_id: str | None
    tenant: str | None
    project: str | None
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    client: str | None
    prev_hash: str
    hash: str


class AuditVerdict(BaseModel):
    """What ``verify`` found: ``ok`` with the entry count, or the first broken entry and why."""

    ok: bool
    entries: int
    head_seq: int
    broken_seq: int | None = None
    problem: str | None = None


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 of the previous hash and the entry's canonical JSON."""
    canonical = json.dumps(
        {k: fields[k] for k in HASHED}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def record(
    ctx: Context,
    s: Session,
    action: str,
    obj: tuple[str, str],
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntryView:
    """Append one entry for a change made in session ``s`` (the change's own transaction).

    Args:
        ctx: who acts, where, from which client address.
        s: the session the change is made in; the entry commits or rolls back with it.
        action: dotted verb, e.g. ``user.create``, ``key.revoke``, ``dataset.delete``.
        obj: (object type, object id or name).
        before, after: small JSON summaries of the object (never secrets or password hashes).
    """
    # Taking the head row's write lock first orders concurrent writers (PostgreSQL: row lock; SQLite:
    # the database write lock), and the head read afterwards is the newest committed one.
    s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = s.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "actor": ctx.principal,
        "tenant_id": ctx.tenant_id or None,
        "tenant": ctx.tenant or None,
        "project": ctx.project or None,
        "action": action,
        "object_type": obj[0],
        "object_id": obj[1],
        "before": _plain(before),
        "after": _plain(after),
        "client": ctx.client,
    }
    digest = entry_hash(head.hash, fields)
    entry = AuditEntry(**fields, prev_hash=head.hash, hash=digest)
    s.add(entry)
    head.seq, head.hash = fields["seq"], digest
    s.flush()
    return AuditEntryView.model_validate(entry)


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    # What the JSON column gives back is what gets hashed: round-trip once (dates become strings).
    return None if value is None else json.loads(json.dumps(value, default=str, ensure_ascii=False))


def verify_entries(entries: Iterable[AuditEntry], head_seq: int, head_hash: str) -> AuditVerdict:
    """Walk the chain in sequence order: contiguous numbers, each entry's ``prev_hash`` the previous
    entry's hash, each hash recomputed, and the last entry the recorded head."""
    prev_hash, expected, count = GENESIS, 1, 0
    for e in entries:
        fields = {k: getattr(e, k) for k in HASHED}
        if e.seq != expected:
            return AuditVerdict(
                ok=False, entries=count, head_seq=head_seq, broken_seq=expected,
                problem=f"entry {expected} is missing (next is {e.seq})",
            )  # fmt: skip
        if e.prev_hash != prev_hash:
            return AuditVerdict(
                ok=False, entries=count, head_seq=head_seq, broken_seq=e.seq,
                problem=f"entry {e.seq} does not follow entry {e.seq - 1} (previous hash differs)",
            )  # fmt: skip
        if entry_hash(prev_hash, fields) != e.hash:
            return AuditVerdict(
                ok=False, entries=count, head_seq=head_seq, broken_seq=e.seq,
                problem=f"entry {e.seq} was modified (its hash does not match its content)",
            )  # fmt: skip
        prev_hash, expected, count = e.hash, expected + 1, count + 1
    if count != head_seq or prev_hash != head_hash:
        return AuditVerdict(
            ok=False, entries=count, head_seq=head_seq, broken_seq=count + 1,
            problem=f"the log ends at entry {count} but {head_seq} were written (entries deleted)",
        )  # fmt: skip
    return AuditVerdict(ok=True, entries=count, head_seq=head_seq)
