"""A chunked upload of a large dataset file through the real API server (``imts server`` on loopback).

Generates (seeded) a JSON Lines file of ``--gb`` gigabytes of prompt/response rows of about 1 KB,
starts ``imts server`` in a fresh workspace, uploads the file with ``imts.api.client.upload_file``
(8 MiB chunks, each hashed, then the whole file's hash checked and the file imported as a dataset
version), and prints the upload's and the import's MB/s and the peak RSS (VmHWM) of the server and of
its offload helper (where the import runs), each of which must stay under 500 MB whatever the file's
size. The alternative it is set against is the same file through
``imts data import`` in-process (``--compare``): the ratio says what the API costs on top.

    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/api_upload.py --gb 2 --dir /tmp/upl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark password 1"
WORDS = ["the", "a", "of", "to", "and", "in", "is", "that", "for", "it", "as", "with", "numbers", "sum"]


def make_file(path: Path, megabytes: float, seed: int = 0) -> int:
    """A JSONL file of about ``megabytes`` MB of distinct ~1 KB prompt/response rows; returns the rows."""
    rng = random.Random(seed)
    filler = [" ".join(rng.choice(WORDS) for _ in range(160)) for _ in range(64)]
    target, rows = int(megabytes * 1e6), 0
    with path.open("w") as f:
        while f.tell() < target:
            text = filler[rows % 64]
            f.write(
                json.dumps({"prompt": f"Question {rows}: {text[:300]}", "response": f"{rows} {text}"}) + "\n"
            )
            rows += 1
    return rows


def prepare(workspace: Path, tenant: str = "bench", project: str = "main") -> str:
    """A workspace with an administrator, a tenant and a project; returns the administrator's API key."""
    from imts.core.settings import Settings
    from imts.services import identity, tenancy
    from imts.services.startup import start
    from imts.store.context import platform_context, tenant_context

    ws = start(Settings(workspace=workspace, database_url=os.environ.get("IMTS_DATABASE_URL") or None))
    ctx = platform_context(ws, "root")
    identity.create_user(ctx, "root", PASSWORD, platform_admin=True)
    tenancy.create_tenant(ctx, tenant)
    tctx = tenant_context(ws, tenant, "root", "admin", platform_admin=True)
    tenancy.create_project(tctx, project)
    identity.add_member(tctx, "root", "admin")
    return identity.create_key(ctx, "bench", username="root").secret


class Server:
    """``imts server`` in its own process on a free loopback port."""

    def __init__(self, workspace: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "IMTS_WORKSPACE": str(workspace), "PYTHONPATH": str(ROOT / "src")}
        self.log = (workspace / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imts", "server", "--port", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=workspace,
        )  # fmt: skip
        deadline = time.monotonic() + 180  # a busy 2-core machine starts it slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {(workspace / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("the server did not answer within 180 s")

    def pids(self) -> list[int]:
        """The server and every process under it (its offload helpers)."""
        pids, i = [self.proc.pid], 0
        while i < len(pids):
            with contextlib.suppress(OSError):
                kids = Path(f"/proc/{pids[i]}/task/{pids[i]}/children").read_text().split()
                pids += [int(k) for k in kids]
            i += 1
        return pids

    def rss_mb(self, field: str = "VmHWM", largest: bool = False) -> float:
        """The resident memory of the server and its helpers (``VmHWM``: each one's peak so far;
        ``VmRSS``: now), in MB: summed, or the largest process's."""
        sizes = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        sizes.append(int(line.split()[1]) / 1024)
        if not sizes:
            raise RuntimeError(f"no {field} in /proc/{self.proc.pid}/status")
        return max(sizes) if largest else sum(sizes)

    def reset_peak(self) -> None:
        """Start ``VmHWM`` over from the current RSS (Linux: ``clear_refs`` 5), in every process."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL: no shutdown of any kind)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


def main() -> None:
    from imts.api.client import connect, upload_file

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/imts-api-upload"))
    ap.add_argument("--compare", action="store_true", help="also import the file in-process (the CLI's path)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    data = args.dir / "big.jsonl"
    t0 = time.monotonic()
    rows = make_file(data, args.gb * 1000)
    size_mb = data.stat().st_size / 1e6
    print(f"generated {rows} rows, {size_mb:.0f} MB in {time.monotonic() - t0:.0f} s")
    ws = args.dir / "ws"
    ws.mkdir()
    key = prepare(ws)
    server = Server(ws)
    try:
        base_rss = server.rss_mb("VmRSS")
        sent = [0.0]
        with connect(server.url, key, timeout=300) as http:
            t0 = time.monotonic()
            version = upload_file(
                http,
                "bench",
                "main",
                data,
                name="big",
                on_chunk=lambda n, total: sent.__setitem__(0, time.monotonic()),
            )
            done = time.monotonic()
        peak, largest = server.rss_mb(), server.rss_mb(largest=True)
    finally:
        server.stop()
    upload_s, import_s = sent[0] - t0, done - sent[0]
    total_s = done - t0
    print(
        f"server + offload helpers RSS at start {base_rss:.0f} MB, peak {peak:.0f} MB; the largest "
        f"process's peak {largest:.0f} MB: {'under' if largest < 500 else 'OVER'} 500 MB"
    )
    print(f"chunks sent in {upload_s:.1f} s: {size_mb / upload_s:.0f} MB/s")
    print(
        f"hash check + import in {import_s:.1f} s: {size_mb / import_s:.1f} MB/s; {version['num_rows']} rows"
    )
    print(f"upload to committed version: {total_s:.1f} s, {size_mb / total_s:.1f} MB/s")
    if args.compare:
        cli_ws = args.dir / "cli-ws"
        env = {**os.environ, "IMTS_WORKSPACE": str(cli_ws), "PYTHONPATH": str(ROOT / "src")}
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "imts", "data", "import", str(data), "--name", "big"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        cli_s = time.monotonic() - t0
        print(f"imts data import (in-process, no upload): {cli_s:.1f} s, {size_mb / cli_s:.1f} MB/s")
        print(f"ratio API upload+import / CLI import: {total_s / cli_s:.2f}x")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    if peak >= 500:
        sys.exit(1)


if __name__ == "__main__":
    main()
