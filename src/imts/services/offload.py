"""The API server's helper processes: a request's heavy work runs there, niced, while the server's own
process keeps answering.

Every request of ``imts server`` is served by one Python process: what one request computes (an
upload's import: parsing, hashing, Arrow shards, statistics) holds the interpreter that every other
request needs, and on a small machine it also holds a core. ``imts server`` starts a few helper
processes (``--offload N``, ``IMTS_OFFLOAD_PROCESSES``) at a lower CPU priority (``IMTS_OFFLOAD_NICE``)
and routes call :func:`call`, which runs the service function there with the same context (principal,
role, tenant, project, client address) on the same database and artifact store, and returns its result
or raises its error (:class:`~imts.core.errors.ImtsError` keeps its fields across the boundary). Without
helpers (tests in one process, ``--offload 0``) :func:`call` runs the function in place.

A helper killed mid-call leaves what a killed import leaves: staging that start-up recovery sweeps, no
version recorded; the request answers 500 and the next call gets a fresh helper. A server killed
outright takes its helpers with it within a second.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from imts.core.settings import Settings
from imts.store.context import Context
from imts.store.workspace import Workspace

log = logging.getLogger(__name__)
T = TypeVar("T")

_pool: ProcessPoolExecutor | None = None
_spec: tuple[int, int] = (0, 0)
_lock = threading.Lock()


def start(processes: int, nice: int) -> None:
    """Start ``processes`` helpers ``nice`` steps nicer than this process (0 processes: calls run in
    place), warmed up."""
    global _pool, _spec
    with _lock:
        stop()
        _spec = (processes, nice)
        if processes <= 0:
            return
        # spawn: the helpers are the server's own children (no fork server in between that outlives it).
        ctx = multiprocessing.get_context("spawn")
        _pool = ProcessPoolExecutor(
            processes, mp_context=ctx, initializer=_init, initargs=(nice, os.getpid())
        )
        # Start every helper now: each imports the services once, before the first request waits on it.
        for f in [_pool.submit(os.getpid) for _ in range(processes)]:
            f.result()


def stop() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def call(ctx: Context, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(ctx, *args, **kwargs)`` in a helper process (``fn`` a module-level function, the arguments
    and the result picklable), or here when no helper runs."""
    pool = _pool
    if pool is None:
        return fn(ctx, *args, **kwargs)
    fields = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.name != "ws"}
    try:
        return pool.submit(_run, ctx.settings, fields, fn, args, kwargs).result()
    except BrokenProcessPool:
        log.warning("an offload helper died; starting fresh ones")
        with _lock:
            if _pool is pool:
                start(*_spec)
        raise


# In a helper: the workspace per database, opened once.
_workspaces: dict[str, Workspace] = {}


def _init(nice: int, server: int) -> None:
    if nice:
        os.nice(nice)
    # A server killed outright (SIGKILL) must not leave its helpers behind: each leaves on its own once
    # its parent is gone.
    threading.Thread(target=_leave_with, args=(server,), name="imts-offload-parent", daemon=True).start()
    import imts.data.service  # noqa: F401  (what the server offloads: imported once, now)


def _leave_with(server: int) -> None:
    while os.getppid() == server:
        time.sleep(1.0)
    os._exit(0)


def _run(
    settings: Settings,
    fields: dict[str, Any],
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    from imts.services.startup import start as open_workspace

    ws = _workspaces.get(settings.db_url)
    if ws is None:
        ws = _workspaces[settings.db_url] = open_workspace(settings, recover=False)
    return fn(Context(ws, **fields), *args, **kwargs)
