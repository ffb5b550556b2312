"""A tenant's webhooks (its administrators): add, list, remove, send a test event, see deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from imts.api.deps import tenant_ctx
from imts.core.permissions import Permission
from imts.services import webhooks
from imts.services.webhooks import CreatedWebhook, DeliveryView, WebhookView
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/webhooks", tags=["webhooks"])
Manage = Annotated[Context, Depends(tenant_ctx(Permission.RESOURCES_MANAGE))]


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL the events are POSTed to")
    events: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="job.finished, job.failed, watchdog, loop.iteration (empty: all)",
    )
    description: str = Field(default="", max_length=200)


@router.get("", response_model=list[WebhookView])
def list_webhooks(ctx: Manage) -> list[WebhookView]:
    """The tenant's webhooks (their secrets are never shown again)."""
    return webhooks.list_webhooks(ctx)


@router.post("", response_model=CreatedWebhook, status_code=201)
def add_webhook(body: WebhookCreate, ctx: Manage) -> CreatedWebhook:
    """Add a webhook; the response holds its signing secret, shown this once."""
    return webhooks.add(ctx, body.url, body.events, body.description)


@router.delete("/{webhook_id}", response_model=WebhookView)
def remove_webhook(webhook_id: str, ctx: Manage) -> WebhookView:
    """Remove a webhook and its pending deliveries."""
    return webhooks.remove(ctx, webhook_id)


@router.post("/{webhook_id}/test", response_model=DeliveryView)
def test_webhook(webhook_id: str, ctx: Manage) -> DeliveryView:
    """Send a signed ``webhook.test`` event now, once, and report the receiver's answer."""
    return webhooks.test(ctx, webhook_id)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryView])
def list_deliveries(
    webhook_id: str, ctx: Manage, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[DeliveryView]:
    """The webhook's newest deliveries with every attempt (status code or error, duration)."""
    return webhooks.deliveries(ctx, webhook_id, limit)
