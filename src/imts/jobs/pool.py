"""The resource pool: nodes with CPU slots, memory, GPUs by type and MIG slices, and gang placement.

Described in a YAML file (``IMTS_POOL_FILE``) or, by default, this machine alone. Placement is pure:
``Pool.place`` returns where every worker of a job would go, or None when not all of them fit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imts.core.errors import InputError


class GpuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(..., description="GPU model, e.g. a100-80gb; requests name it in gpu_type.")
    count: int = Field(1, ge=1)
    memory_gb: float = Field(0, ge=0)
    mig: dict[str, int] = Field(
        default_factory=dict, description="MIG profile -> slices per node (e.g. {'1g.10gb': 7})."
    )


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    cpus: int = Field(..., ge=1, description="CPU slots.")
    memory_gb: float = Field(..., gt=0)
    gpus: list[GpuSpec] = Field(default_factory=list)


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1.0, gt=0, description="Fair-share weight (dominant resource fairness).")
    max_concurrent: int | None = Field(None, ge=1, description="Jobs running at once.")
    cpu_hours: float | None = Field(None, ge=0, description="CPU-slot hours per period.")
    gpu_hours: float | None = Field(None, ge=0, description="GPU hours per period.")


class ProjectQuota(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage_gb: float | None = Field(
        None, ge=0, description="GiB of artifacts the project may store (datasets, runs, reports, logs)."
    )


def project_key(tenant: str, project: str) -> str:
    """A project's key in the pool file's ``projects``: project names are unique only within a tenant."""
    return f"{tenant}/{project}"


class Prices(BaseModel):
    """What an hour of each resource costs: a job's cost is its resource-hours times these (the
    console's cost column and the per-tenant and per-project sums). No table, no costs shown."""

    model_config = ConfigDict(extra="forbid")

    currency: str = Field("USD", max_length=8)
    cpu_hour: float = Field(0.0, ge=0, description="One CPU slot for an hour.")
    memory_gb_hour: float = Field(0.0, ge=0, description="One GB of memory for an hour.")
    gpu_hour: dict[str, float] = Field(
        default_factory=dict, description="One whole GPU for an hour, by GPU type (e.g. {'a100-80gb': 2.5})."
    )
    default_gpu_hour: float = Field(0.0, ge=0, description="A GPU whose type the table does not name.")
    mig_hour: float = Field(0.0, ge=0, description="One MIG slice for an hour.")

    def hourly(self, workers: int, r: Request) -> float:
        """What the job costs per hour while it holds its ``workers`` x ``r``."""
        gpu = self.gpu_hour.get(r.gpu_type or "", self.default_gpu_hour)
        per_worker = r.cpus * self.cpu_hour + r.memory_gb * self.memory_gb_hour + r.gpus * gpu
        return workers * (per_worker + (self.mig_hour if r.mig else 0.0))


class PoolSpec(BaseModel):
    """Nodes and tenants; the whole file of ``IMTS_POOL_FILE``."""

    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeSpec]
    tenants: dict[str, TenantSpec] = Field(default_factory=dict)
    projects: dict[str, ProjectQuota] = Field(
        default_factory=dict, description="Per-project quotas, keyed TENANT/PROJECT."
    )
    period_hours: float = Field(24 * 7, gt=0, description="Quota period for CPU/GPU hours.")
    executor: Literal["local", "ray"] = Field(
        "local", description="Where workers run: local processes, or actors on a Ray cluster."
    )
    prices: Prices | None = Field(None, description="Resource prices: jobs then show what they cost.")
    ray_address: str | None = Field(
        None,
        description="The Ray cluster's GCS address HOST:PORT (executor: ray); the nodes above "
        "describe its capacity, which the IMTS scheduler shares out before Ray places the workers.",
    )

    @model_validator(mode="after")
    def _projects_by_tenant(self) -> PoolSpec:
        # Two tenants may each have a project 'default': a bare name would give both one quota.
        for key in self.projects:
            tenant, _, project = key.partition("/")
            if not tenant or not project or "/" in project:
                raise ValueError(
                    f"projects: '{key}' must be TENANT/PROJECT (project names repeat across tenants)"
                )
        return self

    @model_validator(mode="after")
    def _ray_needs_address(self) -> PoolSpec:
        if self.executor == "ray" and not self.ray_address:
            raise ValueError("executor 'ray' needs ray_address (the head's HOST:PORT)")
        return self

    def tenant(self, name: str) -> TenantSpec:
        return self.tenants.get(name) or TenantSpec()

    def project(self, key: str) -> ProjectQuota:
        """The quota of the project ``key`` (``project_key(tenant, project)``)."""
        return self.projects.get(key) or ProjectQuota()

    @property
    def has_storage_quota(self) -> bool:
        return any(q.storage_gb is not None for q in self.projects.values())


