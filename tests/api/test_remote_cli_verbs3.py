"""`imts pool quota` and `imts report` against a server (issue 12): as in ``test_remote_cli_verbs.py``,
each runs against one real `imts server` (here with a pool file, so that quotas can be set) and locally on
the same workspace, and the two answers are compared; a caller whose role may not do it gets the
service's own refusal in one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from tests.api.test_remote_cli_verbs import PASSWORD, Remote, serving

from imts.core.errors import ImtsError
from imts.core.settings import get_settings


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    from imts.jobs.pool import local_pool

    root = tmp_path_factory.mktemp("remote-verbs3")
    pool = root / "pool.yaml"
    pool.write_text(yaml.safe_dump(local_pool().model_dump(mode="json")), encoding="utf-8")
    with serving(root, IMTS_POOL_FILE=str(pool)) as r:
        yield r


@contextmanager
def _as(key: str) -> Iterator[None]:
    """The CLI's calls with another API key (IMTS_API_KEY)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMTS_API_KEY", key)
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


def _key(username: str, role: str) -> str:
    """An API key of a new user who is ``role`` in tenant acme."""
    from imts.cli.common import machine_context
    from imts.services import identity
    from imts.store.context import platform_context, tenant_context

    ws = machine_context().ws
    platform = platform_context(ws, "boss")
    identity.create_user(platform, username, PASSWORD)
    identity.add_member(tenant_context(ws, "acme", "boss", "admin", platform_admin=True), username, role)
    return identity.create_key(platform, f"{username} key", username=username).secret


def _refusal(call: object) -> str:
    """The message of the ImtsError ``call()`` raises (the service's own words)."""
    try:
        call()  # type: ignore[operator]
    except ImtsError as exc:
        return str(exc)
    raise AssertionError("not refused")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unfolded(text: str) -> str:
    """``text`` without white space: a long path the terminal's width folded, whole again."""
    return "".join(text.split())


def test_pool_quota_shows_and_sets_remote_as_local(remote: Remote) -> None:
    """Shown and set the same locally and over the API (into the server's pool file); a bad value names
    its option; a tenant administrator may set jobs at once and storage but not the pool-wide fields, a
    viewer nothing: the service's refusal, in one line."""
    from imts.cli.common import machine_context
    from imts.services import pool
    from imts.services.pool import QuotaUpdate
    from imts.store.context import tenant_context

    pool_file = Path(remote.env["IMTS_POOL_FILE"])
    shown = remote.same("pool", "quota", "--json")
    assert shown["tenant"] == "acme" and shown["pool_file"] == str(pool_file) and "nlp" in shown["projects"]
    assert shown["max_concurrent"] is None and shown["projects"]["nlp"]["storage_gb"] is None
    table = remote.same("pool", "quota")
    assert "quotas of tenant acme" in table and "jobs at once" in table and "nlp" in table

    # The same change locally, then remotely (which finds it made): the same answer.
    done = remote.same("pool", "quota", "--max-jobs", "3", "--storage", "5GiB")  # --project nlp's
    assert done.startswith("quota set for tenant acme\n") and "5 GiB" in done
    on_disk = yaml.safe_load(pool_file.read_text(encoding="utf-8"))
    assert (
        on_disk["tenants"]["acme"]["max_concurrent"] == 3
        and on_disk["projects"]["acme/nlp"]["storage_gb"] == 5
    )
    wide = remote.same("pool", "quota", "--weight", "2", "--cpu-hours", "10", "--gpu-hours", "none", "--json")
    assert (wide["weight"], wide["cpu_hours"], wide["gpu_hours"], wide["max_concurrent"]) == (2, 10, None, 3)
    lifted = remote.cli("pool", "quota", "--max-jobs", "none", "--json")
    assert lifted.exit_code == 0 and json.loads(lifted.stdout)["max_concurrent"] is None, lifted.output
    assert yaml.safe_load(pool_file.read_text(encoding="utf-8"))["tenants"]["acme"]["cpu_hours"] == 10

    for bad, said in (
        (("--storage", "nlp=-1"), "field '--storage nlp'"),
        (("--max-jobs", "0"), "'--max-jobs'"),
    ):
        local, there = remote.both("pool", "quota", *bad, ok=False)
        assert local.exit_code == there.exit_code == 2 and local.output == there.output, there.output
        assert said in local.output and "Traceback" not in local.output
    local, there = remote.both("pool", "quota", "--storage", "nope=1", ok=False)
    assert local.exit_code == there.exit_code == 2 and "no project 'nope' in tenant 'acme'" in local.output
    assert local.output.removeprefix("error: ").strip() in _one_line(there.output)

    ws = machine_context().ws
    with _as(_key("carol", "admin")):
        assert remote.same("pool", "quota", "--json")["weight"] == 2  # shown as to the platform admin
        mine = remote.cli("pool", "quota", "--max-jobs", "4", "--storage", "nlp=6")
        assert mine.exit_code == 0 and mine.stdout.startswith("quota set for tenant acme"), mine.output
        refused = remote.cli("pool", "quota", "--weight", "5")
        carol = tenant_context(ws, "acme", "carol", "admin")
        said = _refusal(lambda: pool.set_quota(carol, QuotaUpdate(weight=5)))
        assert refused.exit_code == 2 and "platform administrator" in said, refused.output
        assert said in _one_line(refused.output) and "Traceback" not in refused.output
    with _as(_key("dave", "viewer")):
        assert remote.cli("pool", "quota").exit_code == 0
        refused = remote.cli("pool", "quota", "--max-jobs", "9")
        dave = tenant_context(ws, "acme", "dave", "viewer")
        said = _refusal(lambda: pool.set_quota(dave, QuotaUpdate(max_concurrent=9)))
        assert refused.exit_code == 2 and said in _one_line(refused.output), refused.output
        assert "Traceback" not in refused.output
    final = yaml.safe_load(pool_file.read_text(encoding="utf-8"))
    assert final["tenants"]["acme"]["max_concurrent"] == 4 and final["tenants"]["acme"]["weight"] == 2


