"""The Ray executor: the scheduler decides, Ray places.

Chosen in the pool file (``executor: ray``, ``ray_address: HOST:PORT``). ``start`` asks Ray for a
placement group of one bundle per worker (CPUs, memory, GPUs from the job's slots) and, once every
bundle is placed (the gang starts whole or not at all), starts one ``WorkerHost`` actor per rank in its
bundle. Each actor runs the very command the local executor runs (``python -m imts.services.worker
JOB_ID --attempt N``) as a child process on its Ray node: the worker claims the attempt, heartbeats,
writes its log, metrics and checkpoints exactly as it does locally. Pause, cancel and preemption are
SIGTERM to that child; ``kill`` is SIGKILL, then the actors and the placement group are removed.
A gang's bundles spread over the nodes with one actor per rank; a data-parallel train job's ranks
meet in one process group there (``train.distributed``: a rendezvous file on the artifact store).

Ray is driven from a separate *bridge* process, never from the scheduler itself: a Ray driver whose
head goes away is ended by Ray, and the scheduler must outlive its cluster. While the cluster cannot be
reached, every call raises ``RayUnavailable``; the scheduler records it on the job and the attempt
times out and is requeued, so jobs are resubmitted by the ordinary path once the head is back.
Assumes what every executor assumes: the database and the artifact store are reachable from every
node (PostgreSQL and a shared folder or S3-compatible store in a cluster; one machine on loopback).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from imts.core.errors import ImtsError
from imts.core.settings import Settings
from imts.jobs.executors import WORKER_MODULE, WorkerJob, log_path, worker_env
from imts.jobs.pool import Slot

NAMESPACE = "imts"  # every actor and placement group of IMTS lives in this Ray namespace
CONNECT_TIMEOUT_S = 20.0  # how long a bridge may take to join the cluster
CALL_TIMEOUT_S = 15.0  # how long one call may take before the cluster counts as unreachable
RETRY_AFTER_S = 3.0  # after a failed connection, calls fail at once for this long (no pile-up)
PROBE_TIMEOUT_S = 2.0  # a TCP connect to the head's port before a bridge tries to join


class RayUnavailable(ImtsError):
    """The Ray cluster cannot be reached (its head is down or the address is wrong)."""


def actor_name(job_id: str, attempt: int, rank: int) -> str:
    return f"{job_id}:{attempt}:{rank}"


def group_name(job_id: str, attempt: int) -> str:
    return f"{job_id}:{attempt}"


def bundle(slot: Slot) -> dict[str, float]:
    """Ray resources of one worker's slot (Ray's ``memory`` resource is in bytes)."""
    b: dict[str, float] = {"CPU": float(slot.cpus) if slot.cpus else 0.01}
    if slot.memory_gb:
        b["memory"] = float(int(slot.memory_gb * 2**30))
    whole = [g for g in slot.gpus if g.count(":") == 1]
    if whole:
        b["GPU"] = float(len(whole))
    elif slot.gpus:  # a MIG slice: a fraction of a GPU as far as Ray knows
        b["GPU"] = 1 / 7
    return b


class WorkerHost:
    """A Ray actor that runs one rank of one attempt as a child process on its node.

    Its methods never block (the bridge polls), so the actor needs no threads: the child is started
    from the actor's main thread, and PR_SET_PDEATHSIG takes it down when the actor process dies.
    """

    def __init__(self, cmd: list[str], env: dict[str, str], log: str) -> None:
        import subprocess

        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # one group to signal: the worker and its ranks
                preexec_fn=_die_with_parent,
            )

    def pid(self) -> int:
        return int(self.proc.pid)

    def poll(self) -> int | None:
        return self.proc.poll()

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if signum == 9:
                os.killpg(self.proc.pid, signum)
            else:
                os.kill(self.proc.pid, signum)


def _die_with_parent() -> None:
    """Linux: the kernel kills the worker when the actor process dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


