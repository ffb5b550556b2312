"""Run untrusted Python (a model's computation steps or code) confined, one snippet or thousands.

Two layers, each catching what the other might miss:

1. **Confinement** by bubblewrap (``bwrap``, what Flatpak uses): new user, pid, network, IPC, UTS
   and cgroup namespaces; the child runs as ``nobody`` (uid 65534) with every capability dropped and
   no new privileges, in its own session, killed with its parent. Its file system is a read-only
   tmpfs holding only the Python runtime (the interpreter's prefix and the system library folders),
   ``/dev/null``, ``/dev/urandom`` and a private tmpfs scratch folder: no workspace, no ``/home``,
   no ``/root``, no ``/etc``, no ``/proc`` at all (so no other process to read or signal, and no
   ``/proc/self/root``). The environment is empty (``--clearenv``). Where libseccomp is loadable
   (``pyseccomp``), every worker also gets a seccomp filter refusing sockets, fork/clone of a process,
   exec, signals, ptrace, namespaces, mounts, keyrings, BPF and io_uring.
2. **Inside**: an isolated interpreter (``-I -S``), per-item resource limits (CPU seconds, address
   space, file size, no core dumps), a wall-clock deadline, and a PEP 578 audit hook installed before
   the untrusted code runs that refuses sockets, subprocesses, fork/exec, signals, ctypes (and the C
   modules behind them), any write outside the item's scratch folder and any read or listing outside
   the runtime and that folder — so a violation comes back named ("refused: reading /etc/shadow").

Where the confinement cannot be had (no ``bwrap``, user namespaces disabled), untrusted code is
refused with :class:`SandboxUnavailable`, unless an admin sets ``IMTS_SANDBOX_UNCONFINED=1``: then
layer 2 runs alone (plus a network namespace where ``unshare --net`` works, and the seccomp filter).

Batching: :func:`run_batch` runs many snippets in one confined process. A supervisor inside forks a
fresh worker per snippet (its own limits, scratch folder, deadline and result), so one snippet that
crashes, loops or blows its memory costs only its own result; should the supervisor itself die, the
remaining snippets go to a new one.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imts.core.errors import ImtsError
from imts.core.settings import Settings, get_settings

_CHILD = (Path(__file__).parent / "sandbox_child.py").read_text(encoding="utf-8")
_NOBODY = "65534"


class SandboxUnavailable(ImtsError):
    """Untrusted code was refused: no confinement here and no explicit opt-in to run without it."""


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run did. ``violation`` names the containment that stopped it, if any."""

    ok: bool
    stdout: str
    stderr: str
    violation: str | None  # "refused: <event>", "timeout", "cpu", "memory", "crash", "error"
    seconds: float


@dataclass(frozen=True)
class Confinement:
    """How untrusted code runs on this installation.

    Attributes:
        mode: ``bubblewrap`` (confined), ``unconfined`` (no confinement, admin opted in) or
            ``unavailable`` (no confinement: untrusted code is refused).
        seccomp: whether workers get the seccomp filter.
        detail: why, in words (the tool found, or what failed).
    """

    mode: Literal["bubblewrap", "unconfined", "unavailable"]
    seccomp: bool
    detail: str
    tool: str = ""  # the bwrap executable, when confined

    @property
    def runs_code(self) -> bool:
        return self.mode != "unavailable"


def _python() -> str:
    """The real interpreter (a venv's ``bin/python`` is a link to it); it runs without the venv."""
    return os.path.realpath(sys.executable)


