"""`imts admin | users | members | keys | tenants | projects | audit` in real subprocesses: bad input is
one clear line (exit 2), the key's secret is printed once and works, the audit chain verifies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imts.core.settings import Settings
from imts.services import identity
from imts.services.startup import start


def imts(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200"}
    env.pop("IMTS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "imts", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=300, cwd=tmp_path)  # fmt: skip


def test_identity_commands_end_to_end(tmp_path: Path) -> None:
    assert imts(tmp_path, "admin", "init", "--password-stdin", stdin="long enough pw\n").returncode == 0
    again = imts(tmp_path, "admin", "init", "--username", "two", "--password-stdin", stdin="long enough pw\n")
    assert again.returncode == 2 and "exists already" in again.stderr and "Traceback" not in again.stderr
    short = imts(tmp_path, "users", "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "field 'password'" in short.stderr
    assert (
        imts(tmp_path, "users", "add", "bob", "--password-stdin", stdin="bobs password 1\n").returncode == 0
    )
    assert imts(tmp_path, "tenants", "create", "acme").returncode == 0
    assert imts(tmp_path, "projects", "create", "vision", "--tenant", "acme").returncode == 0
    bad_role = imts(tmp_path, "members", "add", "bob", "--role", "owner", "--tenant", "acme")
    assert bad_role.returncode == 2 and "unknown role 'owner'" in bad_role.stderr
    assert imts(tmp_path, "members", "add", "bob", "--role", "viewer", "--tenant", "acme").returncode == 0
    assert "bob" in imts(tmp_path, "members", "list", "--tenant", "acme").stdout
    created = imts(
        tmp_path, "keys", "create", "--user", "bob", "--scope-tenant", "acme", "--scope-project", "vision"
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    who = identity.authenticate_key(start(Settings(workspace=tmp_path / "ws")), secret)
    assert (who.username, who.via) == ("bob", "key") and who.key_project_id
    listed = imts(tmp_path, "keys", "list")
    assert secret not in listed.stdout and secret[:12] in listed.stdout
    assert imts(tmp_path, "audit", "verify").returncode == 0
    export = imts(tmp_path, "audit", "export", "--jsonl").stdout.splitlines()
    assert len(export) == 6 and '"action": "key.create"' in export[-1] and secret not in "".join(export)
    assert "member.set" in imts(tmp_path, "audit", "list", "--actor", "local", "--action", "member.*").stdout
