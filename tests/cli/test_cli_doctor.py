"""`imts doctor` through the real command: a table or JSON, exit 1 when a required part is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200", **env}
    full.pop("IMTS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "imts", "doctor", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
        cwd=tmp_path,
    )


def test_doctor_json_and_exit_codes(tmp_path: Path) -> None:
    out = doctor(tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["healthy"] is True
    assert {c["name"]: c["status"] for c in report["checks"]}["sandbox"] == "ok"
    assert not (tmp_path / "ws").exists()  # looking creates nothing
    broken = doctor(tmp_path, IMTS_SANDBOX_BWRAP=str(tmp_path / "no-bwrap"))
    assert broken.returncode == 1
    assert "untrusted code is refused" in broken.stdout and "a required part is broken" in broken.stdout
    zh = doctor(
        tmp_path, "--lang", "zh", IMTS_SANDBOX_BWRAP=str(tmp_path / "no-bwrap"), IMTS_SANDBOX_UNCONFINED="1"
    )
    assert zh.returncode == 0 and "沙箱" in zh.stdout and "警告" in zh.stdout
