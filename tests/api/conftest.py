"""A two-tenant world behind the real app: users of every role in each tenant, real objects, API keys.

``OTHER_OBJECTS`` is the registry the isolation test builds path parameters from: path-parameter name
→ a function creating a real object in the given tenant's project and returning the value to put in
the path. A resource that adds routes adds its parameters here (``dataset``, ``job_id``…), and
``tests/api/test_isolation.py`` then calls its routes with the other tenant's real objects.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from tests.conftest import PG_ADMIN_URL, make_ws

from imts.api.app import create_app
from imts.core.permissions import ROLES, Role
from imts.data import service as data_service
from imts.data.uploads import UploadDeclaration
from imts.jobs.pool import local_pool
from imts.services import identity, tenancy
from imts.store.context import Context, open_context, platform_context, tenant_context

PASSWORD = "correct horse battery staple"


@dataclass
class Side:
    """One tenant of the world: its names, members by role, their keys, and a spare member and key."""

    tenant: str
    project: str
    users: dict[Role, str] = field(default_factory=dict)
    keys: dict[Role, str] = field(default_factory=dict)
    spare_user: str = ""
    spare_key_id: str = ""
    params: dict[str, str] = field(default_factory=dict)  # path parameter → a real object of this side


@dataclass
class World:
    client: TestClient
    admin_key: str  # the platform administrator's (unscoped)
    a: Side
    b: Side
    ctx: Context  # a platform context over the same workspace

    def as_key(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}


ObjectFactory = Callable[[Context, Side], str]


def _project(ctx: Context, side: Side) -> str:
    return side.project


def _tenant(ctx: Context, side: Side) -> str:
    return side.tenant


def _username(ctx: Context, side: Side) -> str:
    return side.spare_user


def _key_id(ctx: Context, side: Side) -> str:
    return side.spare_key_id


def _in_project(ctx: Context, side: Side) -> Context:
    """The side's project with its id (the factories below write project-owned rows)."""
    return open_context(ctx.ws, side.tenant, side.project, ctx.principal, "admin", False, None, True)


def _job_id(ctx: Context, side: Side) -> str:
    """A real job of the side's project: a sleep job, submitted and cancelled before it ran."""
    from imts.jobs import service as jobs

    ctx = _in_project(ctx, side)
    job_id = jobs.submit(ctx, jobs.Submission("sleep", {"seconds": 0}, owner=ctx.principal))
    jobs.request(ctx, job_id, "cancel")
    return job_id


def _run_id(ctx: Context, side: Side) -> str:
    """A real, finished eval run with metrics."""
    from imts.store import runs

    ctx = _in_project(ctx, side)
    run = runs.create(ctx, "eval", {"model": "m", "data": "d"})
    runs.log_batch(ctx, run.id, [(0, {"accuracy": 0.5}), (1, {"accuracy": 0.75})])
    runs.finish(ctx, run.id, "succeeded", {"accuracy": 0.75, "n": 4})
    return run.id


def _model(ctx: Context, side: Side) -> str:
    """A real model version (dataset version, base model record, version row) of the side's project."""
    import tempfile
    from pathlib import Path

    from tests.conftest import write_jsonl

    from imts.data import service as data
    from imts.registry import models
    from imts.store.models import BaseModelRecord

    ctx = _in_project(ctx, side)
    tmp = Path(tempfile.mkdtemp(prefix="imts-model-"))
    rows = [{"prompt": f"{i} + 1 = ?", "response": str(i + 1)} for i in range(4)]
    v = data.import_file(ctx, str(write_jsonl(tmp / "rows.jsonl", rows)), "mv-data")
    bm_id = f"bm_{uuid.uuid4().hex[:12]}"
    with ctx.session() as s:  # base models are shared: named so as to reveal no tenant
        s.add(BaseModelRecord(id=bm_id, name=bm_id, path=str(tmp), architecture="Llama", num_params=1,
                              source="test", checksum="0" * 64))  # fmt: skip
    mv = models.create_version(
        ctx, "tuned", bm_id, _run_id(ctx, side), v.id, None, tmp, {}, {"final_loss": 1.0}
    )
    return mv.id


