"""`imts runs list/show/compare` over runs recorded through the runs store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli import imts
from tests.conftest import make_ws

from imts.store import runs


def test_list_show_compare(tmp_path: Path) -> None:
    ctx = make_ws(tmp_path)
    a = runs.create(ctx, "train", {"base_model": "tiny", "data": "m@2", "lr": 0.1, "lora": {"r": 4}}).id
    b = runs.create(ctx, "train", {"base_model": "tiny", "data": "m@2", "lr": 0.2, "lora": {"r": 4}}).id
    runs.finish(ctx, a, "succeeded", {"final_loss": 1.25, "model_version": "m-tiny:1"})
    runs.log_event(ctx, b, "checkpoint", "saved", step=2)
    runs.finish(ctx, b, "failed", error="RuntimeError: boom")

    out = imts(tmp_path, "runs", "list")
    assert out.returncode == 0, out.stderr
    assert a in out.stdout and "loss 1.250 -> m-tiny:1" in out.stdout and "RuntimeError: boom" in out.stdout

    out = imts(tmp_path, "runs", "show", b)
    shown = json.loads(out.stdout)
    assert shown["status"] == "failed" and shown["events"] == [
        {"step": 2, "kind": "checkpoint", "message": "saved"}
    ]

    out = imts(tmp_path, "runs", "compare", a, b)
    assert out.returncode == 0, out.stderr
    assert "lr" in out.stdout and "final_loss" in out.stdout and "1 spec keys differ" in out.stdout
    assert "lora.r" not in out.stdout
    out = imts(tmp_path, "runs", "compare", a, b, "--json")
    assert json.loads(out.stdout)["differing"] == ["lr"]

    out = imts(tmp_path, "runs", "compare", a, "run_nope")
    assert out.returncode == 2 and "no run 'run_nope'" in out.stderr


def _narrow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in an 80-column terminal."""
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "80"}
    env.pop("IMTS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "imts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )


def test_lists_keep_ids_whole_at_80_columns_and_print_json(tmp_path: Path) -> None:
    ctx = make_ws(tmp_path)
    spec = {"base_model": "smollm2-135m-instruct", "data": "a-long-dataset-name@12:train", "lr": 0.1}
    a = runs.create(ctx, "train", spec).id
    runs.finish(ctx, a, "succeeded", {"final_loss": 1.25, "model_version": "a-long-dataset-name-smollm2:3"})
    out = _narrow(tmp_path, "runs", "list")
    assert out.returncode == 0 and a in out.stdout, out.stdout  # not "run_01a2…"
    listed = json.loads(_narrow(tmp_path, "runs", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [a] and listed[0]["summary"]["final_loss"] == 1.25
    out = _narrow(tmp_path, "jobs", "submit", "sleep", "seconds=60")
    job = out.stdout.split()[1]
    jobs = json.loads(_narrow(tmp_path, "jobs", "list", "--json").stdout)
    # Any state a just-submitted job can be in when the list is read (a scheduler pass may have placed it).
    assert [(j["id"], j["kind"]) for j in jobs] == [(job, "sleep")] and jobs[0]["state"] in (
        "queued",
        "starting",
        "running",
    )
    assert job in _narrow(tmp_path, "jobs", "list").stdout
    assert _narrow(tmp_path, "jobs", "cancel", job).returncode == 0
    models = json.loads(_narrow(tmp_path, "models", "list", "--json").stdout)
    assert models == {"base_models": [], "model_versions": []}
