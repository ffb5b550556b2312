"""The real CLI against a real `imts server` process (``--server`` + IMTS_API_KEY): the same verbs act
on the server with the key's rights (jobs and data included); and a server killed (SIGKILL) in the
middle of a stream of job submissions loses none that it acknowledged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import imts_process
from tests.api.conftest import imts_server as server

from imts.api.client import upload_file

PASSWORD = "remote-Pass-9931-secret"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMTS_")}
    env |= {"IMTS_WORKSPACE": str(tmp_path / "ws"), "IMTS_MODEL_CACHE": str(tmp_path / "cache")}
    init = imts_process(env, "admin", "init", "--username", "boss", "--password-stdin", stdin=PASSWORD + "\n")
    assert init.returncode == 0, init.stderr
    key = imts_process(env, "keys", "create", "--user", "boss", "--name", "cli")
    assert key.returncode == 0, key.stderr
    env["IMTS_API_KEY"] = key.stdout.strip().splitlines()[-1]
    return env


def test_the_same_verbs_act_on_a_remote_server(env: dict[str, str], tmp_path: Path) -> None:
    with server(env, tmp_path / "server.log") as (url, _):
        # The server's database lives elsewhere: a client with only --server and a key.
        client = {k: v for k, v in env.items() if k != "IMTS_WORKSPACE"} | {
            "IMTS_WORKSPACE": str(tmp_path / "c")
        }

        def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return imts_process(client, "--server", url, *args, stdin=stdin)

        assert cli("tenants", "create", "acme").returncode == 0
        assert cli("projects", "create", "nlp", "--tenant", "acme").returncode == 0
        assert "nlp" in cli("projects", "list", "--tenant", "acme").stdout
        assert cli("users", "add", "ann", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
        assert "ann" in cli("users", "list").stdout
        assert cli("members", "add", "ann", "--role", "viewer", "--tenant", "acme").returncode == 0
        assert "viewer" in cli("members", "list", "--tenant", "acme").stdout
        made = cli("keys", "create", "--name", "second")
        secret = made.stdout.strip().splitlines()[-1]
        assert made.returncode == 0 and secret.startswith("imts_")
        key_id = made.stdout.split()[1]
        assert secret not in cli("keys", "list").stdout
        assert httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        assert cli("keys", "revoke", key_id).returncode == 0
        assert httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
        hook = cli("webhooks", "add", "http://127.0.0.1:9/x", "-e", "job.failed", "--tenant", "acme")
        assert hook.returncode == 0, hook.stderr
        assert "job.failed" in cli("webhooks", "list", "--tenant", "acme").stdout
        entries = json.loads(cli("audit", "list", "--json", "--limit", "1000").stdout)
        actions = {e["action"] for e in entries}
        assert {"tenant.create", "project.create", "user.create", "member.set", "webhook.add"} <= actions
        assert all(e["actor"] == "boss" for e in entries if e["action"] == "webhook.add")
        assert "chain intact" in cli("audit", "verify").stdout
        _jobs_and_data(cli, url, env["IMTS_API_KEY"], tmp_path)
        # Refusals are one clear line, not a traceback; the key never appears.
        denied = cli("members", "add", "ann", "--role", "admin", "--tenant", "nowhere")
        assert denied.returncode == 2 and "no tenant 'nowhere'" in denied.stderr
        assert "Traceback" not in denied.stderr and env["IMTS_API_KEY"] not in denied.stderr
        bad_key = imts_process(client | {"IMTS_API_KEY": "imts_wrong"}, "--server", url, "tenants", "list")
        assert bad_key.returncode == 2 and "401" in bad_key.stderr
        gone = imts_process(client, "--server", "http://127.0.0.1:9", "tenants", "list")
        assert gone.returncode == 2 and "cannot reach the server" in gone.stderr
    # The local database saw all of it (the CLI above never opened it).
    local = imts_process(env, "audit", "verify")
    assert local.returncode == 0 and "chain intact" in local.stdout


def _jobs_and_data(cli: Callable[..., subprocess.CompletedProcess[str]], url: str, key: str,
                   tmp_path: Path) -> None:  # fmt: skip
    """jobs list/show/pause/resume/cancel/retry and data list with --server, on a job and a dataset
    the server holds (submitted and uploaded through its API)."""
    at = ("--tenant", "acme", "--project", "nlp")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        r = c.post("/api/v1/tenants/acme/projects/nlp/jobs", json={"kind": "sleep", "spec": {"seconds": 120}})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        rows = tmp_path / "qa.jsonl"
        rows.write_text(
            "".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(5))
        )
        upload_file(c, "acme", "nlp", rows, name="qa")

        def state() -> str:
            return str(c.get(f"/api/v1/tenants/acme/projects/nlp/jobs/{job_id}").json()["job"]["state"])

        listed = cli(*at, "jobs", "list", "--json")
        assert listed.returncode == 0 and [j["id"] for j in json.loads(listed.stdout)] == [job_id], (
            listed.stderr
        )
        shown = cli(*at, "jobs", "show", job_id)
        assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == job_id, shown.stderr
        steps = [("pause", {"paused", "preempting"}), ("resume", {"queued", "starting", "running"}),
                 ("cancel", {"cancelled", "preempting"}),
                 ("retry", {"queued", "starting", "running"})]  # fmt: skip
        # Each action from a settled state: a stop is asked of a running worker (not a starting one),
        # resume takes a paused job, retry a cancelled one.
        before = {"pause": ("running", "queued"), "resume": ("paused",), "cancel": ("running", "queued"),
                  "retry": ("cancelled",)}  # fmt: skip
        for action, expected in steps:
            for _ in range(300):
                if state() in before[action]:
                    break
                time.sleep(0.1)
            done = cli(*at, "jobs", action, job_id)
            assert done.returncode == 0, done.stderr
            now = done.stdout.strip().rsplit("now ", 1)[-1]
            assert f"{action} requested for {job_id}" in done.stdout and now in expected, done.stdout
        assert c.post(f"/api/v1/tenants/acme/projects/nlp/jobs/{job_id}/cancel").status_code == 200
        missing = cli(*at, "jobs", "show", "job_nope")
        assert missing.returncode == 2 and "job_nope" in missing.stderr and "Traceback" not in missing.stderr
        datasets = cli(*at, "data", "list", "--json")
        assert datasets.returncode == 0, datasets.stderr
        assert [d["dataset"] for d in json.loads(datasets.stdout)] == ["qa"]
        actions = {e["action"] for e in c.get("/api/v1/tenants/acme/audit", params={"limit": 1000}).json()}
        assert {"job.pause", "job.resume", "job.cancel", "job.retry"} <= actions, actions


def test_killing_the_server_mid_submissions_loses_nothing_acknowledged(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Job submissions (``POST .../jobs``, kind ``sleep``) from 8 clients; SIGKILL after 40 answers:
    every job the server acknowledged (201 with its id) is in the database after a restart."""
    acked: list[str] = []
    stop = threading.Event()
    jobs = "/api/v1/tenants/crash/projects/p/jobs"
    with server(env, tmp_path / "server.log") as (url, proc):
        headers = {"Authorization": f"Bearer {env['IMTS_API_KEY']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
            assert c.post("/api/v1/tenants", json={"name": "crash"}).status_code == 201
            assert c.post("/api/v1/tenants/crash/projects", json={"name": "p"}).status_code == 201

        def submit(worker: int) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    body = {"kind": "sleep", "name": f"w{worker}-{n}", "spec": {"seconds": 0}}
                    try:
                        r = c.post(jobs, json=body)
                    except httpx.TransportError:
                        return
                    if r.status_code == 201:
                        acked.append(r.json()["id"])

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        while len(acked) < 40:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    auth = {"Authorization": f"Bearer {env['IMTS_API_KEY']}"}
    with server(env, tmp_path / "server2.log") as (url, _), httpx.Client(base_url=url, headers=auth) as c:
        stored = {j["id"] for j in c.get(jobs, params={"limit": 1000}).json()}
        assert c.get("/api/v1/audit/verify").json()["ok"]
    assert len(acked) >= 40 and set(acked) <= stored, set(acked) - stored
