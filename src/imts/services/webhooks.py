"""Webhooks: a tenant's administrators register URLs; events are POSTed there, signed, with retries.

Each delivery is a JSON body ``{"id", "event", "tenant", "project", "at", "data"}`` with the headers
``X-IMTS-Event``, ``X-IMTS-Delivery`` and ``X-IMTS-Signature: t=<unix time>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 of ``"<t>." + body`` under the webhook's secret (``verify_signature`` checks one). A
receiver answering anything but 2xx, or not answering within ``webhook_timeout_s``, is retried after
``webhook_backoff_s`` seconds, doubling each time, ``webhook_max_attempts`` times at most; every attempt
is recorded.

The delivery worker (``DeliveryWorker``, started by the API server) also finds the events that need
no call: jobs that finished or failed and training watchdog interventions, by scanning the database
past a persisted cursor, so an event is announced even if it happened while no server ran.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from imts.core.errors import InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.permissions import Permission
from imts.store import audit
from imts.store.context import Context
from imts.store.models import (
    JobRecord,
    Project,
    Run,
    RunEvent,
    Tenant,
    Webhook,
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
    utcnow,
)
from imts.store.webhooks import EVENTS, enqueue
from imts.store.workspace import Workspace

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-IMTS-Signature"
TEST_EVENT = "webhook.test"
LOOKBACK_S = 120.0  # rows committed late with an earlier timestamp are still seen (deduplicated by key)
MAX_BACKOFF_S = 3600.0


class WebhookView(BaseModel):
    """A webhook as listed (its secret is never shown again)."""

    id: str
    tenant: str
    url: str
    events: list[str]
    description: str
    created_by: str
    created_at: datetime


class CreatedWebhook(WebhookView):
    """A webhook just added: ``secret`` signs its deliveries and is shown this once."""

    secret: str


class AttemptView(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryView(BaseModel):
    """One event's delivery to one webhook, with its attempts."""

    id: str
    webhook_id: str
    event: str
    status: str
    attempts: list[AttemptView]
    created_at: datetime
    delivered_at: datetime | None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-IMTS-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, tolerance_s: float = 300.0) -> bool:
    """What a receiver checks: the signature matches and its timestamp is recent (no replays)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), header)


def _view(h: Webhook, tenant: str) -> WebhookView:
    return WebhookView(
        id=h.id,
        tenant=tenant,
        url=h.url,
        events=list(h.events),
        description=h.description,
        created_by=h.created_by,
        created_at=h.created_at,
    )


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InputError(f"'{url}' is not a URL ({exc})", field="url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(f"'{url}' is not an http(s) URL", field="url")
    return str(parsed)


def add(ctx: Context, url: str, events: list[str], description: str = "") -> CreatedWebhook:
    """Register a webhook in the context's tenant for ``events`` (all of them when empty)."""
    ctx.require(Permission.RESOURCES_MANAGE)
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise InputError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}", field="events")
    chosen = sorted(set(events)) if events else list(EVENTS)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with ctx.session() as s:
        h = Webhook(
            id=new_id("whk"),
            tenant_id=ctx.tenant_id,
            url=_check_url(url),
            secret=secret,
            events=chosen,
            description=description,
            created_by=ctx.principal,
            created_at=utcnow(),
        )
        s.add(h)
        s.flush()
        view = _view(h, ctx.tenant)
        audit.record(ctx, s, "webhook.add", ("webhook", h.id), None, {"url": h.url, "events": chosen})
    return CreatedWebhook(**view.model_dump(), secret=secret)


def list_webhooks(ctx: Context) -> list[WebhookView]:
    """The tenant's webhooks."""
    ctx.require(Permission.RESOURCES_MANAGE)
    with ctx.session() as s:
        q = select(Webhook).where(Webhook.tenant_id == ctx.tenant_id).order_by(Webhook.created_at)
        return [_view(h, ctx.tenant) for h in s.scalars(q)]


def _hook(ctx: Context, s: Any, webhook_id: str) -> Webhook:
    h = s.get(Webhook, webhook_id)
    if h is None or h.tenant_id != ctx.tenant_id:
        raise NotFoundError(f"no webhook '{webhook_id}' in tenant '{ctx.tenant}'")
    return h  # type: ignore[no-any-return]


