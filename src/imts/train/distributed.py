"""Data parallelism on one machine: N processes, one process group, the same update as one process.

``launch`` runs rank 0 in the calling process (so a job worker's SIGTERM flag, progress bar and metric
sink keep working) and spawns ranks 1..N-1 as child processes with torchrun's environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). The children stay in the caller's process group, so
killing a job's group kills every rank. gloo on CPU, NCCL on CUDA (one GPU per rank).

How the recipes keep the update equal to the one-process update: every rank walks the same global batch
order and takes its slice of each micro-batch; the loss is a sum divided by the *global* count of loss
tokens (or pairs); gradients are summed over ranks (``Dist.sync_grads``). Gradients, loss and grad
norm are then identical on every rank, so the watchdog decides the same everywhere. Rank 0 alone writes
checkpoints, metrics and events and decides whether to stop (``Dist.flag``).

A rank that fails ends the run: its error is passed to rank 0, which raises it; ranks blocked on a
collective give up after ``spec.dist_timeout_s``.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from imts.core.errors import ImtsError, Interrupted
from imts.core.net import free_port

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
EXTERNAL_STORE = "IMTS_DIST_STORE"  # set by a job worker whose ranks the executor placed apart


class RankFailed(ImtsError):
    """Another rank of a data-parallel run failed; the message carries its error."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the run; every method is a no-op for a single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64, so counts stay exact)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def flag(self, value: bool) -> bool:
        """Rank 0's ``value`` on every rank (the stop decision)."""
        if self.world == 1:
            return value
        t = torch.tensor([1.0 if value else 0.0], device=self._comm_device)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def sync_grads(self, params: list[torch.nn.Parameter], bucket_elems: int = 1 << 24) -> None:
        """Sum gradients over ranks in flat buckets (few large messages, not one per tensor)."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is None:  # a parameter unused by this rank's slice still takes part in the sum
                p.grad = torch.zeros_like(p)
        bucket: list[torch.nn.Parameter] = []
        size = 0
        for p in [*params, None]:
            if p is not None:
                bucket.append(p)
                size += p.numel()
            if bucket and (p is None or size >= bucket_elems):
                flat = torch.cat([q.grad.reshape(-1) for q in bucket])  # type: ignore[union-attr]
                torch.distributed.all_reduce(flat)
                offset = 0
                for q in bucket:
                    n = q.numel()
                    q.grad.copy_(flat[offset : offset + n].view_as(q.grad))  # type: ignore[union-attr]
                    offset += n
                bucket, size = [], 0

    @property
    def _comm_device(self) -> torch.device:
        return self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def current() -> Dist:
    """The process group this process belongs to (a single process when none is initialised)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Dist(
            torch.distributed.get_rank(),
            torch.distributed.get_world_size(),
            int(os.environ.get("LOCAL_RANK", torch.distributed.get_rank())),
        )
    return Dist()


