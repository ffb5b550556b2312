"""`imts runs list/show/compare` over runs recorded through the runs store."""

from __future__ import annotations

import json
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
