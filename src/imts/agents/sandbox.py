"""Run untrusted Python (a model's computation steps or code) in a contained child process.

Layers, each catching what the others might miss:

* no network: where the machine allows it (root, or unprivileged user namespaces), the child runs in
  a fresh network namespace (``unshare --net``) with no interfaces but a down loopback;
* resource limits set in the child before it starts: CPU seconds (``RLIMIT_CPU``), address space
  (``RLIMIT_AS``), file size (``RLIMIT_FSIZE``), processes (``RLIMIT_NPROC``; root is exempt from it,
  hence the audit hook's fork refusal), core dumps off;
* a wall-clock timeout; the child leads its own process group, which is killed as a whole;
* an audit hook installed before the untrusted code runs (PEP 578 hooks cannot be removed) that refuses
  sockets, subprocesses, fork/exec/spawn, signals to other processes, ctypes (and importing the C
  modules behind them), and any write, rename,
  removal or mode change outside the child's private temp dir (its working directory);
* an isolated interpreter (``-I``: no user site, no environment variables, no current dir on the path)
  with an empty environment.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# The child's prologue. The untrusted code arrives on stdin as JSON, so nothing of it is ever on a
# command line or spliced into this text.
_PROLOGUE = r"""
import json, os, sys
_root = os.path.realpath(os.getcwd())
_payload = json.loads(sys.stdin.read())
_DENY = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
         "os.system", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.", "os.startfile", "pty.",
         "resource.setrlimit", "sys.remote_exec")
_PATHS = ("os.remove", "os.unlink", "os.rmdir", "os.rename", "os.replace", "os.mkdir", "os.chmod",
          "os.chown", "os.symlink", "os.link", "os.truncate", "shutil.rmtree", "shutil.copyfile",
          "shutil.move", "os.utime")
_W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(path):
    try:
        p = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else "/proc/self/fd/%d" % path)
    except Exception:
        return False
    return p == _root or p.startswith(_root + os.sep)

_MODULES = {"_posixsubprocess", "_socket", "socket", "_ctypes", "ctypes", "_multiprocessing", "_ssl"}

def _hook(event, args):
    if event.startswith(_DENY) or event in ("os.fork", "os.vfork"):
        raise PermissionError("sandbox refused " + event)
    if event == "import" and str(args[0]).split(".")[0] in _MODULES:
        raise PermissionError("sandbox refused import " + str(args[0]))
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _W)
        if writing and path is not None and not _inside(path):
            raise PermissionError("sandbox refused writing " + str(path))
    elif event in _PATHS:
        for a in args[:2]:
            if isinstance(a, (str, bytes, os.PathLike)) and not _inside(a):
                raise PermissionError("sandbox refused " + event + " " + str(a))

sys.addaudithook(_hook)
del json  # the untrusted code starts from a clean namespace
exec(compile(_payload["code"], "<answer>", "exec"), {"__name__": "__sandbox__"})
"""


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run did. ``violation`` names the containment that stopped it, if any."""

    ok: bool
    stdout: str
    stderr: str
    violation: str | None  # "refused: <event>", "timeout", "cpu", "memory", "crash", "error"
    seconds: float


@functools.cache
def _netns_prefix() -> tuple[str, ...]:
    """``unshare --net --`` when a network namespace can be made here, else nothing."""
    tool = shutil.which("unshare")
    if tool is None:
        return ()
    try:
        ok = subprocess.run([tool, "--net", "--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return (tool, "--net", "--") if ok else ()


def _limits(cpu_s: int, memory_mb: int, file_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_python(
    code: str, timeout_s: float = 5.0, cpu_s: int = 3, memory_mb: int = 256, file_mb: int = 1
) -> SandboxResult:
    """Run ``code`` contained; never raises for anything the code does."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imts-sandbox-") as tmp:
        proc = subprocess.Popen(
            [*_netns_prefix(), sys.executable, "-I", "-S", "-c", _PROLOGUE],
            cwd=tmp,
            env={"PATH": "/nonexistent", "HOME": tmp, "TMPDIR": tmp},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills everything it started
            preexec_fn=lambda: _limits(cpu_s, memory_mb, file_mb),
        )
        try:
            out, err = proc.communicate(json.dumps({"code": code}).encode(), timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
        _kill_group(proc)  # anything left behind in the group
        stdout, stderr = out.decode(errors="replace")[-20000:], err.decode(errors="replace")[-4000:]
        seconds = time.perf_counter() - started
        if timed_out:
            return SandboxResult(False, stdout, stderr, "timeout", seconds)
        if proc.returncode == 0:
            return SandboxResult(True, stdout, stderr, None, seconds)
        return SandboxResult(False, stdout, stderr, _violation(proc.returncode, stderr), seconds)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _violation(returncode: int, stderr: str) -> str:
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if "sandbox refused" in last:
        return "refused: " + last.split("sandbox refused", 1)[1].strip()
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) and not last:
        return "cpu"
    if "MemoryError" in last:
        return "memory"
    if returncode < 0:
        return "cpu" if returncode == -signal.SIGXCPU else f"crash (signal {-returncode})"
    return "error: " + last[:200]