def remove(ctx: Context, webhook_id: str) -> WebhookView:
    """Remove a webhook and its pending deliveries."""
    ctx.require(Permission.RESOURCES_MANAGE)
    with ctx.session() as s:
        h = _hook(ctx, s, webhook_id)
        view = _view(h, ctx.tenant)
        s.delete(h)
        s.flush()
        audit.record(ctx, s, "webhook.remove", ("webhook", h.id), {"url": h.url, "events": view.events}, None)
    return view


def deliveries(ctx: Context, webhook_id: str, limit: int = 50) -> list[DeliveryView]:
    """A webhook's newest deliveries and their attempts."""
    ctx.require(Permission.RESOURCES_MANAGE)
    with ctx.session() as s:
        _hook(ctx, s, webhook_id)
        rows = s.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.created_at.desc())
            .limit(limit)
        ).all()
        return [_delivery_view(s, d) for d in rows]


def _delivery_view(s: Any, d: WebhookDelivery) -> DeliveryView:
    tries = s.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == d.id).order_by(WebhookAttempt.id)
    )
    return DeliveryView(
        id=d.id,
        webhook_id=d.webhook_id,
        event=d.event,
        status=d.status,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
        attempts=[
            AttemptView(at=a.ts, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms)
            for a in tries
        ],
    )


def test(ctx: Context, webhook_id: str) -> DeliveryView:
    """Send a ``webhook.test`` event now (once, no retries) and return how it went."""
    ctx.require(Permission.RESOURCES_MANAGE)
    delivery_id = new_id("whd")
    with ctx.session() as s:
        _hook(ctx, s, webhook_id)
        d = WebhookDelivery(
            id=delivery_id,
            webhook_id=webhook_id,
            event=TEST_EVENT,
            event_key=f"test:{new_id('t')}",
            status="pending",
            attempts=0,
            payload={
                "event": TEST_EVENT,
                "tenant": ctx.tenant,
                "project": None,
                "at": utcnow().isoformat(),
                "data": {"by": ctx.principal},
            },
            next_attempt_ts=time.time(),
            claimed_until=time.time() + 3600,
            created_at=utcnow(),
        )
        s.add(d)
    _deliver(ctx.ws, delivery_id, max_attempts=1)
    with ctx.session() as s:
        return _delivery_view(s, s.get(WebhookDelivery, delivery_id))


# --- the worker: find events, deliver what is due ---


def _cursor(s: Any, name: str, default: float) -> float:
    row = s.get(WebhookCursor, name)
    return row.value if row is not None else default


def _set_cursor(s: Any, name: str, value: float) -> None:
    row = s.get(WebhookCursor, name)
    if row is None:
        s.add(WebhookCursor(name=name, value=value))
    elif value > row.value:
        row.value = value


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def scan(ws: Workspace) -> int:
    """Enqueue deliveries for jobs that ended and watchdog events since the cursors; returns how many."""
    with ws.session() as s:
        first = s.scalars(select(Webhook.created_at).order_by(Webhook.created_at).limit(1)).first()
    if first is None:
        return 0
    since_default = _aware(first).timestamp()
    added = 0
    try:
        with ws.session() as s:
            added += _scan_jobs(s, _cursor(s, "jobs", since_default) - LOOKBACK_S)
            added += _scan_watchdog(s, _cursor(s, "watchdog", since_default) - LOOKBACK_S)
    except IntegrityError:  # another server enqueued the same event at the same moment: next pass
        return 0
    return added


def _scan_jobs(s: Any, since: float) -> int:
    rows = s.execute(
        select(JobRecord, Project.name, Tenant.id, Tenant.name)
        .join(Project, Project.id == JobRecord.project_id)
        .join(Tenant, Tenant.id == Project.tenant_id)
        .where(JobRecord.state.in_(("succeeded", "failed", "cancelled")), JobRecord.finished_ts >= since)
        .order_by(JobRecord.finished_ts)
    ).all()
    added, newest = 0, since
    for job, project, tenant_id, tenant in rows:
        event = "job.failed" if job.state == "failed" else "job.finished"
        data = {
            "job_id": job.id,
            "kind": job.kind,
            "name": job.name,
            "state": job.state,
            "owner": job.owner,
            "error": job.error,
            "submitted_ts": job.submitted_ts,
            "finished_ts": job.finished_ts,
        }
        payload = {
            "event": event,
            "tenant": tenant,
            "project": project,
            "at": datetime.fromtimestamp(job.finished_ts, UTC).isoformat(),
            "data": data,
        }
        added += enqueue(s, tenant_id, event, f"job:{job.id}:{job.finished_ts}", payload, job.finished_ts)
        newest = max(newest, job.finished_ts)
    _set_cursor(s, "jobs", newest)
    return added


