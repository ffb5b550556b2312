"""A real SIGKILL during an import leaves no version, no orphan files, and earlier versions intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import write_jsonl

from imts.core.settings import Settings
from imts.data.ingest import import_file
from imts.data.versions import list_versions, load_rows
from imts.services.startup import local_context, recover_workspace


def _settings(root: Path) -> Settings:
    return Settings(workspace=root / "ws")


def _big_file(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(
                json.dumps({"id": f"r{i}", "prompt": f"What is {i} times 3? " * 4, "response": str(3 * i)})
                + "\n"
            )
    return path


def _assert_clean(root: Path, before: list[str]) -> None:
    ws = local_context(_settings(root))
    recover_workspace(ws.ws)  # the start-up step sweeps what the killed process left
    versions = list_versions(ws)
    assert [v.id for v in versions] == before
    used = {d for v in versions for d in v.shards}
    on_disk = {p.stem for p in ws.artifacts.path("datasets/shards").rglob("*.parquet")}
    assert on_disk == used, f"orphan shards: {on_disk - used}"
    assert not any(ws.artifacts.path(".staging").iterdir())
    assert len(load_rows(ws, versions[0])) == 50  # the earlier version still reads


def _start(code: str, root: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "IMTS_WORKSPACE": str(root / "ws")}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)


def test_sigkill_while_writing_shards(tmp_path: Path) -> None:
    ws = local_context(_settings(tmp_path))
    first = import_file(
        ws, write_jsonl(tmp_path / "small.jsonl", [{"prompt": f"q{i}", "response": "a"} for i in range(50)])
    )
    big = _big_file(tmp_path / "big.jsonl", 30_000)
    code = (
        "import imts.data.shards as s; s.SHARD_ROWS = 1000\n"
        "from imts.cli.main import app\n"
        f"app(['data', 'import', {str(big)!r}, '--name', 'small'])\n"
    )
    proc = _start(code, tmp_path)
    staging = ws.artifacts.path(".staging")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(staging.glob("*/shard-*.parquet"))) >= 3:  # several shards written, more to come
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _assert_clean(tmp_path, [first.id])


def test_sigkill_after_shards_moved_before_commit(tmp_path: Path) -> None:
    ws = local_context(_settings(tmp_path))
    first = import_file(
        ws, write_jsonl(tmp_path / "small.jsonl", [{"prompt": f"q{i}", "response": "a"} for i in range(50)])
    )
    big = _big_file(tmp_path / "big.jsonl", 3_000)
    # The killed process dies at the worst moment: shards already moved into the store, the version's
    # transaction not yet committed.
    code = (
        "import os, signal\n"
        "import imts.data.shards as s; s.SHARD_ROWS = 1000\n"
        "from imts.store.artifacts import LocalArtifactStore\n"
        "real = LocalArtifactStore.commit\n"
        "moved = []\n"
        "def commit(self, staged, key, content_addressed=False):\n"
        "    out = real(self, staged, key, content_addressed=content_addressed)\n"
        "    moved.append(key)\n"
        "    if len(moved) == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return out\n"
        "LocalArtifactStore.commit = commit\n"
        "from imts.cli.main import app\n"
        f"app(['data', 'import', {str(big)!r}, '--name', 'small'])\n"
    )
    proc = _start(code, tmp_path)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    assert len(list(ws.artifacts.path("datasets/shards").rglob("*.parquet"))) == 3  # 2 orphans + the first
    _assert_clean(tmp_path, [first.id])
