"""A killed `imts train --inline` through the real command: the next command marks its run
`interrupted` (not `running` forever), `imts train --resume RUN` finishes it bit-identically to an
uninterrupted run, with exactly one metric row per step."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.cli.test_cli import imts
from tests.conftest import make_ws

from imts.store import runs
from imts.store.models import Metric

SPEC = [
    "max_steps=200",
    "save_every=10",
    "eval_every=1000",
    "batch_size=4",
    "lr=0.005",
    "warmup_steps=2",
    "merge=false",
    "lora.r=4",
    "precision=fp32",
    "lora.dropout=0.1",
]


def _run_id(out: str) -> str:
    found = re.search(r"trained run (run_\w+):", out)
    assert found, out
    return found.group(1)


def test_killed_inline_training_is_marked_and_resumes_exactly(
    tmp_path: Path, tiny_model: Path, math_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One thread in every process: the same arithmetic each time, and no spinning on a busy machine.
    monkeypatch.setenv("IMTS_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert imts(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    assert imts(tmp_path, "data", "import", str(math_file), "--name", "math").returncode == 0
    assert imts(tmp_path, "data", "split", "math@1").returncode == 0
    args = ["train", "--data", "math@2", "--base", "tiny", "--inline", *SPEC]

    straight = imts(tmp_path, *args)
    assert straight.returncode == 0, straight.stderr
    straight_id = _run_id(straight.stdout)
    assert "tokens/s while training" in straight.stdout and "loading and saving included" in straight.stdout

    # The same training, killed with SIGKILL once it has saved a checkpoint or two.
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws")}
    env.pop("IMTS_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "imts", *args], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL
    )
    ws = make_ws(tmp_path)
    end = time.time() + 240
    killed_id = None
    while killed_id is None:
        assert time.time() < end and proc.poll() is None, "the run ended before it could be killed"
        for r in runs.search(ws, kind="train", status="running"):
            if (Path(r.output_dir or "") / "checkpoints" / "step-000020").is_dir():
                killed_id = r.id
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert runs.get(ws, killed_id).status == "running"  # what a kill leaves behind

    # The next command's start-up recovery says what happened to it, and how to continue.
    shown = imts(tmp_path, "runs", "show", killed_id)
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert run["status"] == "interrupted", run
    assert "ended without finishing" in run["error"] and f"imts train --resume {killed_id}" in run["error"]

    # A resume with a changed spec would not be the same run: refused with one line.
    bad = imts(tmp_path, "train", "--resume", killed_id, "--inline", "lr=0.1")
    assert bad.returncode == 2 and "drop overrides" in bad.stderr and "Traceback" not in bad.stderr

    resumed = imts(tmp_path, "train", "--resume", killed_id, "--inline")
    assert resumed.returncode == 0, resumed.stderr
    assert _run_id(resumed.stdout) == killed_id
    assert runs.get(ws, killed_id).status == "succeeded"

    a, b = runs.history(ws, straight_id)["loss"], runs.history(ws, killed_id)["loss"]
    assert [s for s, _ in b] == list(range(1, 201))  # one row per step: the redone steps replaced
    assert a == b  # bit-identical to the uninterrupted run
    with ws.session() as s:
        per_key_step = s.execute(
            select(Metric.key, Metric.step, func.count())
            .where(Metric.run_id == killed_id)
            .group_by(Metric.key, Metric.step)
            .having(func.count() > 1)
        ).all()
    assert per_key_step == []

    # A succeeded run is not resumed again.
    again = imts(tmp_path, "train", "--resume", killed_id, "--inline")
    assert again.returncode == 2 and "already succeeded" in again.stderr