def _scan_watchdog(s: Any, since: float) -> int:
    rows = s.execute(
        select(RunEvent, Run.id, Project.name, Tenant.id, Tenant.name)
        .join(Run, Run.id == RunEvent.run_id)
        .join(Project, Project.id == Run.project_id)
        .join(Tenant, Tenant.id == Project.tenant_id)
        .where(RunEvent.kind == "watchdog", RunEvent.ts >= datetime.fromtimestamp(since, UTC))
        .order_by(RunEvent.id)
    ).all()
    added, newest = 0, since
    for ev, run_id, project, tenant_id, tenant in rows:
        at = _aware(ev.ts).timestamp()
        data = {"run_id": run_id, "step": ev.step, "message": ev.message, **(ev.data or {})}
        payload = {
            "event": "watchdog",
            "tenant": tenant,
            "project": project,
            "at": _aware(ev.ts).isoformat(),
            "data": data,
        }
        added += enqueue(s, tenant_id, "watchdog", f"watchdog:{ev.id}", payload, at)
        newest = max(newest, at)
    _set_cursor(s, "watchdog", newest)
    return added


def deliver_due(ws: Workspace, limit: int = 50) -> int:
    """Try every pending delivery whose time has come; returns how many were tried."""
    now = time.time()
    with ws.session() as s:
        due = s.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_ts <= now,
                WebhookDelivery.claimed_until < now,
            )
            .order_by(WebhookDelivery.next_attempt_ts)
            .limit(limit)
        ).all()
    tried = 0
    for delivery_id in due:
        # Claim it (compare-and-set): two servers never send the same attempt.
        hold = now + ws.settings.webhook_timeout_s + 30
        with ws.session() as s:
            claimed = s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.claimed_until < now,
                    WebhookDelivery.status == "pending",
                )
                .values(claimed_until=hold)
            ).rowcount
        if claimed:
            _deliver(ws, delivery_id, ws.settings.webhook_max_attempts)
            tried += 1
    return tried


def _deliver(ws: Workspace, delivery_id: str, max_attempts: int) -> None:
    with ws.session() as s:
        d = s.get(WebhookDelivery, delivery_id)
        h = None if d is None else s.get(Webhook, d.webhook_id)
        if d is None or h is None:
            return
        url, secret, event = h.url, h.secret, d.event
        body = json.dumps({"id": d.id, **d.payload}, ensure_ascii=False, separators=(",", ":")).encode()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "imts-webhooks",
        "X-IMTS-Event": event,
        "X-IMTS-Delivery": delivery_id,
        SIGNATURE_HEADER: sign(secret, ts, body),
    }
    code: int | None = None
    error: str | None = None
    start = time.perf_counter()
    try:
        r = httpx.post(url, content=body, headers=headers, timeout=ws.settings.webhook_timeout_s)
        code = r.status_code
        if not r.is_success:
            error = f"HTTP {code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    took = (time.perf_counter() - start) * 1000
    with ws.session() as s:
        d = s.get(WebhookDelivery, delivery_id)
        if d is None:  # the webhook was removed meanwhile
            return
        d.attempts += 1
        s.add(WebhookAttempt(delivery_id=d.id, ts=utcnow(), status_code=code, error=error, duration_ms=took))
        if error is None:
            d.status, d.delivered_at = "delivered", utcnow()
        elif d.attempts >= max_attempts:
            d.status = "failed"
        else:
            wait = min(ws.settings.webhook_backoff_s * 2 ** (d.attempts - 1), MAX_BACKOFF_S)
            d.next_attempt_ts = time.time() + wait
        d.claimed_until = 0.0
    if error is not None:
        log.warning("webhook delivery %s (%s) attempt failed: %s", delivery_id, event, error)


class DeliveryWorker:
    """A background thread of the server: every ``webhook_poll_s`` it scans for events and delivers
    what is due. ``stop()`` ends it after the current pass."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imts-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                scan(self.ws)
                deliver_due(self.ws)
            except Exception:  # a database hiccup must not end the worker; it tries again next pass
                log.exception("webhook worker pass failed")
            self._stop.wait(self.ws.settings.webhook_poll_s)