class RayExecutor:
    """Workers as Ray actors in a placement group per attempt; the same three calls as the local one."""

    name = "ray"

    def __init__(self, settings: Settings, address: str) -> None:
        self.settings = settings
        self.address = address
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._failed_at = 0.0
        self._failure = ""

    # --- the Executor protocol --------------------------------------------------------------------

    def start(self, job: WorkerJob, attempt: int, slots: list[Slot]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("IMTS_")}
        base.update(
            IMTS_WORKSPACE=str(self.settings.workspace),
            IMTS_MODEL_CACHE=str(self.settings.model_cache),
            IMTS_HEARTBEAT_S=str(self.settings.heartbeat_s),
        )
        if self.settings.database_url:
            base["IMTS_DATABASE_URL"] = self.settings.database_url
        if base.get("PYTHONPATH"):  # a relative entry would resolve against the Ray worker's folder
            base["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in base["PYTHONPATH"].split(":"))
        log = str(log_path(self.settings, job.id, attempt))
        cmd = [sys.executable, "-m", WORKER_MODULE, job.id, "--attempt", str(attempt)]
        ranks: list[tuple[list[str], dict[str, str]]] = []
        if len(slots) > 1 and not _self_launching(job):
            # A gang whose ranks run apart: rank 0 on bundle 0 leaves the others to the executor.
            ranks.append(([*cmd, "--external-ranks"], worker_env(slots[:1], base, 0, len(slots))))
            for r in range(1, len(slots)):
                ranks.append(([*cmd, "--rank", str(r)], worker_env([slots[r]], base, r, len(slots))))
            strategy = "SPREAD"
        else:
            # One process that launches its ranks itself: its bundles must share one node.
            ranks.append((cmd, worker_env(slots[:1], base, 0, len(slots))))
            strategy = "STRICT_PACK" if len(slots) > 1 else "PACK"
        self._call("start", job.id, attempt, [bundle(s) for s in slots], strategy, ranks, log)

    def stop(self, job: WorkerJob, attempt: int) -> None:
        self._call("signal", job.id, attempt, 15)

    def kill(self, job: WorkerJob, attempt: int) -> None:
        self._call("kill", job.id, attempt)

    # --- beyond the protocol ----------------------------------------------------------------------

    def cluster(self) -> dict[str, Any]:
        """What Ray reports: ``version``, ``nodes`` (alive) and ``resources`` (totals).

        Raises:
            RayUnavailable: the cluster cannot be reached.
        """
        out: dict[str, Any] = self._call("cluster")
        return out

    def free_cpus(self) -> float:
        """The CPUs no placement group or actor holds now, over the whole cluster."""
        return float(self._call("free_cpus"))

    def placement(self, job_id: str, attempt: int) -> list[str]:
        """The Ray node id of every bundle of an attempt's placement group (empty when it has none)."""
        out: list[str] = self._call("placement", job_id, attempt)
        return out

    def close(self) -> None:
        """End the bridge (the actors it started keep running: they belong to the cluster)."""
        if self._conn is not None:
            with contextlib.suppress(OSError, EOFError, BrokenPipeError):
                self._conn.send(("close",))
        if self._proc is not None:
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._proc = self._conn = None

    def _reset(self, why: str) -> RayUnavailable:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._proc = self._conn = None
        self._failed_at, self._failure = time.monotonic(), why
        return RayUnavailable(f"Ray cluster at {self.address} unreachable: {why}")

    def _bridge(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            return self._conn
        if self._proc is not None:
            self._reset("the bridge process ended")
        if time.monotonic() - self._failed_at < RETRY_AFTER_S:
            raise RayUnavailable(f"Ray cluster at {self.address} unreachable: {self._failure}")
        refused = _refused(self.address)
        if refused:  # a head that is down answers nothing: say so now, not after CONNECT_TIMEOUT_S
            raise self._reset(refused)
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        self._proc = multiprocessing.get_context("spawn").Process(
            target=_bridge_main, args=(self.address, theirs), name="imts-ray-bridge", daemon=True
        )
        self._proc.start()
        theirs.close()
        self._conn = ours
        if not ours.poll(CONNECT_TIMEOUT_S):
            raise self._reset(f"no connection within {CONNECT_TIMEOUT_S:g}s")
        try:
            ok, value = ours.recv()
        except (EOFError, OSError) as exc:
            raise self._reset(f"the bridge ended while connecting ({exc})") from exc
        if not ok:
            raise self._reset(str(value))
        return ours

    def _call(self, *msg: Any) -> Any:
        conn = self._bridge()
        try:
            conn.send(msg)
            if not conn.poll(CALL_TIMEOUT_S):
                raise self._reset(f"no answer to '{msg[0]}' within {CALL_TIMEOUT_S:g}s")
            ok, value = conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise self._reset(f"the bridge ended ({exc})") from exc
        if not ok:
            if str(value).startswith("unreachable:"):
                raise self._reset(str(value).removeprefix("unreachable:").strip())
            raise ImtsError(f"ray executor: {value}")
        return value


def _refused(address: str) -> str:
    """Why nothing listens at the head's GCS address (empty when something does, or when the
    address is not HOST:PORT and only Ray can tell)."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return ""
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S):
            return ""
    except OSError as exc:
        return f"nothing answers at {address} ({exc.strerror or exc})"


def _self_launching(job: WorkerJob) -> bool:
    """Whether the job's worker launches its gang's ranks itself, so its bundles must share a node.

    A self-launching kind with ``run_rank`` (a data-parallel train job) runs one actor per rank
    instead, its ranks meeting in one process group wherever Ray placed them. The jobs package
    cannot import the kinds; the kind's registration answers when it is loaded (always, in a
    scheduler started by a surface)."""
    from imts.jobs import registry

    kind = registry.find(job.kind)
    if kind is not None and kind.run_rank is not None:
        return False  # its ranks join one group wherever they are placed: one actor per rank
    return kind.self_launching if kind is not None else False


# --- the bridge process ---------------------------------------------------------------------------


def join_cluster(address: str) -> None:
    """Join the cluster at ``address`` as a Ray driver in IMTS's namespace, quietly (no worker logs
    forwarded, warnings only): the bridge here and the data operations' driver (data/parallel.py)."""
    import logging

    import ray

    ray.init(
        address=address,
        namespace=NAMESPACE,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=False,
    )


