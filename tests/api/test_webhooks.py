"""Webhooks end to end with a real local HTTP receiver: routes, signatures, retries with backoff,
attempts recorded, and the events found in the database (a real job that finished, one that failed, a
watchdog event) or emitted by a call (loop iteration) — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from tests.api.receiver import receiver

from imts.api.app import create_app
from imts.jobs import service
from imts.services import identity, webhooks
from imts.store import runs
from imts.store.context import Context, platform_context
from imts.store.webhooks import emit

PASSWORD = "correct horse battery staple"


def _admin_key(ctx: Context) -> dict[str, str]:
    pctx = platform_context(ctx.ws, "root")
    identity.create_user(pctx, "root", PASSWORD, platform_admin=True)
    return {"Authorization": f"Bearer {identity.create_key(pctx, 'k', username='root').secret}"}


def _wait(cond: object, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail("timed out")


def test_webhook_routes_signed_delivery_retries_and_events(any_ws: Context) -> None:
    ctx = any_ws
    settings = ctx.settings.model_copy(
        update={"webhook_poll_s": 0.1, "webhook_backoff_s": 0.2, "webhook_max_attempts": 3}
    )
    ctx.ws.settings = settings  # the app's workspace is this one: the worker reads these
    headers = _admin_key(ctx)
    base = f"/api/v1/tenants/{ctx.tenant}/webhooks"
    with receiver(answers=[500]) as got, TestClient(create_app(settings), base_url="https://t") as client:
        bad = client.post(base, json={"url": "ftp://x", "events": []}, headers=headers)
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "url"
        unknown = client.post(base, json={"url": got.url, "events": ["job.exploded"]}, headers=headers)
        assert unknown.status_code == 422 and "job.exploded" in unknown.json()["error"]["message"]
        r = client.post(base, json={"url": got.url, "events": []}, headers=headers)
        assert r.status_code == 201, r.text
        hook, secret = r.json()["id"], r.json()["secret"]
        assert secret not in client.get(base, headers=headers).text

        # A real job that finishes and one that fails (sleep kind, followed to its end here).
        ok = service.submit(ctx, service.Submission("sleep", {"seconds": 0.05}))
        service.follow(ctx, ok)
        bad_job = service.submit(
            ctx, service.Submission("sleep", {"seconds": 0.05, "fail": True}, max_retries=0)
        )
        service.follow(ctx, bad_job)
        # A watchdog event in a run, and a loop iteration announced by a call.
        run_id = runs.create(ctx, "train", {"method": "sft_lora"}).id
        runs.log_event(
            ctx, run_id, "watchdog", "loss spike at step 7: rolled back", 7, {"reason": "loss_spike"}
        )
        assert emit(ctx, "loop.iteration", "loop-1:1", {"loop": "loop-1", "iteration": 1}) == 1
        assert emit(ctx, "loop.iteration", "loop-1:1", {"loop": "loop-1", "iteration": 1}) == 0  # once

        # The first POST is answered 500: it is retried after the backoff; all four events arrive.
        _wait(lambda: {json.loads(b)["event"] for _, b in got.calls} >= {"job.finished", "job.failed",
              "watchdog", "loop.iteration"} and len(got.calls) >= 5)  # fmt: skip
        events = {}
        for h, body in got.calls:
            assert webhooks.verify_signature(secret, h["x-imts-signature"], body)
            assert not webhooks.verify_signature(secret + "x", h["x-imts-signature"], body)
            assert not webhooks.verify_signature(secret, h["x-imts-signature"], body + b" ")
            payload = json.loads(body)
            assert h["x-imts-event"] == payload["event"] and h["x-imts-delivery"] == payload["id"]
            events[payload["event"]] = payload
        assert events["job.finished"]["data"]["job_id"] == ok
        assert events["job.failed"]["data"]["job_id"] == bad_job
        assert events["watchdog"]["data"]["run_id"] == run_id and events["watchdog"]["data"]["step"] == 7
        assert events["loop.iteration"]["tenant"] == ctx.tenant

        listed = client.get(f"{base}/{hook}/deliveries", headers=headers).json()
        retried = [d for d in listed if len(d["attempts"]) == 2]
        assert len(retried) == 1 and retried[0]["attempts"][0]["status_code"] == 500
        assert all(d["status"] == "delivered" for d in listed)

        tested = client.post(f"{base}/{hook}/test", headers=headers).json()
        assert tested["event"] == "webhook.test" and tested["status"] == "delivered"
        assert client.delete(f"{base}/{hook}", headers=headers).status_code == 200
        assert client.get(f"{base}/{hook}/deliveries", headers=headers).status_code == 404


def test_a_receiver_that_never_answers_2xx_is_given_up_after_max_attempts(ws: Context) -> None:
    ws.ws.settings = ws.settings.model_copy(update={"webhook_backoff_s": 0.01, "webhook_max_attempts": 3})
    with receiver(answers=[503, 503, 503, 503]) as got:
        hook = webhooks.add(ws, got.url, ["loop.iteration"])
        emit(ws, "loop.iteration", "l:1", {"iteration": 1})
        for _ in range(6):
            webhooks.deliver_due(ws.ws)
            time.sleep(0.05)
        [d] = webhooks.deliveries(ws, hook.id)
        assert d.status == "failed" and [a.status_code for a in d.attempts] == [503, 503, 503]
        assert len(got.calls) == 3
