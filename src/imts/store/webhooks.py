"""The webhook outbox: an event becomes one pending delivery per subscribed webhook of its tenant.

``emit`` is what any layer calls to announce an event; the server's delivery worker
(``services/webhooks.py``) signs and POSTs the deliveries, retrying with backoff. The flywheel loop
announces each iteration with::

    from imts.store.webhooks import emit
    emit(ctx, "loop.iteration", f"{loop_id}:{iteration}", {"loop": loop_id, "iteration": n, ...})

Finished and failed jobs and training watchdog events need no call: the worker finds them in the
database (``services/webhooks.py``), so they are announced even when they happen in a worker process or
while no server runs.
"""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from imts.core.ids import new_id
from imts.store.context import Context
from imts.store.models import Webhook, WebhookDelivery, utcnow

EVENTS: dict[str, str] = {
    "job.finished": "a job ended without failing (succeeded or cancelled)",
    "job.failed": "a job failed (after its retries)",
    "watchdog": "a training run's watchdog intervened (rollback, skipped update, or gave up)",
    "loop.iteration": "an iteration of the improvement loop ended",
}


def enqueue(
    s: Session, tenant_id: str, event: str, key: str, payload: dict[str, Any], happened_at: float = 0.0
) -> int:
    """Add a pending delivery of ``event`` to each of the tenant's webhooks subscribed to it, in the
    caller's transaction; an event already enqueued for a webhook (same ``key``) is skipped.

    Args:
        happened_at: the event's Unix time (0: now); a webhook created after it is not sent it.

    Returns:
        how many deliveries were added.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event '{event}' (known: {', '.join(EVENTS)})")
    hooks = s.scalars(select(Webhook).where(Webhook.tenant_id == tenant_id)).all()
    have = set(
        s.scalars(
            select(WebhookDelivery.webhook_id).where(
                WebhookDelivery.event_key == key, WebhookDelivery.webhook_id.in_([h.id for h in hooks])
            )
        )
    )
    added = 0
    for h in hooks:
        if event not in h.events or h.id in have:
            continue
        created = h.created_at if h.created_at.tzinfo else h.created_at.replace(tzinfo=UTC)  # SQLite
        if happened_at and created.timestamp() > happened_at:
            continue
        s.add(
            WebhookDelivery(
                id=new_id("whd"),
                webhook_id=h.id,
                event=event,
                event_key=key,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_ts=time.time(),
                claimed_until=0.0,
                created_at=utcnow(),
            )
        )
        added += 1
    return added


def emit(ctx: Context, event: str, key: str, data: dict[str, Any]) -> int:
    """Announce ``event`` in the context's tenant (and project); returns how many deliveries were
    queued. ``key`` identifies the event: emitting the same key twice delivers once."""
    payload = {
        "event": event,
        "tenant": ctx.tenant,
        "project": ctx.project or None,
        "at": utcnow().isoformat(),
        "data": data,
    }
    with ctx.session() as s:
        return enqueue(s, ctx.tenant_id, event, key, payload)
