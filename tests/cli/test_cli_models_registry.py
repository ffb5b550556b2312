"""`imts models alias / alias-history --at / protect / tag / archive / delete` through the real CLI."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.cli.test_cli import imts
from tests.conftest import make_ws
from tests.registry.factory import versions


def test_alias_history_at_a_time_and_guarded_delete(tmp_path: Path) -> None:
    ctx = make_ws(tmp_path)
    v1, v2 = versions(ctx, tmp_path, 2)
    out = imts(tmp_path, "models", "alias", "tuned:1", "production")
    assert out.returncode == 0 and "tuned@production -> tuned:1" in out.stdout, out.stderr
    time.sleep(1.1)  # --at takes whole seconds
    between = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    time.sleep(1.1)
    assert imts(tmp_path, "models", "alias", v2.id, "production").returncode == 0
    out = imts(tmp_path, "models", "alias-history", "tuned", "--at", between, "--json")
    assert [h["version"] for h in json.loads(out.stdout)] == [1], out.stderr
    out = imts(tmp_path, "models", "delete", "tuned:2", "--yes")
    assert out.returncode == 2 and "alias 'production' points to it" in out.stderr
    assert imts(tmp_path, "models", "archive", "tuned:1").returncode == 0
    out = imts(tmp_path, "models", "list")
    assert "tuned:2" in out.stdout and "tuned:1" not in out.stdout and "production" in out.stdout
    assert imts(tmp_path, "models", "delete", "tuned:1", "--yes").returncode == 0
    assert not Path(str(v1.merged_path)).exists()


def test_compare_and_card(tmp_path: Path) -> None:
    ctx = make_ws(tmp_path)
    v1, _ = versions(ctx, tmp_path, 2)
    out = imts(tmp_path, "models", "compare", "tuned:1", "tuned:2", "--lang", "zh")
    assert out.returncode == 0, out.stderr
    assert "lr" in out.stdout and "0.001" in out.stdout and "无法判断" in out.stdout
    out = imts(tmp_path, "models", "card", "tuned:1", "--print")
    assert out.returncode == 0 and "language:" in out.stdout and "## 训练数据" in out.stdout, out.stderr
    assert (Path(str(v1.merged_path)) / "README.md").is_file()
