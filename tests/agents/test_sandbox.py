from __future__ import annotations

from pathlib import Path

import pytest

from imts.agents.judges.base import JudgeItem
from imts.agents.judges.math import MathJudge
from imts.agents.sandbox import run_python


def test_plain_code_runs_and_may_use_its_temp_dir() -> None:
    res = run_python("open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read(), 6 * 7)")
    assert res.ok and res.violation is None and res.stdout.split() == ["ok", "42"]


@pytest.mark.parametrize(
    ("code", "violation"),
    [
        ("import socket\nsocket.create_connection(('127.0.0.1', 5432))", "refused: import socket"),
        ("import os\nwhile True:\n    os.fork()", "refused: os.fork"),
        ("import subprocess\nsubprocess.run(['true'])", "refused: import _posixsubprocess"),
        ("import os\nos.system('true')", "refused: os.system"),
        ("import shutil\nshutil.rmtree('/tmp/anything')", "refused: shutil.rmtree /tmp/anything"),
    ],
)
def test_escapes_are_refused(code: str, violation: str) -> None:
    res = run_python(code, timeout_s=10)
    assert not res.ok and res.violation == violation


def test_writing_outside_the_temp_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    res = run_python(f"open({str(target)!r}, 'w').write('x')")
    assert res.violation == f"refused: writing {target}" and not target.exists()


def test_endless_loop_and_memory_hog_are_stopped() -> None:
    loop = run_python("while True:\n    pass", timeout_s=1.5, cpu_s=1)
    assert not loop.ok and loop.violation in ("timeout", "cpu") and loop.seconds < 5
    hog = run_python("x = bytearray(4 << 30)", memory_mb=128)
    assert not hog.ok and hog.violation == "memory"


def test_math_judge_reports_contained_code_and_keeps_going() -> None:
    items = [
        JudgeItem("loop", "q", "```python\nwhile True:\n    pass\n```\nThe answer is 4.", "4"),
        JudgeItem("net", "q", "```python\nimport socket\nprint(3)\n```\nThe answer is 3.", "3"),
        JudgeItem("file", "q", "```python\nopen('/etc/imts_x', 'w')\nprint(3)\n```\nThe answer is 3.", "3"),
        JudgeItem("fine", "q", "```python\nprint(12 * 3)\n```\nThe answer is 36.", "36"),
        JudgeItem("steps", "q", "12 * 3 = 36, 36 - 6 = 31. The answer is 31.", "30"),
    ]
    got = {j.item_id: j for j in MathJudge(timeout_s=1.5, cpu_s=1).judge(items)}
    assert got["loop"].verdict == "unverifiable" and got["loop"].rationale.endswith(("timeout", "cpu"))
    assert got["net"].rationale == "the answer's code was stopped: refused: import socket"
    assert got["file"].rationale == "the answer's code was stopped: refused: writing /etc/imts_x"
    assert got["fine"].verdict == "correct"
    assert got["steps"].verdict == "wrong_answer" and got["steps"].first_wrong_step == 2
    assert not Path("/etc/imts_x").exists()
