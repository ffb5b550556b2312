"""The real `imts server` process over real HTTP: it refuses to start without an administrator, then
serves login and keys over http on loopback; the password and the key's secret appear in none of its
output (the in-process app's log records: tests/api/test_identity_api.py)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from tests.api.conftest import imts_process, imts_server

from imts.core.net import free_port

SECRET_PASSWORD = "zebra-Quartz-4417-never-logged"


def test_real_server_login_keys_and_no_secret_in_its_logs(tmp_path: Path) -> None:
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "IMTS_LOG_LEVEL": "INFO"}
    port = free_port()
    refused = imts_process(env, "server", "--port", str(port))
    assert refused.returncode == 2 and "imts admin init" in refused.stderr
    init = imts_process(
        env, "admin", "init", "--username", "boss", "--password-stdin", stdin=SECRET_PASSWORD + "\n"
    )
    assert init.returncode == 0, init.stderr
    log = tmp_path / "server.log"
    with imts_server(env, log) as (url, _):
        base = f"{url}/api/v1"
        with httpx.Client(base_url=base) as c:
            assert (
                c.post(
                    "/auth/login", json={"username": "boss", "password": "wrong-" + SECRET_PASSWORD}
                ).status_code
                == 401
            )
            r = c.post("/auth/login", json={"username": "boss", "password": SECRET_PASSWORD})
            assert r.status_code == 200, r.text
            # Plain http on loopback: the cookie is not Secure, so httpx sends it back.
            assert "Secure" not in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
            csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
            assert c.get("/me").json()["user"]["username"] == "boss"
            key = c.post("/keys", json={"name": "ci"}, headers=csrf).json()["secret"]
        with httpx.Client(base_url=base) as k:
            assert k.get("/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            assert k.get("/me", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
            assert k.get("/me", headers={"Authorization": f"Basic {key}"}).status_code == 401
            assert k.post("/users", json={"username": "Bad Name", "password": SECRET_PASSWORD},
                          headers={"Authorization": f"Bearer {key}"}).status_code == 422  # fmt: skip
    output = log.read_text() + refused.stdout + refused.stderr + init.stdout + init.stderr
    assert "GET /api/v1/me" in output  # the access log was captured: the check below can fail
    assert "sandbox: untrusted code" in output  # start-up says how untrusted code runs
    assert SECRET_PASSWORD not in output and key not in output and key[5:] not in output


def test_the_demo_tail_starts_the_server_with_a_generated_admin_password(tmp_path: Path) -> None:
    """`make demo` ends with `imts server --init-admin`: the first administrator gets a generated
    password, printed once with the URL; it signs in; a second start creates nobody."""
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws")}
    out = tmp_path / "out.log"
    for attempt in range(2):
        out.unlink(missing_ok=True)
        with imts_server(env, out, "--init-admin") as (url, _):
            text = out.read_text()
            assert f"{url}/api/v1" in text and "auth/login" in text
            if attempt == 0:
                lines = text.splitlines()
                password = lines[
                    lines.index(next(line for line in lines if "shown only now" in line)) + 1
                ].strip()
                r = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": password})
                assert r.status_code == 200, r.text
            else:
                assert "shown only now" not in text
