"""Data operations split over a version's shards: in this process, or as Ray tasks on the pool's cluster.

A *shard operation* is a function from an Arrow table (a piece of a version: rows ``start..stop`` of one
Parquet shard, optionally one split) to a picklable result. Operations are registered by name (dedup
hashing, MiniLM embedding; the PII scan registers itself the same way) and ``map_shards`` runs one over
a version's pieces and yields the results **in row order**, so a caller that consumes them gets the
same result as one process, whichever executor ran them:

* the pool file says ``executor: local`` (or there is no pool file): pieces run here, one after another;
* it says ``executor: ray`` with ``ray_address``: pieces run as Ray tasks (``num_cpus`` of the operation,
  SPREAD over the nodes, retried when their worker or node dies). Each task reads its piece from the
  artifact store itself; only the results travel. The Ray driver is a child process (as for the Ray
  executor's bridge): a driver whose head goes away is ended by Ray, and the caller must outlive it; a
  cluster that cannot be reached raises ``RayUnavailable``.

Registering an operation (in the module that owns it, at import time)::

    parallel.register("pii_scan", scan_table, columns=lambda fmt: ["id", *TEXT_COLUMNS[fmt]])

A Ray worker imports the function's module before it looks the name up, so nothing else is needed.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imts.core.errors import ImtsError, InputError
from imts.core.settings import Settings
from imts.data.versions import DataRef, VersionInfo, shard_path
from imts.jobs.pool import load_pool
from imts.store.context import Context

LOCAL_PIECE_ROWS = 5_000  # rows per piece in this process: the batch size of ``versions.iter_tables``
RAY_PIECE_ROWS = 10_000  # rows per Ray task: a shard's row group, so a task reads whole row groups
CONNECT_TIMEOUT_S = 30.0  # how long the Ray driver may take to join the cluster
TASK_RETRIES = 2  # a task whose worker or node died runs again elsewhere


@dataclass(frozen=True)
class ShardOp:
    """A registered operation: ``fn(table, **params)`` per piece; ``columns(format)`` names the columns
    it reads (None: all); ``num_cpus`` is what one Ray task asks for."""

    name: str
    fn: Callable[..., Any]
    columns: Callable[[str], list[str]] | None = None
    num_cpus: float = 1.0


_OPS: dict[str, ShardOp] = {}


def register(
    name: str,
    fn: Callable[..., Any],
    columns: Callable[[str], list[str]] | None = None,
    num_cpus: float = 1.0,
) -> ShardOp:
    """Register (or replace) the shard operation ``name``; ``fn`` must be a module-level function."""
    op = ShardOp(name, fn, columns, num_cpus)
    _OPS[name] = op
    return op


def get(name: str) -> ShardOp:
    """The operation registered as ``name``.

    Raises:
        InputError: no operation has that name (the message lists those that do).
    """
    if name not in _OPS:
        known = ", ".join(sorted(_OPS)) or "none"
        raise InputError(f"unknown data operation '{name}' (registered: {known})", field="operation")
    return _OPS[name]


def names() -> list[str]:
    return sorted(_OPS)


@dataclass(frozen=True)
class Piece:
    """Rows ``start..stop`` of one shard file (of one split when ``split`` is set)."""

    path: str
    start: int
    stop: int
    columns: tuple[str, ...] | None = None
    split: str | None = None


def read_piece(piece: Piece) -> pa.Table:
    """The piece's rows, reading only the row groups it overlaps."""
    f = pq.ParquetFile(piece.path)
    wanted = None if piece.columns is None else list(piece.columns)
    read = None if wanted is None else list(dict.fromkeys([*wanted, *(["split"] if piece.split else [])]))
    groups, first, at = [], 0, 0
    for g in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        if at < piece.stop and at + n > piece.start:
            first = first if groups else at
            groups.append(g)
        at += n
    table = f.read_row_groups(groups, columns=read).slice(piece.start - first, piece.stop - piece.start)
    if piece.split:
        table = table.filter(pc.equal(table["split"], piece.split))
        if wanted is not None and "split" not in wanted:
            table = table.drop_columns(["split"])
    return table


