"""`imts eval` with metrics, judges and the cache, `imts redteam`, `imts judge`, `imts report --evals`,
`imts serve`: the real command in subprocesses on the tiny model."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from imts.cli.common import console
from imts.cli.main import app
from imts.core.settings import get_settings


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def imts(tmp_path: Path, *args: str) -> Result:
    """The CLI in this process (one import of torch for all commands; the serve test below is a real
    process)."""
    env = {"IMTS_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200", "IMTS_DATABASE_URL": ""}
    get_settings.cache_clear()
    old = os.environ.pop("IMTS_DATABASE_URL", None)
    # The CLI's console was sized when this process first imported it: wide, so no line wraps.
    width, console.width = console.width, 200
    try:
        res = CliRunner().invoke(app, list(args), env={k: v for k, v in env.items() if v})
    finally:
        console.width = width
        if old is not None:
            os.environ["IMTS_DATABASE_URL"] = old
        get_settings.cache_clear()
    return Result(res.exit_code, res.stdout, res.stderr)


def test_eval_cache_redteam_judge_report(tmp_path: Path, math_file: Path, tiny_model: Path) -> None:
    assert imts(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    assert imts(tmp_path, "data", "import", str(math_file), "--name", "math").returncode == 0
    assert imts(tmp_path, "data", "split", "math", "--seed", "0").returncode == 0
    args = ["eval", "--model", "tiny", "--data", "math@2", "--limit", "8", "--max-new-tokens", "6"]
    first = imts(tmp_path, *args, "--metrics", "exact_match,rouge_l,distinct_2", "--judges", "math,safety")
    assert first.returncode == 0, first.stderr
    assert "cached 0" in first.stdout and "rouge_l" in first.stdout and "judge_safety 1" in first.stdout
    second = imts(tmp_path, *args)
    assert second.returncode == 0 and "cached 8" in second.stdout
    runs = re.findall(r"evaluated run (\S+)", first.stdout + second.stdout)

    hard = imts(tmp_path, "redteam", "math@2", "--seed", "1")
    assert hard.returncode == 0, hard.stderr
    assert "-> math-hard@1" in hard.stdout and "distractor" in hard.stdout

    judged = imts(tmp_path, "judge", runs[0], "--mode", "cascade")
    assert judged.returncode == 0, judged.stderr
    assert f"judged {runs[0]} (cascade)" in judged.stdout and '"rules"' in judged.stdout

    rep = imts(tmp_path, "report", "--evals", runs[0], "--evals", runs[1], "--no-clusters")
    assert rep.returncode == 0, rep.stderr
    assert "Significance" in rep.stdout and "report.html" in rep.stdout

    bad = imts(tmp_path, "eval", "--model", "tiny", "--data", "math@2", "--metrics", "meteor")
    assert bad.returncode == 2 and "meteor" in bad.stderr and "Traceback" not in bad.stderr


def test_serve_answers_and_stops(tmp_path: Path, tiny_model: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "IMTS_SERVE_API_KEY": "sk-serve-789"}
    env.pop("IMTS_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imts",
            "serve",
            "--model",
            str(tiny_model),
            "--port",
            str(port),
            "--name",
            "tiny",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, resp = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                resp = httpx.get(
                    f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer sk-serve-789"}
                )
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert resp is not None and resp.status_code == 200 and resp.json()["data"][0]["id"] == "tiny"
        body = {"model": "tiny", "messages": [{"role": "user", "content": "2 + 2?"}], "max_tokens": 4}
        denied = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
        assert denied.status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "sk-serve-789" not in out and "API key required" in out
    assert "Loading weights" not in out and "it/s]" not in out, out  # no third-party progress bars


def test_judge_debate_decides_per_rubric_and_says_disputed(
    tmp_path: Path, math_file: Path, tiny_model: Path
) -> None:
    assert imts(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    assert imts(tmp_path, "data", "import", str(math_file), "--name", "math").returncode == 0
    assert imts(tmp_path, "data", "split", "math", "--seed", "0").returncode == 0
    ev = imts(
        tmp_path, "eval", "--model", "tiny", "--data", "math@2", "--limit", "6", "--max-new-tokens", "6"
    )
    assert ev.returncode == 0, ev.stderr
    run = re.findall(r"evaluated run (\S+)", ev.stdout)[0]
    out = tmp_path / "debate.jsonl"
    judged = imts(tmp_path, "judge", run, "--mode", "debate", "--out", str(out))
    assert judged.returncode == 0, judged.stderr
    # The tiny model's answers are wrong: the logic judge says 0, the safety judge 10; not a 5 between.
    assert "wrong_answer 6; disputed 0 of 6 debated" in judged.stdout, judged.stdout
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6 and all(x["verdict"] == "wrong_answer" and x["score"] == 0.0 for x in lines)
    assert all(x["disputed"] is False for x in lines)


def test_deploy_add_list_remove_and_open_serving_stays_local(tmp_path: Path, tiny_model: Path) -> None:
    assert imts(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    added = imts(tmp_path, "deploy", "add", "tiny", "--base", "--name", "tiny-chat")
    assert added.returncode == 0 and "deployed tiny as tiny-chat" in added.stdout, added.stdout + added.stderr
    listed = imts(tmp_path, "deploy", "list")
    assert "tiny-chat" in listed.stdout and "base model" in listed.stdout
    again = imts(tmp_path, "deploy", "add", "tiny", "--base", "--name", "tiny-chat")
    assert again.returncode != 0 and "already deployed" in again.stdout + again.stderr
    missing = imts(tmp_path, "deploy", "add", "nothing-here")
    assert missing.returncode != 0 and "no model 'nothing-here'" in missing.stdout + missing.stderr
    assert imts(tmp_path, "deploy", "remove", "tiny-chat").returncode == 0
    assert "tiny-chat" not in imts(tmp_path, "deploy", "list").stdout
    wide_open = imts(tmp_path, "serve", "--local", "--host", "0.0.0.0")
    assert wide_open.returncode != 0 and "IMTS_SERVE_API_KEY" in wide_open.stdout + wide_open.stderr