class Request(BaseModel):
    """What one worker of a job needs (frozen: hashable, so the policy can remember shapes that failed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: int = Field(1, ge=0)
    memory_gb: float = Field(0.5, ge=0)
    gpus: int = Field(0, ge=0)
    gpu_type: str | None = Field(None, description="Any GPU type when None.")
    mig: str | None = Field(None, description="A MIG profile instead of whole GPUs, e.g. 1g.10gb.")


@dataclass
class Slot:
    """Where one worker runs."""

    node: str
    cpus: int
    memory_gb: float
    gpus: list[str] = field(default_factory=list)  # "<type>:<index>" or "<type>:mig:<profile>"

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "cpus": self.cpus, "memory_gb": self.memory_gb, "gpus": self.gpus}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Slot:
        return cls(d["node"], int(d["cpus"]), float(d["memory_gb"]), list(d.get("gpus", [])))


@dataclass
class _Free:
    cpus: int
    memory_gb: float
    gpus: dict[str, list[int]]  # type -> free indices
    mig: dict[tuple[str, str], int]  # (type, profile) -> free slices


class Pool:
    """Free capacity of every node; ``take``/``give`` keep it in step with allocations."""

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self.free: dict[str, _Free] = {}
        self.total = {"cpus": 0.0, "memory_gb": 0.0, "gpus": 0.0}
        for n in spec.nodes:
            gpus: dict[str, list[int]] = {}
            mig: dict[tuple[str, str], int] = {}
            for g in n.gpus:
                have = gpus.setdefault(g.type, [])
                have.extend(range(len(have), len(have) + g.count))
                for profile, count in g.mig.items():
                    mig[(g.type, profile)] = mig.get((g.type, profile), 0) + count
                self.total["gpus"] += g.count
            self.free[n.name] = _Free(n.cpus, n.memory_gb, gpus, mig)
            self.total["cpus"] += n.cpus
            self.total["memory_gb"] += n.memory_gb

    def _fits(self, f: _Free, r: Request) -> bool:
        if f.cpus < r.cpus or f.memory_gb + 1e-9 < r.memory_gb:
            return False
        if r.mig:
            return any(
                left > 0 and p == r.mig and (r.gpu_type in (None, t)) for (t, p), left in f.mig.items()
            )
        if r.gpus:
            return any(len(ix) >= r.gpus for t, ix in f.gpus.items() if r.gpu_type in (None, t))
        return True

    def _take(self, node: str, r: Request) -> Slot:
        f = self.free[node]
        f.cpus -= r.cpus
        f.memory_gb -= r.memory_gb
        gpus: list[str] = []
        if r.mig:
            key = next(
                k for k, left in f.mig.items() if left > 0 and k[1] == r.mig and r.gpu_type in (None, k[0])
            )
            f.mig[key] -= 1
            gpus = [f"{key[0]}:mig:{key[1]}"]
        elif r.gpus:
            t = next(t for t, ix in f.gpus.items() if len(ix) >= r.gpus and r.gpu_type in (None, t))
            taken, f.gpus[t] = f.gpus[t][: r.gpus], f.gpus[t][r.gpus :]
            gpus = [f"{t}:{i}" for i in taken]
        return Slot(node, r.cpus, r.memory_gb, gpus)

    def place(self, workers: int, r: Request) -> list[Slot] | None:
        """Gang placement: a slot for every one of ``workers``, taken from the pool, or None (nothing
        taken) when not all of them fit. Workers go to the first nodes with room (packing)."""
        slots: list[Slot] = []
        for node, f in self.free.items():
            while len(slots) < workers and self._fits(f, r):
                slots.append(self._take(node, r))
            if len(slots) == workers:
                return slots
        self.give(slots)
        return None

    def give(self, slots: Iterable[Slot]) -> None:
        """Return slots to the pool (a job ended or a tentative placement is undone)."""
        for s in slots:
            f = self.free[s.node]
            f.cpus += s.cpus
            f.memory_gb += s.memory_gb
            for g in s.gpus:
                parts = g.split(":")
                if len(parts) == 3:
                    f.mig[(parts[0], parts[2])] += 1
                else:
                    f.gpus[parts[0]].append(int(parts[1]))
                    f.gpus[parts[0]].sort()

    def take(self, slots: Iterable[Slot]) -> None:
        """Mark slots of an already-running job as used (rebuilding the pool from the store)."""
        for s in slots:
            f = self.free.get(s.node)
            if f is None:
                continue  # node removed from the config: the job keeps running, the pool shrinks
            f.cpus -= s.cpus
            f.memory_gb -= s.memory_gb
            for g in s.gpus:
                parts = g.split(":")
                if len(parts) == 3:
                    f.mig[(parts[0], parts[2])] = f.mig.get((parts[0], parts[2]), 0) - 1
                elif int(parts[1]) in f.gpus.get(parts[0], []):
                    f.gpus[parts[0]].remove(int(parts[1]))

    def could_ever_fit(self, workers: int, r: Request) -> bool:
        """Whether the job fits an empty pool (else it would wait forever: refuse it at submit)."""
        return Pool(self.spec).place(workers, r) is not None

    def free_summary(self) -> dict[str, float]:
        return {
            "cpus": sum(f.cpus for f in self.free.values()),
            "memory_gb": sum(f.memory_gb for f in self.free.values()),
            "gpus": sum(len(ix) for f in self.free.values() for ix in f.gpus.values()),
        }


def usage_vector(workers: int, r: Request) -> dict[str, float]:
    """Resources a whole job holds (MIG slices count as 1/7 of a GPU for fair share)."""
    gpus = r.gpus if not r.mig else 1 / 7
    return {"cpus": workers * r.cpus, "memory_gb": workers * r.memory_gb, "gpus": workers * gpus}


def local_pool() -> PoolSpec:
    """The embedded default: this machine's cores and memory, one tenant with weight 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return PoolSpec(nodes=[NodeSpec(name="local", cpus=cpus, memory_gb=round(mem, 1))])


def load_pool(path: Path | None) -> PoolSpec:
    """The pool from a YAML file, or this machine when ``path`` is None."""
    if path is None:
        return local_pool()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return PoolSpec.model_validate(data)
    except OSError as exc:
        raise InputError(f"cannot read pool file: {exc}", file=str(path)) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"not YAML: {exc}", file=str(path)) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(first["msg"], file=str(path), field=".".join(map(str, first["loc"]))) from exc