def _deployment(ctx: Context, side: Side) -> str:
    """A real deployment of the side's project: a base model served under a name of its own."""
    from imts.registry import service
    from imts.store.models import BaseModelRecord

    pctx = _in_project(ctx, side)
    bm = f"bm_{uuid.uuid4().hex[:12]}"
    with ctx.session() as s:
        s.add(BaseModelRecord(id=bm, name=bm, path=str(ctx.settings.workspace), architecture="Llama",
                              num_params=1, source="test", checksum="0" * 64))  # fmt: skip
    return service.add_deployment(pctx, bm, None, f"served-{side.tenant}").name


DATASET = "isolation"


def small_jsonl(path: Path, rows: int = 20, start: int = 0) -> Path:
    """A prompt/response JSONL file of ``rows`` distinct rows."""
    with path.open("w") as f:
        for i in range(start, start + rows):
            f.write(json.dumps({"prompt": f"What is {i} plus {i + 1}?", "response": str(2 * i + 1)}) + "\n")
    return path


def _dataset(ctx: Context, side: Side) -> str:
    pctx = _in_project(ctx, side)
    path = small_jsonl(ctx.settings.workspace / f"{side.tenant}.jsonl")
    data_service.import_file(pctx, path, DATASET)
    return DATASET


def _version_id(ctx: Context, side: Side) -> str:
    return data_service.list_versions(_in_project(ctx, side), DATASET)[-1].id


def _upload_id(ctx: Context, side: Side) -> str:
    decl = UploadDeclaration(file_name="pending.jsonl", size=1 << 20, sha256="0" * 64, chunk_size=1 << 16)
    return data_service.start_upload(_in_project(ctx, side), decl).id


def _webhook_id(ctx: Context, side: Side) -> str:
    from imts.services import webhooks

    # Port 9 (discard) refuses at once: a test delivery fails fast instead of waiting for a timeout.
    return webhooks.add(ctx, "http://127.0.0.1:9/hook", []).id


def _review_item_id(ctx: Context, side: Side) -> str:
    """A row held for review: a real chain-of-thought fix of the side's dataset, every rewrite held."""
    from imts.jobs.service import run_inline
    from imts.optimise import service as optimise

    pctx = _in_project(ctx, side)
    run_inline(pctx, "data_fix", {"data": DATASET, "cot": True, "review_share": 1.0})
    return optimise.list_reviews(pctx)[0].id


def _loop_id(ctx: Context, side: Side) -> str:
    """A real loop of the side's project on its dataset, stopped at once (no scheduler pass drives it)."""
    from imts.flywheel import service as loops
    from imts.flywheel.spec import LoopSpec
    from imts.store.models import BaseModelRecord

    pctx = _in_project(ctx, side)
    bm = f"bm_{uuid.uuid4().hex[:12]}"
    with ctx.session() as s:
        s.add(BaseModelRecord(id=bm, name=bm, path=str(ctx.settings.workspace), architecture="Llama",
                              num_params=1, source="test", checksum="0" * 64))  # fmt: skip
    spec = LoopSpec(intent="Teach the model to add numbers and answer with the sum", data=DATASET,
                    base_model=bm, probe="")  # fmt: skip
    return loops.stop(pctx, loops.start(pctx, spec).id).id


OTHER_OBJECTS: dict[str, ObjectFactory] = {
    "tenant": _tenant,
    "project": _project,
    "username": _username,
    "key_id": _key_id,
    "job_id": _job_id,
    "run_id": _run_id,
    "model": _model,
    "alias": lambda ctx, side: "staging",
    "fmt": lambda ctx, side: "json",
    "format": lambda ctx, side: "adapter",  # an export format
    "dataset": _dataset,
    "ref": _version_id,
    "other": _version_id,
    "upload_id": _upload_id,
    "n": lambda ctx, side: "0",  # a chunk number
    "webhook_id": _webhook_id,
    "deployment": _deployment,
    "item_id": _review_item_id,
    "loop_id": _loop_id,
}


