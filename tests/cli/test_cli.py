"""The real `imts` command in a subprocess: user errors are one clear line, exit code 2, nothing left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_jsonl


def imts(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMTS_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200"}
    env.pop("IMTS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "imts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )


def test_help_lists_the_nouns(tmp_path: Path) -> None:
    out = imts(tmp_path, "--help")
    assert out.returncode == 0
    for noun in ("train", "eval", "report", "demo", "models", "data", "runs"):
        assert noun in out.stdout


def test_import_list_show_split(tmp_path: Path, math_file: Path) -> None:
    out = imts(tmp_path, "data", "import", str(math_file), "--name", "math")
    assert out.returncode == 0, out.stderr
    assert "imported 400 rows as math@1" in out.stdout
    out = imts(tmp_path, "data", "split", "math", "--seed", "3")
    assert out.returncode == 0 and "split into math@2" in out.stdout
    out = imts(tmp_path, "data", "list")
    assert "math@1" in out.stdout and "math@2" in out.stdout and "train=" in out.stdout
    out = imts(tmp_path, "data", "show", "math@2:test", "--rows", "1")
    assert out.returncode == 0 and "made by split" in out.stdout and "user:" in out.stdout


def test_bad_jsonl_is_located_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": "d"\n')
    out = imts(tmp_path, "data", "import", str(bad))
    assert out.returncode == 2
    assert f"{bad}:2: malformed JSON" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout.strip() == "", out.stdout  # the failed step's bar is gone, not a frozen spinner line
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c"}])
    out = imts(tmp_path, "data", "import", str(missing))
    assert out.returncode == 2 and f"{missing}:2, field 'response': missing required field" in out.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = imts(tmp_path, "data", "import", str(empty))
    assert out.returncode == 2 and "the file is empty" in out.stderr
    listing = imts(tmp_path, "data", "list")
    assert "bad" not in listing.stdout and "missing" not in listing.stdout
    shards = tmp_path / "ws" / "artifacts" / "datasets"
    assert not shards.exists()
    assert not any((tmp_path / "ws" / "artifacts" / ".staging").iterdir())


def test_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    out = imts(tmp_path, "models", "add", str(tmp_path))
    assert out.returncode == 2 and "not a Hugging Face model folder (no config.json)" in out.stderr
    out = imts(tmp_path, "eval", "--model", "nope", "--data", "x")
    assert out.returncode == 2 and "error:" in out.stderr
    out = imts(tmp_path, "train", "--data", "x", "--base", "b", "max_steps=-1")
    assert out.returncode == 2 and "field 'max_steps'" in out.stderr


def test_data_fix_apply_and_a_bad_option(tmp_path: Path, math_file: Path) -> None:
    assert imts(tmp_path, "data", "import", str(math_file), "--name", "math").returncode == 0
    out = imts(tmp_path, "data", "fix", "math", "--apply", "--cot", "--augment", "division=0.08",
               "--review-share", "0.2", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["version"] == "math@2" and report["augment"]["division"]["after"] > 0.05
    assert report["review"]["pending"] > 0 and sum(c["rewritten"] for c in report["cot"].values()) > 40
    bad = imts(tmp_path, "data", "fix", "math", "--augment", "division")
    assert bad.returncode == 2 and "CATEGORY=SHARE" in bad.stderr and "Traceback" not in bad.stderr
    out = imts(tmp_path, "data", "fix", "math@2", "--apply", "--augment-lang", "zh=0.4", "--json")
    assert out.returncode == 0, out.stderr
    lang = json.loads(out.stdout)["augment"]["lang:zh"]
    assert lang["before"] < 0.4 <= lang["after"] and lang["accepted"] == lang["wanted"] > 0
    bad = imts(tmp_path, "data", "fix", "math", "--augment-lang", "zh=x")
    assert bad.returncode == 2 and "--augment-lang wants LANG=SHARE" in bad.stderr
    assert "Traceback" not in bad.stderr