def pieces(ctx: Context, source: DataRef | VersionInfo, op: ShardOp, rows: int) -> list[Piece]:
    """The version's shards cut into pieces of at most ``rows`` rows, in stored order."""
    version, split = (source.version, source.split) if isinstance(source, DataRef) else (source, None)
    columns = tuple(op.columns(version.format)) if op.columns is not None else None
    out = []
    for digest in version.shards:
        path = shard_path(ctx, digest)
        n = pq.ParquetFile(path).metadata.num_rows
        out += [Piece(str(path), s, min(n, s + rows), columns, split) for s in range(0, n, rows)]
    return out


def run_piece(op: ShardOp, piece: Piece, params: dict[str, Any]) -> Any:
    """What every worker runs: the operation on the piece's rows."""
    return op.fn(read_piece(piece), **params)


def ray_address(settings: Settings) -> str | None:
    """The Ray cluster's address when the pool runs on Ray, else None (this process)."""
    pool = load_pool(settings.pool_file)
    return pool.ray_address if pool.executor == "ray" else None


@dataclass
class ShardMap:
    """One operation over one version; iterate for the per-piece results in row order. ``executor``
    says where they ran (``local`` or ``ray``); ``nodes`` the Ray node of each piece done so far."""

    op: ShardOp
    pieces: list[Piece]
    params: dict[str, Any]
    address: str | None
    nodes: list[str] = field(default_factory=list)

    @property
    def executor(self) -> str:
        return "ray" if self.address else "local"

    def __iter__(self) -> Iterator[Any]:
        if self.address is None:
            for p in self.pieces:
                yield run_piece(self.op, p, self.params)
            return
        for node, value in _on_ray(self.address, self.op, self.pieces, self.params):
            self.nodes.append(node)
            yield value


def map_shards(
    ctx: Context,
    source: DataRef | VersionInfo,
    name: str,
    params: dict[str, Any] | None = None,
    rows_per_piece: int | None = None,
) -> ShardMap:
    """Run the operation ``name`` over the version's pieces where the pool says (see the module).

    Args:
        source: a version, or one split of it.
        params: keyword arguments of the operation (picklable).
        rows_per_piece: rows per piece (default: ``RAY_PIECE_ROWS`` on Ray, else ``LOCAL_PIECE_ROWS``).

    Returns:
        A ``ShardMap``: iterating it runs the pieces and yields their results in row order.
    """
    op = get(name)
    address = ray_address(ctx.settings)
    rows = rows_per_piece or (RAY_PIECE_ROWS if address else LOCAL_PIECE_ROWS)
    if rows < 1:
        raise InputError(f"rows per piece must be at least 1, not {rows}", field="rows_per_piece")
    return ShardMap(op, pieces(ctx, source, op, rows), dict(params or {}), address)


# --- on Ray ---------------------------------------------------------------------------------------


