"""Rate limits (429 + Retry-After, per key and per address), request size limits (413), /metrics for
Prometheus (who may scrape, what it reports), and no key or token in any answer or log record."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import make_ws

from imts.api.app import create_app
from imts.jobs import service
from imts.services import identity
from imts.store.context import Context, platform_context, tenant_context

PASSWORD = "correct horse battery staple"
TOKEN = "prom-token-7d1f-never-logged"


def _world(tmp_path: Path, **settings: object) -> tuple[Context, TestClient, str, str]:
    ctx = make_ws(tmp_path, **settings)
    p = platform_context(ctx.ws, "root")
    identity.create_user(p, "root", PASSWORD, platform_admin=True)
    identity.create_user(p, "vera", PASSWORD)
    identity.add_member(
        tenant_context(ctx.ws, ctx.tenant, "root", "admin", platform_admin=True), "vera", "viewer"
    )
    admin = identity.create_key(p, "a", username="root").secret
    viewer = identity.create_key(p, "v", username="vera").secret
    return ctx, TestClient(create_app(ctx.settings), base_url="https://t"), admin, viewer


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_rate_limits_per_key_and_per_address(tmp_path: Path) -> None:
    _, client, admin, viewer = _world(
        tmp_path, api_rate_limit="5/minute", api_rate_limit_anonymous="3/minute"
    )
    with client:
        for _ in range(5):
            assert client.get("/api/v1/me", headers=_bearer(admin)).status_code == 200
        r = client.get("/api/v1/me", headers=_bearer(admin))
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert admin not in r.text and admin[5:] not in r.text
        # Another key has its own budget; requests without credentials share the address's.
        assert client.get("/api/v1/me", headers=_bearer(viewer)).status_code == 200
        codes = [client.get("/api/v1/health").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]


def test_request_size_limit(tmp_path: Path) -> None:
    _, client, admin, _ = _world(tmp_path, api_max_body_mb=0.001)  # 1048 bytes
    with client:
        big = {"username": "x" * 2000, "password": PASSWORD}
        r = client.post("/api/v1/users", json=big, headers=_bearer(admin))
        assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"

        def chunks():  # no Content-Length: refused while it streams
            for _ in range(4):
                yield b"x" * 500

        r = client.post(
            "/api/v1/users", content=chunks(), headers={**_bearer(admin), "Content-Type": "application/json"}
        )
        assert r.status_code == 413, r.text
        assert client.post("/api/v1/users", json={"username": "ok-user", "password": PASSWORD},
                           headers=_bearer(admin)).status_code == 201  # fmt: skip


def test_metrics_access_and_series(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx, client, admin, viewer = _world(tmp_path, metrics_token=TOKEN)
    service.submit(ctx, service.Submission("sleep", {"seconds": 30}))
    with client, caplog.at_level(logging.DEBUG):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=_bearer("wrong-token")).status_code == 401
        assert client.get("/metrics", headers=_bearer(viewer)).status_code == 403
        assert client.get("/api/v1/tenants/default/projects", headers=_bearer(admin)).status_code == 200
        assert client.get("/metrics", headers=_bearer(admin)).status_code == 200
        r = client.get("/metrics", headers=_bearer(TOKEN))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    jobs = {(s.labels["tenant"], s.labels["state"]): s.value for s in families["imts_jobs"].samples}
    assert jobs == {("default", "queued"): 1.0}
    [wait] = families["imts_queue_oldest_wait_seconds"].samples
    assert wait.value >= 0
    routes = {s.labels["route"] for s in families["imts_api_request_duration_seconds"].samples}
    # Route templates, never the real names of tenants or projects.
    assert "/api/v1/tenants/{tenant}/projects" in routes and "/metrics" in routes
    assert not any("default" in r for r in routes)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (TOKEN, admin, viewer):
        assert secret not in logged and secret not in r.text


def test_failed_authentications_are_limited_per_address_and_per_user_name(tmp_path: Path) -> None:
    import secrets

    _, client, admin, _ = _world(
        tmp_path, api_rate_limit="1000/minute", api_rate_limit_anonymous="1000/minute",
        api_auth_failure_limit="4/minute", api_login_failure_limit="3/minute",
    )  # fmt: skip
    with client:
        # A fresh random key each time gets no fresh budget: the address's failures are counted.
        codes = [client.get("/api/v1/me", headers=_bearer("imts_" + secrets.token_urlsafe(24))).status_code
                 for _ in range(6)]  # fmt: skip
        assert codes == [401, 401, 401, 401, 429, 429], codes
        r = client.get("/api/v1/me", headers=_bearer(admin))  # the address is blocked, even a good key
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60, r.text
        assert "failed authentications" in r.json()["error"]["message"]

    # Password guessing on one name spread over many addresses (here the address's own limit is set
    # out of reach, so only the name's acts): the name's sign-ins are limited.
    _, client2, _, _ = _world(
        tmp_path / "two", api_rate_limit_anonymous="1000/minute", api_auth_failure_limit="1000/minute",
        api_login_failure_limit="3/minute",
    )  # fmt: skip
    with client2:
        wrong = [client2.post("/api/v1/auth/login", json={"username": "vera", "password": f"guess-{i}"}
                              ).status_code for i in range(4)]  # fmt: skip
        assert wrong == [401, 401, 401, 429], wrong
        r = client2.post("/api/v1/auth/login", json={"username": "vera", "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
        assert "guess" not in r.text and PASSWORD not in r.text
        # Another name is not held back by vera's failures.
        ok = client2.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
        assert ok.status_code == 200, ok.text
