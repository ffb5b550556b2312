"""The program that runs inside the confinement (never imported by IMTS; its source is the ``-c`` of
the confined interpreter, which runs it with ``-I -S``: standard library only).

It is a small supervisor: it reads a batch of snippets as JSON on stdin, then for each one forks a
worker that drops into the per-item limits (rlimits, the seccomp filter, the audit hook) and runs the
snippet in its own scratch folder, while the supervisor collects the worker's output under a
wall-clock deadline. Results go back as one JSON line per item on a file descriptor the workers have
closed. The supervisor itself never runs untrusted code and installs no hook: a hook cannot be
removed, and it must still fork.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import selectors
import shutil
import signal
import sys
import time
from typing import Any

# Events refused outright, by prefix. Signals, processes, sockets and foreign calls are never needed
# to check arithmetic or a small program.
_DENY = (
    "socket.",
    "subprocess.",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "os.forkpty",
    "os.system",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "ctypes.",
    "os.startfile",
    "pty.",
    "resource.setrlimit",
    "sys.remote_exec",
    "sys.setprofile",
    "sys.settrace",
    "os.chdir",
    "mmap.",
)
_PATHS = (
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.rename",
    "os.replace",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.symlink",
    "os.link",
    "os.truncate",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
    "os.utime",
)
_MODULES = {"_posixsubprocess", "_socket", "socket", "_ctypes", "ctypes", "_multiprocessing", "_ssl", "mmap"}
_W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_TAIL = 65536  # bytes of each stream kept per item


def _within(path: Any, roots: tuple[str, ...]) -> bool:
    try:
        p = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _make_hook(scratch: str, readable: tuple[str, ...]) -> Any:
    writable = (scratch,)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event.startswith(_DENY) or event in ("os.fork", "os.vfork"):
            raise PermissionError("sandbox refused " + event)
        if event == "import" and str(args[0]).split(".")[0] in _MODULES:
            raise PermissionError("sandbox refused import " + str(args[0]))
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return  # an already open descriptor: its path was checked when it was opened
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _W)
            if writing and not _within(path, writable):
                raise PermissionError("sandbox refused writing " + os.fsdecode(path))
            if not writing and not _within(path, readable):
                raise PermissionError("sandbox refused reading " + os.fsdecode(path))
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args and args[0] is not None else "."
            if not isinstance(path, int) and not _within(path, readable):
                raise PermissionError("sandbox refused listing " + os.fsdecode(path))
        elif event in _PATHS:
            for a in args[:2]:
                if isinstance(a, str | bytes | os.PathLike) and not _within(a, writable):
                    raise PermissionError("sandbox refused " + event + " " + os.fsdecode(a))

    return hook


def _seccomp_loader(program: bytes) -> Any:
    """A function that stacks the parent's BPF program on the calling process (a forked worker)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program, len(program))

    class Fprog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    fprog = Fprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))

    def load() -> None:
        # PR_SET_NO_NEW_PRIVS (38), then PR_SET_SECCOMP (22) with SECCOMP_MODE_FILTER (2)
        if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
            os.write(2, b"sandbox: the seccomp filter could not be loaded\n")
            os._exit(70)

    return load


def _worker(cfg: dict[str, Any], code: str, scratch: str, seccomp: Any) -> None:
    """In the forked child: limits, filter, hook, then the snippet. Never returns."""
    os.closerange(3, 1 << 16)  # the results channel and the other pipes are the supervisor's alone
    os.chdir(scratch)
    mem, cpu, size = cfg["memory_mb"] << 20, cfg["cpu_s"], cfg["file_mb"] << 20
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if seccomp is not None:
        seccomp()
    for name in [m for m in sys.modules if m.split(".")[0] in _MODULES]:
        del sys.modules[name]  # reachable through gc all the same, but every call of them is refused
    if cfg["audit"]:
        sys.addaudithook(_make_hook(os.path.realpath(scratch), (*cfg["readable"], scratch)))
    status = 0
    try:
        exec(compile(code, "<answer>", "exec"), {"__name__": "__sandbox__"})
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        status = 1
        try:
            traceback.print_exc()
        except BaseException:
            os.write(2, b"sandbox: the error could not be printed\n")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status & 0xFF)


def _collect(pid: int, out_r: int, err_r: int, deadline: float) -> tuple[bytes, bytes, int, bool]:
    streams = {out_r: bytearray(), err_r: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in streams:
        sel.register(fd, selectors.EVENT_READ)
    timed_out = False
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(left):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fd)
                continue
            buf = streams[key.fd]
            buf += chunk
            del buf[:-_TAIL]
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    sel.close()
    _, status = os.waitpid(pid, 0)
    for fd in streams:
        os.close(fd)
    return bytes(streams[out_r]), bytes(streams[err_r]), os.waitstatus_to_exitcode(status), timed_out


def main() -> None:
    cfg = json.loads(sys.stdin.buffer.read())
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    root = os.path.realpath(os.getcwd())
    seccomp = _seccomp_loader(base64.b64decode(cfg["bpf"])) if cfg["bpf"] else None
    # What verifiers import, loaded once here so that each forked worker starts with it (pure modules:
    # the hook still judges everything they are asked to do).
    for name in ("decimal", "fractions", "itertools", "math", "re", "statistics"):
        __import__(name)
    for n, code in enumerate(cfg["items"]):
        started = time.monotonic()
        scratch = os.path.join(root, f"item-{n}")
        os.mkdir(scratch)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            _worker(cfg, code, scratch, seccomp)
        os.close(out_w)
        os.close(err_w)
        out, err, rc, timed_out = _collect(pid, out_r, err_r, started + cfg["timeout_s"])
        shutil.rmtree(scratch, ignore_errors=True)
        row = {
            "rc": rc,
            "timeout": timed_out,
            "out": out.decode(errors="replace"),
            "err": err.decode(errors="replace"),
            "seconds": time.monotonic() - started,
        }
        results.write(json.dumps(row) + "\n")
        results.flush()


if __name__ == "__main__":
    main()