def _eval_run(label: str, correct: list[bool]) -> str:
    """A finished eval run of acme/nlp with its items (as an evaluation records them)."""
    from imts.cli.common import machine_context
    from imts.store import runs
    from imts.store.context import open_context
    from imts.store.models import EvalItem

    ctx = open_context(machine_context().ws, "acme", "nlp", "boss", "admin", platform_admin=True)
    run = runs.create(ctx, "eval", {"model": label, "data": "qa@1"})
    with ctx.session() as s:
        s.add_all(
            EvalItem(run_id=run.id, item_id=f"i{n}", category=("add", "sub")[n % 2], lang="en",
                     prompt=f"What is {n} plus 1?", reference=str(n + 1), prediction=str(n + 1 if ok else 0),
                     extracted=str(n + 1 if ok else 0), correct=ok, score=float(ok))
            for n, ok in enumerate(correct)
        )  # fmt: skip
    summary = {"accuracy": sum(correct) / len(correct), "n": len(correct), "model_label": label}
    runs.finish(ctx, run.id, "succeeded", summary)
    return run.id


def test_report_remote_as_local(remote: Remote, tmp_path: Path) -> None:
    """The server builds the report: the CLI prints the same Markdown and the files it downloads are the
    ones a local report writes; --evaluate refuses with --server (no route evaluates for a report), and
    a refusal is the same both ways."""
    from imts.cli.common import machine_context
    from imts.services import reports
    from imts.services.reports import ReportRequest
    from imts.store.context import open_context

    first = _eval_run("base", [n % 3 == 0 for n in range(12)])
    second = _eval_run("tuned", [n % 4 != 0 for n in range(12)])
    args = ("report", "--evals", first, "--evals", second, "--no-clusters")
    out = tmp_path / "rep"
    for lang in ("en", "zh"):
        local = remote.cli(*args, "--lang", lang, "--out", str(out), remote=False)
        assert local.exit_code == 0, local.output
        here = {p.name: p.read_bytes() for p in out.iterdir()}
        there = remote.cli(*args, "--lang", lang, "--out", str(out))
        assert there.exit_code == 0, there.output
        assert there.stdout == local.stdout and _unfolded(there.stdout).endswith(f"report{out}/report.html")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == here
        assert sorted(here) == ["report.html", "report.json", "report.md"]
        title = here["report.md"].decode("utf-8").splitlines()[0]
        assert title.lstrip("# ") in there.stdout and ("base vs tuned" in title or lang == "zh"), title

    # Without --out: locally the workspace's report, remotely RUN-LANG/ in the current folder.
    local = remote.cli(*args, remote=False)
    workspace = reports.report_file(open_context(machine_context().ws, "acme", "nlp"), second, "md")
    assert _unfolded(local.stdout).endswith(_unfolded(str(workspace.with_suffix(".html")))), local.output
    there = remote.cli(*args)
    assert there.exit_code == 0 and _unfolded(there.stdout).endswith(f"report{second}-en/report.html")
    assert (remote.root / f"{second}-en" / "report.md").read_bytes() == workspace.read_bytes()

    evaluate = remote.cli(*args, "--evaluate")
    assert evaluate.exit_code == 2 and "no route of the server" in _one_line(evaluate.output)
    assert "imts eval" in evaluate.output and "Traceback" not in evaluate.output
    local, there = remote.both("report", "--evals", first, "--evals", "run_nope", "--no-clusters", ok=False)
    assert local.exit_code == there.exit_code == 2 and "run_nope" in local.output
    assert local.output.removeprefix("error: ").strip() in _one_line(there.output)
    local, there = remote.both("report", "--evals", first, ok=False)
    assert local.exit_code == there.exit_code == 2 and local.output == there.output
    with _as(_key("erin", "viewer")):
        refused = remote.cli(*args)
        erin = open_context(machine_context().ws, "acme", "nlp", "erin", "viewer")
        said = _refusal(lambda: reports.generate(erin, ReportRequest(evals=[first, second])))
        assert refused.exit_code == 2 and said in _one_line(refused.output), refused.output