def _bridge_main(address: str, conn: Connection) -> None:
    """Joins the cluster as a Ray driver and serves the executor's calls until told to close."""
    try:
        join_cluster(address)
    except Exception as exc:
        conn.send((False, f"{type(exc).__name__}: {exc}"))
        return
    conn.send((True, None))
    bridge = _Bridge()
    while True:
        if conn.poll(0.5):
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg[0] == "close":
                with contextlib.suppress(Exception):  # give back what has ended, leave what runs
                    bridge.sweep()
                return
            try:
                conn.send((True, getattr(bridge, msg[0])(*msg[1:])))
            except Exception as exc:
                unreachable = "GCS" in str(exc) or type(exc).__name__ in ("GetTimeoutError", "RaySystemError")
                conn.send((False, ("unreachable: " if unreachable else "") + f"{type(exc).__name__}: {exc}"))
        with contextlib.suppress(Exception):  # a sweep that fails is retried on the next round
            bridge.sweep()


class _Bridge:
    """Inside the bridge process: placement groups and actors by job and attempt."""

    def __init__(self) -> None:
        import ray

        self.ray = ray
        self.host = ray.remote(max_restarts=0, max_task_retries=0)(WorkerHost)
        self.runs: dict[tuple[str, int], tuple[Any, list[Any]]] = {}  # (job, attempt) -> (pg, actors)
        with contextlib.suppress(Exception):  # the cluster answered a moment ago; a failure here is retried
            self.adopt()

    def adopt(self) -> None:
        """Take over the groups an earlier bridge left behind (a scheduler that stopped or restarted).

        Their actors keep running; the sweep gives back those whose ranks have ended and the groups
        whose actors are gone, so nothing an earlier scheduler started holds the cluster's resources.
        """
        from ray.util.placement_group import get_placement_group

        for info in self.ray.util.placement_group_table().values():
            job_id, _, attempt = str(info.get("name") or "").rpartition(":")
            if info.get("state") == "REMOVED" or not job_id.startswith("job_") or not attempt.isdigit():
                continue
            key = (job_id, int(attempt))
            if key in self.runs:
                continue
            try:
                pg = get_placement_group(group_name(*key))
            except ValueError:
                continue
            self.runs[key] = (pg, self._actors(*key))

    def start(
        self,
        job_id: str,
        attempt: int,
        bundles: list[dict[str, float]],
        strategy: str,
        ranks: list[tuple[list[str], dict[str, str]]],
        log: str,
    ) -> None:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.kill(job_id, attempt)  # a retried start replaces whatever the last one left
        pg = placement_group(
            bundles, strategy=strategy, name=group_name(job_id, attempt), lifetime="detached"
        )
        # The actors wait for the whole group: Ray starts none of them before every bundle is placed.
        actors = [
            self.host.options(
                name=actor_name(job_id, attempt, r),
                lifetime="detached",
                num_cpus=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=r),
            ).remote(cmd, env, log)
            for r, (cmd, env) in enumerate(ranks)
        ]
        self.runs[(job_id, attempt)] = (pg, actors)

    def signal(self, job_id: str, attempt: int, signum: int) -> None:
        for a in self._actors(job_id, attempt):
            a.signal.remote(signum)

    def kill(self, job_id: str, attempt: int) -> None:
        actors = self._actors(job_id, attempt)
        with contextlib.suppress(Exception):
            self.ray.get([a.signal.remote(9) for a in actors], timeout=5)
        for a in actors:
            with contextlib.suppress(Exception):
                self.ray.kill(a)
        pg = self.runs.pop((job_id, attempt), (None, []))[0] or self._group(job_id, attempt)
        if pg is not None:
            with contextlib.suppress(Exception):
                self.ray.util.remove_placement_group(pg)

    def placement(self, job_id: str, attempt: int) -> list[str]:
        pg = self._group(job_id, attempt)
        if pg is None:
            return []
        table = self.ray.util.placement_group_table(pg)
        return [table["bundles_to_node_id"][i] for i in sorted(table["bundles_to_node_id"])]

    def free_cpus(self) -> float:
        return float(self.ray.available_resources().get("CPU", 0.0))

    def cluster(self) -> dict[str, Any]:
        nodes = [n for n in self.ray.nodes() if n["Alive"]]
        return {
            "version": self.ray.__version__,
            "nodes": len(nodes),
            "resources": self.ray.cluster_resources(),
        }

    def sweep(self) -> None:
        """Remove the actors and group of every attempt whose ranks have all ended (or whose actors
        are gone: their node or process was killed)."""
        asked = {key: [a.poll.remote() for a in actors] for key, (_pg, actors) in self.runs.items()}
        refs = [r for rs in asked.values() for r in rs]
        if refs:  # one wait for all: an attempt still being placed holds up no other
            self.ray.wait(refs, num_returns=len(refs), timeout=2)
        for key, rs in asked.items():
            ready, _ = self.ray.wait(rs, num_returns=len(rs), timeout=0) if rs else ([], [])
            if len(ready) < len(rs):
                continue  # still being placed or started
            try:
                codes = self.ray.get(rs, timeout=1)
            except self.ray.exceptions.RayActorError:
                codes = [0]  # an actor died (its node or process was killed): nothing is left to wait on
            except self.ray.exceptions.GetTimeoutError:
                continue
            if all(c is not None for c in codes):
                self.kill(*key)

    def _actors(self, job_id: str, attempt: int) -> list[Any]:
        if (job_id, attempt) in self.runs:
            return list(self.runs[(job_id, attempt)][1])
        found = []  # started by an earlier bridge (the scheduler restarted): find them by name
        for r in range(1024):
            try:
                found.append(self.ray.get_actor(actor_name(job_id, attempt, r), namespace=NAMESPACE))
            except ValueError:
                break
        return found

    def _group(self, job_id: str, attempt: int) -> Any:
        if (job_id, attempt) in self.runs:
            return self.runs[(job_id, attempt)][0]
        from ray.util.placement_group import get_placement_group

        try:
            return get_placement_group(group_name(job_id, attempt))
        except ValueError:
            return None