def _runtime_roots() -> list[str]:
    """Folders the confined interpreter reads: its prefix and the system libraries it links."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    roots |= {d for d in ("/usr/lib", "/usr/lib64") if os.path.isdir(d)}
    return sorted(roots)


def _bwrap_args(bwrap: str, scratch_mb: int) -> list[str]:
    args = [
        bwrap,
        "--unshare-all",  # user, pid, net, ipc, uts, cgroup
        "--unshare-user",
        "--uid",
        _NOBODY,
        "--gid",
        _NOBODY,
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--hostname",
        "sandbox",
    ]
    for root in _runtime_roots():
        args += ["--ro-bind", root, root]
    for link in ("/lib", "/lib64", "/bin"):  # merged-/usr links, so the ELF loader path resolves
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link) and link != "/bin":
            args += ["--ro-bind", link, link]
    args += ["--dev-bind", "/dev/null", "/dev/null", "--dev-bind", "/dev/urandom", "/dev/urandom"]
    args += ["--size", str(scratch_mb << 20), "--tmpfs", "/scratch", "--chdir", "/scratch"]
    return [*args, "--remount-ro", "/", "--"]


@functools.cache
def _probe_bwrap(bwrap: str, python: str) -> tuple[bool, str]:
    tool = shutil.which(bwrap)
    if tool is None:
        return False, f"bubblewrap not found ('{bwrap}'; Debian package bubblewrap, `make system`)"
    try:
        res = subprocess.run(
            [*_bwrap_args(tool, 1), python, "-I", "-S", "-c", "pass"],
            capture_output=True,
            env={},
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{tool} did not run: {exc}"
    if res.returncode != 0:
        why = res.stderr.decode(errors="replace").strip().splitlines()
        return False, f"{tool} cannot confine here: {why[-1] if why else res.returncode}"
    return True, tool


@functools.cache
def _seccomp_program() -> bytes | None:
    """The workers' BPF filter (refuse with EPERM what checking arithmetic never needs), or None."""
    try:
        import pyseccomp as sc

        deny = sc.ERRNO(1)
        f = sc.SyscallFilter(sc.ALLOW)
        for name in (
            "socket", "socketpair", "fork", "vfork", "execve", "execveat", "kill", "tkill", "tgkill",
            "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
            "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root",
            "chroot", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
            "userfaultfd", "io_uring_setup", "personality", "kexec_load", "init_module",
            "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct",
        ):  # fmt: skip
            f.add_rule(deny, name)
        # clone: threads only (CLONE_THREAD set); clone3 hides its flags in memory, so it is reported
        # missing and the C library falls back to clone.
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, 0x00010000, 0))
        f.add_rule(sc.ERRNO(38), "clone3")
        with tempfile.TemporaryFile() as out:
            f.export_bpf(out)
            out.seek(0)
            return out.read()
    except Exception:  # no libseccomp on this machine: the audit hook and the namespaces remain
        return None


def confinement(settings: Settings | None = None) -> Confinement:
    """How untrusted code runs here (probed once per process and bubblewrap path)."""
    settings = settings or get_settings()
    seccomp = _seccomp_program() is not None
    ok, detail = _probe_bwrap(settings.sandbox_bwrap, _python())
    if ok:
        return Confinement("bubblewrap", seccomp, f"bubblewrap ({detail})", detail)
    if settings.sandbox_unconfined:
        return Confinement("unconfined", seccomp, f"{detail}; IMTS_SANDBOX_UNCONFINED=1: running without it")
    return Confinement("unavailable", seccomp, detail)


