"""Every `imts` command, given bad input, answers with a clean error: never a Python traceback.

The commands are enumerated from the Typer app (a new command is covered without editing this test).
Each runs twice through the app's own argument parsing (Click's runner, in this process: 80 separate
processes would take minutes): with every required value a name that does not exist, and with every
required value the path of a broken file (a truncated Parquet file). Commands without required values
get a bad value for an option instead, so that none starts long work. An exception escaping a command
(Click's runner keeps it instead of printing a traceback) fails the test as a traceback would. A few
of the cases also run as real ``imts`` processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from tests.cli.test_cli import imts
from typer.testing import CliRunner

from imts.cli.main import app
from imts.core.settings import get_settings

# A bad value for a command that has no required one (running it plainly could start long work).
NO_REQUIRED = {
    "scheduler": ["--once", "{bad}"],
    "hpo": ["--data", "{bad}", "--trials", "1"],
    "report": ["--baseline", "{bad}"],
    "demo": ["--data", "{bad}/missing.jsonl"],  # a real file would first load the base model
    "runs list": ["--kind", "{bad}"],
    "jobs list": ["--state", "{bad}"],
    "pool show": ["--no-such-option"],
    "pool costs": ["--no-such-option"],
    "pool quota": ["--max-jobs", "{bad}"],
    "models list": ["--no-such-option"],
    "data list": ["{bad}"],
    "data review list": ["--status", "{bad}"],
    "train": ["--resume", "{bad}", "--inline"],
    "serve": ["--port", "{bad}"],
    "server": ["--port", "{bad}"],
    "doctor": ["--lang", "{bad}"],
    "admin init": ["--no-such-option"],
    "users list": ["--no-such-option"],
    "tenants list": ["--no-such-option"],
    "deploy list": ["--no-such-option"],
    "audit verify": ["--no-such-option"],
    "projects list": ["--tenant", "{bad}"],
    "members list": ["--tenant", "{bad}"],
    "webhooks list": ["--tenant", "{bad}"],
    "keys create": ["--user", "{bad}"],
    "keys list": ["--user", "{bad}"],
    "audit list": ["--since", "{bad}"],
    "audit export": ["--since", "{bad}"],
    "loop list": ["--no-such-option"],
    "loop status": ["{bad}"],
    "loop log": ["{bad}"],
    "loop report": ["{bad}"],
}
# Filters that accept any value and list nothing (no error, but no traceback either).
LENIENT = {"runs list", "jobs list"}


def _commands() -> list[tuple[list[str], Any]]:
    out: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out.append((path, cmd))

    walk(typer.main.get_command(app), [])
    return out


def _argv(path: list[str], cmd: Any, bad: str) -> list[str]:
    required = [p for p in cmd.params if p.required]
    if not required:
        return [*path, *(a.format(bad=bad) for a in NO_REQUIRED[" ".join(path)])]
    args = [*path]
    for p in required:
        if p.param_type_name == "argument":
            args.append(bad)
        else:
            args += [p.opts[0], bad]
    return args


def test_every_command_refuses_bad_input_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMTS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("IMTS_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\x00\xff garbage " * 10)
    commands = _commands()
    assert len(commands) > 30  # the enumeration found the command tree
    covered = {" ".join(p) for p, c in commands if not any(q.required for q in c.params)}
    assert covered <= set(NO_REQUIRED), f"give these commands a bad value: {covered - set(NO_REQUIRED)}"
    runner = CliRunner()
    failures = []
    try:
        for path, cmd in commands:
            for bad in ("no-such-thing@9", str(broken)):
                argv = _argv(path, cmd, bad)
                out = runner.invoke(app, argv)
                escaped = out.exception is not None and not isinstance(out.exception, SystemExit)
                refused = out.exit_code in (1, 2) or " ".join(path) in LENIENT
                bug = "Traceback" in out.output or "internal error" in out.output
                if escaped or bug or not refused:
                    failures.append(
                        f"imts {' '.join(argv)} -> exit {out.exit_code}: {out.exception!r}\n{out.output}"
                    )
    finally:
        get_settings.cache_clear()
    assert not failures, "\n\n".join(failures)


def test_broken_files_through_real_processes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\x00\xff garbage " * 10)
    gz = tmp_path / "cut.jsonl.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 30)
    for argv in (
        ["data", "import", str(broken)],
        ["data", "import", str(gz)],
        ["train", "--data", str(broken), "--base", "x"],
    ):
        out = imts(tmp_path, *argv)
        assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr, out.stderr
        assert out.stderr.startswith("error:"), out.stderr


def test_an_unexpected_exception_is_one_line_not_a_traceback() -> None:
    from imts.cli.common import friendly

    demo = typer.Typer()

    @demo.command()
    @friendly
    def boom() -> None:
        raise RuntimeError("disk on fire")

    out = CliRunner().invoke(demo, [])
    assert out.exit_code == 1 and (out.exception is None or isinstance(out.exception, SystemExit))
    assert "internal error: RuntimeError: disk on fire" in out.output and "Traceback" not in out.output
