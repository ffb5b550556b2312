"""Kubernetes manifests from a job: a Volcano ``Job`` and a Kubeflow ``PyTorchJob``.

Both express the same gang: ``minAvailable`` = the job's workers, so Volcano starts all pods or none;
the tenant becomes the Volcano queue and the priority class a ``PriorityClass`` named
``imts-<class>``. Every pod runs the same worker entry point as the local executor
(``python -m imts.services.worker JOB_ID --attempt N``) against the shared database.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from imts.jobs.executors import WORKER_MODULE
from imts.jobs.pool import Request


class GangJob(Protocol):
    """What a manifest needs of a job (a ``JobView`` or an executor's ``WorkerJob``)."""

    @property
    def id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def priority_class(self) -> str: ...
    @property
    def workers(self) -> int: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def request(self) -> Request: ...


DEFAULT_IMAGE = "ghcr.io/imts/imts:latest"


def _name(job: GangJob) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"imts-{job.id}".lower())[:63].strip("-")


def resources(r: Request) -> dict[str, dict[str, Any]]:
    """Pod resource requests/limits of one worker (GPU and MIG as NVIDIA device-plugin resources)."""
    req: dict[str, Any] = {"cpu": str(r.cpus), "memory": f"{round(r.memory_gb * 1024)}Mi"}
    if r.mig:
        req[f"nvidia.com/mig-{r.mig}"] = 1
    elif r.gpus:
        req["nvidia.com/gpu"] = r.gpus
    limits = {k: v for k, v in req.items() if k != "cpu"}  # no CPU limit: throttling slows training
    return {"requests": req, "limits": limits}


def pod_template(job: GangJob, attempt: int, image: str, db_secret: str) -> dict[str, Any]:
    r = job.request
    spec: dict[str, Any] = {
        "restartPolicy": "Never",  # retries are the scheduler's decision, not the kubelet's
        "containers": [
            {
                "name": "worker",
                "image": image,
                "command": ["python", "-m", WORKER_MODULE, job.id, "--attempt", str(attempt)],
                "env": [
                    {
                        "name": "IMTS_DATABASE_URL",
                        "valueFrom": {"secretKeyRef": {"name": db_secret, "key": "url"}},
                    },
                    {"name": "OMP_NUM_THREADS", "value": str(max(1, r.cpus))},
                ],
                "resources": resources(r),
            }
        ],
    }
    if r.gpu_type:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": r.gpu_type}
    return {"metadata": {"labels": labels(job)}, "spec": spec}


def labels(job: GangJob) -> dict[str, str]:
    return {"imts.dev/job-id": job.id, "imts.dev/tenant": re.sub(r"[^A-Za-z0-9_.-]", "-", job.tenant)[:63]}


def volcano_job(
    job: GangJob, attempt: int = 1, image: str = DEFAULT_IMAGE, db_secret: str = "imts-db"
) -> dict[str, Any]:
    """A ``batch.volcano.sh/v1alpha1`` Job: gang of ``workers`` pods in the tenant's queue."""
    return {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": {"name": _name(job), "labels": labels(job)},
        "spec": {
            "schedulerName": "volcano",
            "minAvailable": job.workers,
            "queue": job.tenant,
            "priorityClassName": f"imts-{job.priority_class}",
            "maxRetry": job.max_retries,
            "policies": [{"event": "PodEvicted", "action": "RestartJob"}],
            "tasks": [
                {
                    "name": "worker",
                    "replicas": job.workers,
                    "minAvailable": job.workers,
                    "template": pod_template(job, attempt, image, db_secret),
                }
            ],
        },
    }


def pytorch_job(
    job: GangJob, attempt: int = 1, image: str = DEFAULT_IMAGE, db_secret: str = "imts-db"
) -> dict[str, Any]:
    """A ``kubeflow.org/v1`` PyTorchJob: one master plus ``workers - 1`` workers, gang-scheduled."""
    template = pod_template(job, attempt, image, db_secret)
    template["spec"]["containers"][0]["name"] = "pytorch"  # the operator looks for this container name
    replicas: dict[str, Any] = {"Master": {"replicas": 1, "restartPolicy": "Never", "template": template}}
    if job.workers > 1:
        replicas["Worker"] = {"replicas": job.workers - 1, "restartPolicy": "Never", "template": template}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": _name(job), "labels": labels(job)},
        "spec": {
            "runPolicy": {
                "backoffLimit": job.max_retries,
                "cleanPodPolicy": "None",
                "schedulingPolicy": {
                    "minAvailable": job.workers,
                    "queue": job.tenant,
                    "priorityClass": f"imts-{job.priority_class}",
                },
            },
            "pytorchReplicaSpecs": replicas,
        },
    }


RENDERERS = {"volcano": volcano_job, "pytorchjob": pytorch_job}