def _side(ctx: Context, name: str) -> Side:
    side = Side(tenant=f"{name}-{uuid.uuid4().hex[:6]}", project=f"{name}-proj")
    tenancy.create_tenant(ctx, side.tenant)
    tctx = tenant_context(ctx.ws, side.tenant, ctx.principal, "admin", platform_admin=True)
    tenancy.create_project(tctx, side.project)
    tenancy.create_project(tctx, f"{name}-second")
    for role in ROLES:
        user = f"{side.tenant}-{role}"
        identity.create_user(ctx, user, PASSWORD)
        identity.add_member(tctx, user, role)
        side.users[role] = user
        side.keys[role] = identity.create_key(ctx, f"{role} key", username=user).secret
    side.spare_user = f"{side.tenant}-spare"
    identity.create_user(ctx, side.spare_user, PASSWORD)
    identity.add_member(tctx, side.spare_user, "viewer")
    side.spare_key_id = identity.create_key(ctx, "spare", side.tenant, username=side.spare_user).id
    project_ctx = Context(ctx.ws, tctx.tenant_id, side.tenant, "", side.project, ctx.principal, "admin",
                          platform_admin=True)  # fmt: skip
    side.params = {name: make(project_ctx, side) for name, make in OTHER_OBJECTS.items()}
    return side


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per module and database (users' argon2 hashes make building it take seconds)."""
    url = None
    if request.param == "postgresql":
        # A database of its own: the audit tests tamper with the chain.
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without a server
        url = _fresh_pg_database(request)
    root = tmp_path_factory.mktemp("world")
    # A pool file (this machine's nodes) so that quotas can be set through the API.
    (root / "pool.yaml").write_text(yaml.safe_dump(local_pool().model_dump(mode="json")), encoding="utf-8")
    # The isolation test answers hundreds of calls with 401 on purpose: out of the address's reach here
    # (test_limits_metrics.py tests the limits of failed authentications).
    # Every route is called without credentials from one address: more than the anonymous limit allows.
    any_ws = make_ws(root, url, pool_file=root / "pool.yaml", api_auth_failure_limit="100000/minute",
                     api_rate_limit_anonymous="100000/minute")  # fmt: skip
    app = create_app(any_ws.settings)
    ctx = platform_context(any_ws.ws, "root")
    admin = f"root-{uuid.uuid4().hex[:6]}"
    identity.create_user(ctx, admin, PASSWORD, platform_admin=True)
    admin_key = identity.create_key(ctx, "admin", username=admin).secret
    ctx = platform_context(any_ws.ws, admin)
    a, b = _side(ctx, "alpha"), _side(ctx, "bravo")
    # https: the session cookie is Secure, as on a real deployment
    with TestClient(app, base_url="https://testserver") as client:
        yield World(client, admin_key, a, b, ctx)


def _fresh_pg_database(request: pytest.FixtureRequest) -> str:
    from sqlalchemy import create_engine, text

    name = f"imts_world_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'create database "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        from imts.store.db import session_factory

        session_factory(url).kw["bind"].dispose()
        with admin.connect() as c:
            c.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()

    request.addfinalizer(drop)
    return url


def fill(path: str, params: dict[str, Any]) -> str:
    """``path`` with its ``{name}`` parameters taken from ``params``."""
    return path.format(**{k: params[k] for k in params if "{" + k + "}" in path})


def imts_process(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real `imts` command in a process of its own (with ``env``, ``stdin`` typed at its prompt)."""
    return subprocess.run([sys.executable, "-m", "imts", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@contextmanager
def imts_server(env: dict[str, str], log: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `imts server` process (more ``args`` after its own) on a free loopback port (with
    ``env``), its output in ``log``: its URL and process, stopped afterwards."""
    import time

    import httpx

    from imts.core.net import free_port

    port = free_port()
    out = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "imts", "server", "--port", str(port), *args], env=env,
                            stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not answer within 60 s: " + log.read_text()[-2000:])
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        out.close()
