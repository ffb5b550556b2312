"""What the console's browser tests share: Debian's Chromium, a real ``imts server`` process with a
world of users (an administrator, tenant ``acme`` with a researcher and a viewer, the tiny model as a
base model), and signing in from the page."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from tests.api.conftest import imts_server

from imts.jobs.pool import local_pool

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PASSWORD = "correct horse battery staple"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)"
)


@dataclass
class Server:
    url: str
    env: dict[str, str]
    data: Path


def imts_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run the CLI against the server's workspace; its output (fails the test on an error)."""
    r = subprocess.run([sys.executable, "-m", "imts", *args], env=env, input=stdin, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def world(tmp: Path, **settings: str) -> dict[str, str]:
    """The environment of a fresh workspace under ``tmp`` with its users; ``settings`` are more
    ``IMTS_*`` variables. The pool has a price table, so the overview shows costs."""
    env = {
        **os.environ,
        "IMTS_WORKSPACE": str(tmp / "ws"),
        "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
        **settings,
    }
    pool = {**local_pool().model_dump(mode="json"), "prices": {"currency": "USD", "cpu_hour": 3.6}}
    (tmp / "pool.yaml").write_text(yaml.safe_dump(pool), encoding="utf-8")
    env["IMTS_POOL_FILE"] = str(tmp / "pool.yaml")
    imts_cli(env, "admin", "init", "--username", "boss", "--password-stdin", stdin=PASSWORD + "\n")
    imts_cli(env, "tenants", "create", "acme")
    imts_cli(env, "projects", "create", "default", "--tenant", "acme")
    for user, role in (("alice", "researcher"), ("vic", "viewer")):
        imts_cli(env, "users", "add", user, "--password-stdin", stdin=PASSWORD + "\n")
        imts_cli(env, "members", "add", user, "--role", role, "--tenant", "acme")
    return env


@contextmanager
def serve(env: dict[str, str], tmp: Path, data: Path, tiny_model: Path) -> Iterator[Server]:
    """``imts server`` on a free port of this workspace, with the tiny model registered as the base
    model ``tiny-llama``; stopped on exit."""
    with imts_server(env, tmp / "server.log") as (url, _):
        with httpx.Client(base_url=f"{url}/api/v1", timeout=120) as c:
            csrf = c.post("/auth/login", json={"username": "boss", "password": PASSWORD}).json()["csrf_token"]
            body = {"path": str(tiny_model), "name": "tiny-llama", "license": "apache-2.0"}
            r = c.post("/base-models", headers={"X-CSRF-Token": csrf}, json=body)
            assert r.status_code == 201, r.text
        yield Server(url, env, data)


def login(page, url: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#nav-overview")