@functools.cache
def _netns_prefix() -> tuple[str, ...]:
    """``unshare --net --`` when a network namespace can be made here (unconfined mode), else nothing."""
    tool = shutil.which("unshare")
    if tool is None:
        return ()
    try:
        ok = subprocess.run([tool, "--net", "--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return (tool, "--net", "--") if ok else ()


def run_python(
    code: str,
    timeout_s: float = 5.0,
    cpu_s: int = 3,
    memory_mb: int = 256,
    file_mb: int = 1,
    *,
    settings: Settings | None = None,
) -> SandboxResult:
    """Run ``code`` contained; never raises for anything the code does.

    Raises:
        SandboxUnavailable: no confinement here and ``IMTS_SANDBOX_UNCONFINED`` is not set.
    """
    return run_batch([code], timeout_s, cpu_s, memory_mb, file_mb, settings=settings)[0]


def run_batch(
    codes: Sequence[str],
    timeout_s: float = 5.0,
    cpu_s: int = 3,
    memory_mb: int = 256,
    file_mb: int = 1,
    *,
    settings: Settings | None = None,
    audit_hook: bool = True,
) -> list[SandboxResult]:
    """Run every snippet contained, each with its own limits and result, in as few processes as can be.

    Args:
        codes: the snippets, run in order, each in a fresh worker and scratch folder.
        timeout_s, cpu_s, memory_mb, file_mb: limits per snippet.
        settings: where to read the sandbox settings from (default: the process's).
        audit_hook: False only to test the confinement alone (the attack suite).

    Raises:
        SandboxUnavailable: no confinement here and ``IMTS_SANDBOX_UNCONFINED`` is not set.
    """
    if not codes:
        return []
    conf = confinement(settings)
    if not conf.runs_code:
        raise SandboxUnavailable(
            f"untrusted code refused: no confinement ({conf.detail}); install bubblewrap (`make system`) "
            "or let an admin set IMTS_SANDBOX_UNCONFINED=1 to run it with only the audit hook and limits"
            f" / 拒绝运行不受信任的代码：没有隔离环境（{conf.detail}）；请安装 bubblewrap"
            "（`make system`），或由管理员设置 IMTS_SANDBOX_UNCONFINED=1 仅以审计钩子和资源限制运行"
        )
    program = _seccomp_program()
    results: list[SandboxResult] = []
    while len(results) < len(codes):
        results += _supervise(
            list(codes[len(results) :]), conf, program, timeout_s, cpu_s, memory_mb, file_mb, audit_hook
        )
    return results


def _supervise(
    codes: list[str],
    conf: Confinement,
    program: bytes | None,
    timeout_s: float,
    cpu_s: int,
    memory_mb: int,
    file_mb: int,
    audit: bool,
) -> list[SandboxResult]:
    """One confined supervisor over ``codes``; the results it gave (at least one)."""
    started = time.perf_counter()
    python = _python()
    with tempfile.TemporaryDirectory(prefix="imts-sandbox-") as tmp:
        if conf.mode == "bubblewrap":
            prefix, cwd, scratch = _bwrap_args(conf.tool, max(16, 4 * file_mb)), tmp, "/scratch"
        else:
            prefix, cwd, scratch = list(_netns_prefix()), tmp, os.path.realpath(tmp)
        payload = {
            "items": codes,
            "timeout_s": timeout_s,
            "cpu_s": cpu_s,
            "memory_mb": memory_mb,
            "file_mb": file_mb,
            "audit": audit,
            "bpf": base64.b64encode(program).decode() if program else None,
            "readable": [*_runtime_roots(), "/dev/null", "/dev/urandom", scratch],
        }
        proc = subprocess.Popen(
            [*prefix, python, "-I", "-S", "-c", _CHILD],
            cwd=cwd,
            env={},  # the parent's environment (API keys, database URLs) reaches nothing untrusted
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: killed as a whole
        )
        budget = len(codes) * (timeout_s + 1.0) + 30.0
        try:
            out, err = proc.communicate(json.dumps(payload).encode(), timeout=budget)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
        _kill_group(proc)
    results = [_result(json.loads(line)) for line in out.decode(errors="replace").splitlines() if line]
    if len(results) < len(codes):  # the supervisor died: the item in flight is lost, not the others
        why = err.decode(errors="replace").strip()[-4000:]
        seconds = time.perf_counter() - started - sum(r.seconds for r in results)
        results.append(SandboxResult(False, "", why, f"crash (sandbox exit {proc.returncode})", seconds))
    return results


def _result(row: dict[str, object]) -> SandboxResult:
    stdout, stderr = str(row["out"])[-20000:], str(row["err"])[-4000:]
    seconds, rc = float(row["seconds"]), int(row["rc"])  # type: ignore[arg-type]
    if row["timeout"]:
        return SandboxResult(False, stdout, stderr, "timeout", seconds)
    if rc == 0:
        return SandboxResult(True, stdout, stderr, None, seconds)
    return SandboxResult(False, stdout, stderr, _violation(rc, stderr), seconds)


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
    return "error: " + last[:200] if last else f"exit {returncode}"
