"""Training and evaluating a version without splits, through the real command (issue 20, item 2).

Training it used to be accepted, fail in the worker with a KeyError and burn its retry (`--inline`:
a traceback); evaluating it silently scored every row, future training rows included.
"""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import imts


def test_train_and_eval_refuse_a_version_without_splits(
    tmp_path: Path, math_file: Path, tiny_model: Path
) -> None:
    def ok(*args: str) -> str:
        out = imts(tmp_path, *args)
        assert out.returncode == 0, out.stderr + out.stdout
        return out.stdout

    ok("models", "add", str(tiny_model), "--name", "tiny")
    ok("data", "import", str(math_file), "--name", "math")
    for inline in ([], ["--inline"]):
        out = imts(tmp_path, "train", "--data", "math", "--base", "tiny", "max_steps=1", *inline)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "Traceback" not in out.stderr + out.stdout
        assert "math@1 has no 'train' split to train on: it has no splits" in out.stderr
        assert "imts data split math@1" in out.stderr and "train_split=null" in out.stderr
    # Refused at submit: nothing was queued, no run was recorded.
    assert "job_" not in ok("jobs", "list")
    assert "run_" not in ok("runs", "list")

    eval_args = ["eval", "--model", "tiny", "--limit", "2", "--max-new-tokens", "2", "--data"]
    out = imts(tmp_path, *eval_args, "math")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "math@1 has no splits, so evaluating it would score every row" in out.stderr
    assert "--split all" in out.stderr and "imts data split math@1" in out.stderr
    assert "evaluated" in ok(*eval_args, "math", "--split", "all", "--inline")

    # After a split, the default is the test split; a rollback to the unsplit version is refused again.
    ok("data", "split", "math", "--seed", "0")
    out = ok(*eval_args, "math", "--inline")
    assert "on math@2:test" in out
    ok("data", "rollback", "math", "1")
    out = imts(tmp_path, "train", "--data", "math", "--base", "tiny", "max_steps=1", "--inline")
    assert out.returncode == 2 and "math@3 has no 'train' split" in out.stderr
    out = imts(tmp_path, *eval_args, "math@2:val", "--split", "all")
    assert out.returncode == 2 and "names split 'val'" in out.stderr