def launch(
    recipe: Callable[..., Any],
    spec: Any,
    base_path: Path,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    out_dir: Path,
    sink: Any,
    progress: Any = None,
    should_stop: Callable[[], bool] | None = None,
) -> Any:
    """Run ``recipe`` on ``spec.nproc`` processes and return rank 0's result (one process: a plain call)."""
    nproc = spec.nproc
    if nproc == 1:
        return recipe(spec, base_path, train_rows, val_rows, out_dir, sink, progress, should_stop)
    if os.environ.get(EXTERNAL_STORE):  # this process is one rank; the executor started the others
        return _joined(recipe, spec, base_path, train_rows, val_rows, out_dir, sink, progress, should_stop)
    import torch.multiprocessing as mp

    port = free_port()
    threads = max(1, torch.get_num_threads() // nproc)  # the cores are shared out, not oversubscribed
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    children = [
        ctx.Process(
            target=_child,
            args=(rank, nproc, port, threads, recipe, spec, base_path, train_rows, val_rows, out_dir, errors),
            name=f"imts-rank-{rank}",
        )
        for rank in range(1, nproc)
    ]
    for p in children:
        p.start()
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with _env(0, nproc, port):
            try:
                _init(spec)
                return recipe(spec, base_path, train_rows, val_rows, out_dir, sink, progress, should_stop)
            except Interrupted:  # every rank stopped at the same step, on rank 0's word
                raise
            except Exception as exc:
                failed = _first_error(errors, children)
                if failed is not None:  # rank 0 broke because another rank did: report that one's error
                    raise RankFailed(failed) from exc
                raise
            finally:
                if torch.distributed.is_initialized():
                    torch.distributed.destroy_process_group()
    finally:
        torch.set_num_threads(saved_threads)
        for p in children:
            p.join(timeout=30)
        for p in children:
            if p.is_alive():  # stuck on a collective rank 0 left: nothing to wait for
                p.kill()
                p.join()
    failed = _first_error(errors, children)
    if failed is not None:
        raise RankFailed(failed)


def _joined(
    recipe: Callable[..., Any],
    spec: Any,
    base_path: Path,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    out_dir: Path,
    sink: Any,
    progress: Any,
    should_stop: Callable[[], bool] | None,
) -> Any:
    """Run this process's rank of a group whose ranks an executor placed apart (Ray: one actor per
    rank, possibly on other nodes). They meet at a file on the shared artifact store (torch's
    FileStore); RANK and WORLD_SIZE come from the executor; each rank sees only its own GPU."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world != spec.nproc:
        raise ImtsError(f"the executor started {world} ranks for nproc={spec.nproc}")
    os.environ["LOCAL_RANK"] = "0"
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(0)
    torch.distributed.init_process_group(
        backend,
        init_method=f"file://{os.environ[EXTERNAL_STORE]}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=spec.dist_timeout_s),
    )
    try:
        if rank == 0:
            return recipe(spec, base_path, train_rows, val_rows, out_dir, sink, progress, should_stop)
        try:
            return recipe(spec, base_path, train_rows, val_rows, out_dir, NullSink(), None, None)
        except Interrupted:  # stopped with rank 0 (preemption): not a failure
            return None
    finally:
        torch.distributed.destroy_process_group()


def _child(
    rank: int,
    world: int,
    port: int,
    threads: int,
    recipe: Callable[..., Any],
    spec: Any,
    base_path: Path,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    out_dir: Path,
    errors: Any,
) -> None:
    """Entry point of ranks 1..N-1: no sink output, no progress; rank 0 says when to stop."""
    _die_with_parent()
    os.environ.update(_env_values(rank, world, port))
    torch.set_num_threads(threads)
    try:
        _init(spec)
        recipe(spec, base_path, train_rows, val_rows, out_dir, NullSink(), None, None)
    except Interrupted:  # stopped with rank 0 (preemption): not a failure
        pass
    except BaseException as exc:
        errors.put(f"rank {rank} failed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
        raise SystemExit(1) from None
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class NullSink:
    def metrics(self, step: int, values: dict[str, float]) -> None:
        pass

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        pass


def _init(spec: Any) -> None:
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    torch.distributed.init_process_group(
        backend, init_method="env://", timeout=timedelta(seconds=spec.dist_timeout_s)
    )


def _first_error(errors: Any, children: list[Any]) -> str | None:
    for p in children:  # a child that failed has put its error before exiting
        p.join(timeout=5 if p.exitcode is None else 0)
    if not errors.empty():
        return str(errors.get())
    dead = [p for p in children if p.exitcode not in (None, 0)]
    if dead:
        return f"{dead[0].name} exited with code {dead[0].exitcode}"
    return None


def _env_values(rank: int, world: int, port: int) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


@contextlib.contextmanager
def _env(rank: int, world: int, port: int) -> Iterator[None]:
    """torchrun's variables for the calling process, for the duration of the run only."""
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.update(_env_values(rank, world, port))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _die_with_parent() -> None:
    """Linux: the kernel kills this rank when rank 0's process dies (even by SIGKILL)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