class _Driver:
    """A child process joined to the cluster as a Ray driver, serving one run at a time. Kept for the
    next run (``_IDLE``): its Ray workers stay warm (IMTS imported, the embedding model loaded)."""

    def __init__(self, address: str) -> None:
        from imts.jobs.ray_executor import RayUnavailable, _refused

        refused = _refused(address)  # a head that is down answers nothing: say so now
        if refused:
            raise RayUnavailable(f"Ray cluster at {address} unreachable: {refused}")
        mp = multiprocessing.get_context("spawn")
        self.address = address
        self.conn, theirs = mp.Pipe()
        self.proc = mp.Process(target=_driver_main, args=(address, theirs), name="imts-ray-data", daemon=True)
        self.proc.start()
        theirs.close()
        kind, value = self.receive(CONNECT_TIMEOUT_S)
        if kind != "ready":
            self.close()
            raise RayUnavailable(f"Ray cluster at {address} unreachable: {value}")

    def run(self, op: ShardOp, todo: list[Piece], params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        from imts.jobs.ray_executor import RayUnavailable

        self.conn.send(("run", op.fn.__module__, op.name, op.num_cpus, todo, params))
        for _ in todo:
            kind, value = self.receive(None)
            if kind == "unreachable":
                raise RayUnavailable(f"Ray cluster at {self.address} unreachable: {value}")
            if kind == "error":
                raise ImtsError(f"data operation '{op.name}' failed on Ray: {value}")
            yield value

    def receive(self, timeout: float | None) -> tuple[str, Any]:
        from imts.jobs.ray_executor import RayUnavailable

        waited = 0.0
        while not self.conn.poll(0.5):
            waited += 0.5
            if not self.proc.is_alive() and not self.conn.poll(0):
                raise RayUnavailable(f"the Ray driver process ended (exit code {self.proc.exitcode})")
            if timeout is not None and waited >= timeout:
                raise RayUnavailable(f"no connection to {self.address} within {timeout:g}s")
        try:
            msg: tuple[str, Any] = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise RayUnavailable(f"the Ray driver process ended ({exc})") from exc
        return msg

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(("close",))
        self.conn.close()
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


_IDLE: dict[str, list[_Driver]] = {}
_LOCK = threading.Lock()


@atexit.register
def _close_idle() -> None:
    """Kept drivers leave the cluster cleanly when this process ends (not by multiprocessing's SIGTERM)."""
    with _LOCK:
        drivers = [d for ds in _IDLE.values() for d in ds]
        _IDLE.clear()
    for d in drivers:
        d.close()


def _on_ray(
    address: str, op: ShardOp, todo: list[Piece], params: dict[str, Any]
) -> Iterator[tuple[str, Any]]:
    """(node id, result) per piece, in order, from an idle driver of the cluster or a new one. A kept
    driver that fails before its first result (its cluster restarted meanwhile) is replaced once."""
    from imts.jobs.ray_executor import RayUnavailable

    if not todo:
        return
    for fresh in (False, True):
        with _LOCK:
            idle = _IDLE.get(address) or []
            driver = idle.pop() if idle and not fresh else None
        reused = driver is not None
        if driver is None or not driver.proc.is_alive():
            driver = _Driver(address)
            reused = False
        done, ok = 0, False
        try:
            for value in driver.run(op, todo, params):
                done += 1
                yield value
            ok = True
        except RayUnavailable:
            if reused and not done:
                continue
            raise
        finally:
            if ok:
                with _LOCK:
                    _IDLE.setdefault(address, []).append(driver)
            else:  # failed, or the caller stopped reading: its remaining results would be out of step
                driver.close()
        return


def _task(module: str, name: str, piece: Piece, params: dict[str, Any]) -> tuple[str, Any]:
    """One Ray task: import the operation's module (it registers itself), run it on the piece."""
    import ray

    importlib.import_module(module)
    return ray.get_runtime_context().get_node_id(), run_piece(get(name), piece, params)


def _driver_main(address: str, conn: Any) -> None:
    """The child process: joins the cluster, then per run keeps a window of tasks in flight and sends
    their results in order; ends on ``close`` or when its parent goes."""
    import ray

    from imts.jobs.ray_executor import join_cluster

    try:
        join_cluster(address)
    except Exception as exc:
        conn.send(("unreachable", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    remote = ray.remote(_task)
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if msg[0] != "run":
                return
            _, module, name, num_cpus, todo, params = msg
            try:
                task = remote.options(
                    num_cpus=num_cpus, max_retries=TASK_RETRIES, scheduling_strategy="SPREAD"
                )
                # Enough in flight to keep every CPU busy, few enough that results do not pile up.
                window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1) / max(num_cpus, 0.01)))
                refs: dict[int, Any] = {}
                submitted = 0
                for i in range(len(todo)):
                    while submitted < len(todo) and submitted < i + window:
                        refs[submitted] = task.remote(module, name, todo[submitted], params)
                        submitted += 1
                    conn.send(("result", ray.get(refs.pop(i))))
            except Exception as exc:
                cause = getattr(exc, "cause", None) or exc
                lost = "GCS" in str(exc) or type(exc).__name__ in ("RaySystemError", "GetTimeoutError")
                conn.send(("unreachable" if lost else "error", f"{type(cause).__name__}: {cause}"))
                return  # the parent discards this driver
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
