"""Rendered Kubernetes manifests validate against the real CRD schemas (Volcano Job, PyTorchJob)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from imts.jobs import k8s, service
from imts.jobs.pool import Request
from imts.jobs.service import Submission
from imts.jobs.sleep import SleepJob
from imts.store.context import Context as Workspace
from imts.store.context import open_context

CRDS = Path(__file__).parent / "crds"


def schema(file: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are large: use libyaml if present
    crd = yaml.load((CRDS / file).read_text(encoding="utf-8"), Loader=loader)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    return {
        "volcano": schema("batch.volcano.sh_jobs.yaml"),
        "pytorchjob": schema("kubeflow.org_pytorchjobs.yaml"),
    }


def test_manifests_validate_and_carry_the_gang(jws: Workspace, schemas: dict[str, dict[str, Any]]) -> None:
    team_a = open_context(jws.ws, "team-a", "default")  # a job's tenant is its project's
    sub = Submission(
        "sleep",
        SleepJob(seconds=1),
        priority_class="high",
        workers=3,
        request=Request(cpus=1),
    )
    row = service.get(team_a, service.submit(team_a, sub))
    vj = k8s.volcano_job(row, attempt=2)
    jsonschema.validate(vj, schemas["volcano"])
    assert vj["spec"]["minAvailable"] == 3 and vj["spec"]["queue"] == "team-a"
    assert vj["spec"]["priorityClassName"] == "imts-high"
    cmd = vj["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["command"]
    assert cmd[-3:] == [row.id, "--attempt", "2"]
    pj = k8s.pytorch_job(row)
    jsonschema.validate(pj, schemas["pytorchjob"])
    assert pj["spec"]["runPolicy"]["schedulingPolicy"]["minAvailable"] == 3
    assert pj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2


def test_gpu_and_mig_requests(jws: Workspace) -> None:
    assert k8s.resources(Request(cpus=4, memory_gb=16, gpus=2))["limits"] == {
        "memory": "16384Mi",
        "nvidia.com/gpu": 2,
    }
    assert "nvidia.com/mig-1g.10gb" in k8s.resources(Request(mig="1g.10gb"))["requests"]


def test_schema_catches_a_broken_manifest(jws: Workspace, schemas: dict[str, dict[str, Any]]) -> None:
    row = service.get(jws, service.submit(jws, Submission("sleep", SleepJob())))
    bad = copy.deepcopy(k8s.volcano_job(row))
    bad["spec"]["minAvailable"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["volcano"])
    bad = copy.deepcopy(k8s.pytorch_job(row))
    del bad["spec"]["pytorchReplicaSpecs"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["pytorchjob"])


@pytest.mark.parametrize("gang", ["volcano", "kueue"])
def test_kuberay_manifests_validate_against_the_crds(jws: Workspace, gang: str) -> None:
    team_a = open_context(jws.ws, "team-a", "default")
    sub = Submission("sleep", SleepJob(seconds=1), priority_class="high", workers=2, request=Request(cpus=1))
    row = service.get(team_a, service.submit(team_a, sub))
    rj = k8s.RENDERERS["rayjob" if gang == "volcano" else "rayjob-kueue"](row, 3, k8s.DEFAULT_IMAGE, "db")
    rc = k8s.RENDERERS["raycluster" if gang == "volcano" else "raycluster-kueue"](
        row, 3, k8s.DEFAULT_IMAGE, "db"
    )
    jsonschema.validate(rj, schema("ray.io_rayjobs.yaml"))
    jsonschema.validate(rc, schema("ray.io_rayclusters.yaml"))
    assert rj["spec"]["entrypoint"].endswith(f"imts.services.worker {row.id} --attempt 3")
    group = rc["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == group["minReplicas"] == 2  # the gang, whole
    assert group["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "1"
    if gang == "volcano":
        assert rc["metadata"]["labels"]["volcano.sh/queue-name"] == "team-a"
        assert rc["metadata"]["labels"]["ray.io/scheduler-name"] == "volcano"
    else:
        assert rj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    broken = copy.deepcopy(rc)
    broken["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema("ray.io_rayclusters.yaml"))
