"""The `imts jobs` / `imts pool` / `imts train` commands, no scheduler daemon: real worker processes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from imts.cli.common import console
from imts.cli.main import app
from imts.core.settings import Settings, get_settings
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.registry import base_models
from imts.services.startup import local_context


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def imts(tmp_path: Path, *args: str) -> Result:
    """The `imts` command in this process (each one a fresh settings object from the environment);
    workers it starts are real subprocesses. In-process keeps the many commands here fast."""
    pool = tmp_path / "pool.yaml"
    pool.write_text("nodes: [{name: box, cpus: 2, memory_gb: 8}]\ntenants: {team-a: {weight: 2}}\n")
    env = {
        "IMTS_WORKSPACE": str(tmp_path / "ws"),
        "IMTS_POOL_FILE": str(pool),
        "IMTS_HEARTBEAT_S": "0.3",
        "IMTS_DATABASE_URL": None,
    }
    get_settings.cache_clear()
    # The CLI's console was sized when this process first imported it: wide enough for whole reasons.
    width, console.width = console.width, 250
    try:
        res = CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()
        console.width = width
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return Result(res.exit_code, res.stdout, res.stderr)


def test_jobs_commands_end_to_end(tmp_path: Path) -> None:
    out = imts(tmp_path, "--tenant", "team-a", "jobs", "submit", "sleep", "seconds=0.2", "--follow")
    assert out.returncode == 0, out.stderr
    job = out.stdout.split()[1]
    assert f"{job} succeeded" in out.stdout
    out = imts(tmp_path, "jobs", "submit", "sleep", "seconds=60", "--cpus", "2", "--priority", "high")
    assert out.returncode == 0, out.stderr
    running = out.stdout.split()[1]
    out = imts(tmp_path, "jobs", "submit", "sleep", "seconds=60", "--workers", "2")
    waiting = out.stdout.split()[1]
    out = imts(tmp_path, "jobs", "delete", waiting)
    assert out.returncode == 2 and f"cannot delete job {waiting}: it is queued" in out.stderr
    out = imts(tmp_path, "pool", "show")
    assert (
        out.returncode == 0
        and "team-a" in out.stdout
        and waiting in out.stdout
        and "allocation" in out.stdout
    )
    assert "waiting for resources: needs 2 x 1 CPU; free 0 CPU, 0 GPU" in out.stdout and running in out.stdout
    out = imts(tmp_path, "jobs", "cancel", waiting)
    assert out.returncode == 0 and "now cancelled" in out.stdout
    out = imts(tmp_path, "jobs", "cancel", running)
    assert out.returncode == 0 and ("now preempting" in out.stdout or "now cancelled" in out.stdout)
    out = imts(tmp_path, "jobs", "list")  # this project's jobs: not team-a's
    assert job not in out.stdout and "cancelled" in out.stdout and "box" not in out.stdout
    out = imts(tmp_path, "jobs", "show", job)
    assert out.returncode == 2 and f"no job '{job}'" in out.stderr
    out = imts(tmp_path, "--tenant", "team-a", "jobs", "list")
    assert job in out.stdout and "succeeded" in out.stdout and "box" not in out.stdout
    out = imts(tmp_path, "--tenant", "team-a", "jobs", "logs", job)
    assert "attempt 1 succeeded" in out.stdout
    out = imts(tmp_path, "--tenant", "team-a", "jobs", "show", job)
    assert '"state": "succeeded"' in out.stdout and '"kind": "starting"' in out.stdout
    out = imts(tmp_path, "--tenant", "team-a", "jobs", "delete", job)
    assert out.returncode == 0 and "now deleted" in out.stdout
    out = imts(tmp_path, "jobs", "submit", "sleep", "--workers", "3")
    assert out.returncode == 2 and "the pool can never hold 3 worker(s)" in out.stderr
    out = imts(tmp_path, "jobs", "submit", "train", "run.base_model=nope", "run.data=x")
    assert out.returncode == 2 and "error:" in out.stderr
    out = imts(tmp_path, "jobs", "submit", "sleep", "seconds=0", "--inline")  # the same kind, in process
    assert out.returncode == 0 and '"slept_s": 0.0' in out.stdout and "queued" not in out.stdout


def test_train_and_eval_run_as_jobs_and_are_followed(
    tmp_path: Path, tiny_model: Path, math_file: Path
) -> None:
    ws = local_context(Settings(workspace=tmp_path / "ws"))
    base_models.add(ws, tiny_model, name="tiny")
    split_version(ws, import_file(ws, math_file, name="math"), seed=0)
    out = imts(tmp_path, "train", "--data", "math@2", "--base", "tiny", "max_steps=3", "batch_size=2")
    assert out.returncode == 0, out.stderr
    assert "queued" in out.stdout and "trained" in out.stdout and "-> model math-tiny:1" in out.stdout
    out = imts(
        tmp_path,
        "eval",
        "--model",
        "math-tiny:1",
        "--data",
        "math@2",
        "--limit",
        "4",
        "--max-new-tokens",
        "4",
    )
    assert out.returncode == 0, out.stderr
    assert "evaluated" in out.stdout and "(n=4," in out.stdout
    from imts.jobs import service

    assert sorted((r.kind, r.state) for r in service.list_jobs(ws)) == [
        ("eval", "succeeded"),
        ("train", "succeeded"),
    ]


def test_scheduler_says_standby_and_logs_its_decisions(tmp_path: Path) -> None:
    """Two `imts scheduler` daemons: the second says it is standby; the leader logs what it decides
    and, when it stops, the standby says it leads."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "IMTS_SCHEDULER_INTERVAL_S": "0.2"}
    env.pop("IMTS_DATABASE_URL", None)

    def daemon(name: str) -> subprocess.Popen[str]:
        log = (tmp_path / f"{name}.log").open("w")
        return subprocess.Popen(
            [sys.executable, "-m", "imts", "scheduler"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_for(name: str, text: str) -> str:
        end = time.time() + 120
        while text not in (out := (tmp_path / f"{name}.log").read_text()):
            assert time.time() < end, out
            time.sleep(0.2)
        return out

    first = daemon("first")
    second = None
    try:
        wait_for("first", "leads")
        second = daemon("second")
        assert "holds the lease" in wait_for("second", "is standby")
        job = imts(tmp_path, "jobs", "submit", "sleep", "seconds=0.1").stdout.split()[1]
        wait_for("first", f"job {job}: queued -> starting: placed on")
        wait_for("first", "-> succeeded")
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
        wait_for("second", "leads")
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=60)
