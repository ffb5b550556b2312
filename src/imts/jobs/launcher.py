"""The worker launcher: a fork server that starts local job workers without paying their imports.

A worker started as ``python -m imts.services.worker JOB --attempt N`` spends most of a second of CPU
importing SQLAlchemy, pydantic, the store and its job's kind before it claims the job (a zero-second
``sleep`` job: 0.92 s of CPU started so, 0.13 s forked; ``benchmarks/worker_launch.py``). On a busy
server with many short jobs that is most of what the workers cost, and it is taken from the requests the
server answers (``benchmarks/RESULTS.md``, 2026-11-28). ``imts server`` (and the ``imts scheduler``
daemon) therefore starts one launcher process
(:func:`start`), which imports the worker's modules once (``python -m imts.jobs.launcher MODULE...``) and
then forks a worker per request of :class:`~imts.jobs.executors.LocalExecutor`. Each forked worker is what
the command would have been: its own session (``setsid``), its niceness, its log file as stdout and
stderr, the environment the executor built, and its command line as its process title (the executor
finds a starting worker by it in ``/proc``). Torch is never imported by the launcher: a worker reads its
thread count when it imports torch itself.

The launcher leaves when the process that started it closes the pipe or dies (it reads end of file);
the workers it forked live on, like those started directly. When the launcher cannot launch (it died,
it answered an error), the executor starts the worker directly.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import logging
import os
import random
import runpy
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import IO, Any

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """The launcher could not start a worker (it is gone, or the fork failed)."""


class Launcher:
    """The server side of one launcher process: ``launch`` sends a request and returns the worker's pid."""

    def __init__(self, preload: Sequence[str]) -> None:
        self.preload = list(preload)
        self._lock = threading.Lock()
        self._ready = False
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, *self.preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def launch(self, argv: Sequence[str], env: dict[str, str], log_file: str, nice: int = 0) -> int:
        """Fork a worker running ``argv`` (``python -m MODULE ARGS...``); its pid."""
        if len(argv) < 3 or argv[1] != "-m":
            raise LaunchError(f"the launcher runs `python -m MODULE ...` commands, not {list(argv)!r}")
        request = {"argv": list(argv), "env": env, "log": log_file, "nice": nice}
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        with self._lock:
            try:
                self._wait_ready()
                stdin.write(json.dumps(request).encode() + b"\n")
                stdin.flush()
                reply = _read(stdout)
            except (OSError, ValueError) as exc:
                raise LaunchError(f"the worker launcher (pid {self.pid}) is gone: {exc}") from exc
        if "pid" not in reply:
            raise LaunchError(f"the worker launcher could not start a worker: {reply.get('error')}")
        return int(reply["pid"])

    def wait_ready(self) -> None:
        """Return once the launcher has imported its modules (the first launch waits for it anyway)."""
        with self._lock:
            try:
                self._wait_ready()
            except (OSError, ValueError) as exc:
                raise LaunchError(f"the worker launcher (pid {self.pid}) did not start: {exc}") from exc

    def _wait_ready(self) -> None:
        if not self._ready:
            assert self._proc.stdout is not None
            self._ready = _read(self._proc.stdout).get("ready") is True

    def close(self) -> None:
        """Close the pipe: the launcher leaves (its workers live on)."""
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _read(stream: IO[bytes]) -> dict[str, Any]:
    line = stream.readline()
    if not line:
        raise ValueError("no answer (end of file)")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError(f"unexpected answer {line!r}")
    return reply


# This process's launcher (``imts server`` starts it; without one, workers start directly).
_current: Launcher | None = None
_guard = threading.Lock()


def start(preload: Sequence[str]) -> Launcher:
    """Start this process's launcher, importing ``preload`` (module names) once; replaces a running one."""
    global _current
    with _guard:
        if _current is not None:
            _current.close()
        _current = Launcher(preload)
        return _current


def stop() -> None:
    global _current
    with _guard:
        if _current is not None:
            _current.close()
            _current = None


def launch(argv: Sequence[str], env: dict[str, str], log_file: str, nice: int = 0) -> int | None:
    """A worker forked by this process's launcher, its pid; None when no launcher was started.

    A launcher that died is started again once; when that fails too, :class:`LaunchError` (the executor
    then starts the worker directly).
    """
    global _current
    with _guard:
        current = _current
        if current is not None and not current.alive():
            log.warning("the worker launcher (pid %s) died: starting a new one", current.pid)
            current = _current = Launcher(current.preload)
    if current is None:
        return None
    return current.launch(argv, env, log_file, nice)


# --- the launcher process ------------------------------------------------------------------------


def serve(preload: Sequence[str]) -> int:
    """Import ``preload``, then fork a worker per request line on stdin, answering its pid on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server; the launcher then reads EOF
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked workers are reaped by the kernel
    for module in preload:
        importlib.import_module(module)
    if "torch" in sys.modules:  # a worker sets its thread count before torch reads it: never here
        print(f"imts launcher: {preload} imported torch; refusing to fork workers from it", file=sys.stderr)
        return 2
    gc.collect()
    gc.freeze()  # what the workers inherit is never scanned (nor its pages copied) by their collector
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            pid = os.fork()
        except (OSError, ValueError) as exc:
            out.write(json.dumps({"error": str(exc)}).encode() + b"\n")
            out.flush()
            continue
        if pid == 0:
            _child(request)  # never returns
        out.write(json.dumps({"pid": pid}).encode() + b"\n")
        out.flush()
    return 0


def _text(fd: int, mode: str, errors: str = "strict") -> io.TextIOWrapper:
    """A text stream on ``fd`` (line-buffered when written), not closing it."""
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors, line_buffering=mode == "w")


def _child(request: dict[str, Any]) -> None:
    """In the forked worker: become the process the command line describes, run it, exit."""
    code: int = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.closerange(3, 1 << 16)
        sys.stdin = _text(0, "r")
        sys.stdout = _text(1, "w")
        sys.stderr = _text(2, "w", errors="backslashreplace")
        if request.get("nice"):
            os.nice(int(request["nice"]))
        argv = [str(a) for a in request["argv"]]
        try:  # before the environment changes: the title takes the place of the original one
            import setproctitle

            setproctitle.setproctitle(" ".join(argv))  # how the executor finds a starting worker
        except ImportError:
            pass
        os.environ.clear()
        os.environ.update(request["env"])
        from imts.core.settings import get_settings

        get_settings.cache_clear()  # read again from the worker's own environment
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        module, args = argv[2], argv[3:]
        sys.argv = [module, *args]
        entry = getattr(sys.modules.get(module), "run", None)
        try:
            if callable(entry):  # a preloaded entry module's ``run(argv) -> int`` (the worker's)
                code = int(entry(args) or 0)
            else:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
