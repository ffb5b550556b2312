"""Kubernetes manifests from a job: a Volcano ``Job``, a Kubeflow ``PyTorchJob``, and KubeRay's
``RayJob`` and ``RayCluster`` (gang-scheduled by Volcano or Kueue).

Both express the same gang: ``minAvailable`` = the job's workers, so Volcano starts all pods or none;
the tenant becomes the Volcano queue and the priority class a ``PriorityClass`` named
``imts-<class>``. Every pod runs the same worker entry point as the local executor
(``python -m imts.services.worker JOB_ID --attempt N``) against the shared database.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, Protocol

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


Gang = Literal["volcano", "kueue"]
RAY_VERSION = "2.60.0"


def _gang_labels(job: GangJob, gang: Gang) -> dict[str, str]:
    """KubeRay's batch-scheduler labels: Volcano builds one PodGroup of head + workers in the tenant's
    queue; Kueue admits the whole cluster at once from the tenant's LocalQueue."""
    queue = labels(job)["imts.dev/tenant"]
    if gang == "kueue":
        return {
            "kueue.x-k8s.io/queue-name": queue,
            "kueue.x-k8s.io/priority-class": f"imts-{job.priority_class}",
        }
    return {
        "ray.io/scheduler-name": "volcano",
        "volcano.sh/queue-name": queue,
        "ray.io/priority-class-name": f"imts-{job.priority_class}",
    }


def ray_cluster_spec(job: GangJob, image: str = DEFAULT_IMAGE, db_secret: str = "imts-db") -> dict[str, Any]:
    """A ``RayCluster`` spec sized for the job: a head (GCS only, no workers on it) and one worker pod
    per gang member with the job's resources; the pods can reach the database like IMTS's workers."""
    r = job.request

    def container(name: str, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
        env = [
            {"name": "IMTS_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": db_secret, "key": "url"}}}
        ]
        return {"name": name, "image": image, "env": env, "resources": res}

    head_res = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    worker = pod_template(job, 1, image, db_secret)["spec"]
    if r.gpu_type:
        worker_spec: dict[str, Any] = {"nodeSelector": worker["nodeSelector"]}
    else:
        worker_spec = {}
    return {
        "rayVersion": RAY_VERSION,
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "0", "include-dashboard": "true"},  # RayJob submits via it
            "template": {"spec": {"containers": [container("ray-head", head_res)]}},
        },
        "workerGroupSpecs": [
            {
                "groupName": "workers",
                "replicas": job.workers,
                "minReplicas": job.workers,
                "maxReplicas": job.workers,
                "rayStartParams": {},
                "template": {
                    "metadata": {"labels": labels(job)},
                    "spec": {"containers": [container("ray-worker", resources(r))], **worker_spec},
                },
            }
        ],
    }


def ray_cluster(
    job: GangJob,
    attempt: int = 1,
    image: str = DEFAULT_IMAGE,
    db_secret: str = "imts-db",
    gang: Gang = "volcano",
) -> dict[str, Any]:
    """A ``ray.io/v1`` RayCluster for the job's gang: point a pool's ``ray_address`` at its head
    service (``<name>-head-svc:6379``) and the Ray executor places the job's workers on it."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": _name(job), "labels": {**labels(job), **_gang_labels(job, gang)}},
        "spec": ray_cluster_spec(job, image, db_secret),
    }


def ray_job(
    job: GangJob,
    attempt: int = 1,
    image: str = DEFAULT_IMAGE,
    db_secret: str = "imts-db",
    gang: Gang = "volcano",
) -> dict[str, Any]:
    """A ``ray.io/v1`` RayJob: a cluster made for this attempt, whose entrypoint is the IMTS worker.

    KubeRay may report such a job "Running" after its head died (kuberay #2161); IMTS does not rely on
    that status: the worker heartbeats into the database, and a silent attempt is requeued."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": _name(job), "labels": {**labels(job), **_gang_labels(job, gang)}},
        "spec": {
            "entrypoint": " ".join(["python", "-m", WORKER_MODULE, job.id, "--attempt", str(attempt)]),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "backoffLimit": 0,  # retries are the IMTS scheduler's decision, as for every executor
            "submissionMode": "K8sJobMode",
            "rayClusterSpec": ray_cluster_spec(job, image, db_secret),
        },
    }


RENDERERS = {
    "volcano": volcano_job,
    "pytorchjob": pytorch_job,
    "rayjob": ray_job,
    "raycluster": ray_cluster,
    "rayjob-kueue": functools.partial(ray_job, gang="kueue"),
    "raycluster-kueue": functools.partial(ray_cluster, gang="kueue"),
}
