"""One contract for the CLI, local or remote: each verb runs twice against one real `imts server`
process, once with ``--server`` and an API key (over the API) and once without (the local services on
the server's own workspace), and the two answers are compared; the upload of `data import` is compared
with a local import of the same file. A command that acts only on this machine's workspace refuses
while a server is set, instead of acting locally.

The CLI runs in this process (Click's runner: one process per call would take seconds each); the
server is a real process, started once for the module.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from click.testing import Result
from tests.api.conftest import Side, _model, imts_process, imts_server
from tests.conftest import write_jsonl
from typer.testing import CliRunner

from imts.cli.main import app
from imts.core.settings import get_settings

PASSWORD = "remote-verbs-Pass-4410"
AT = ("--tenant", "acme", "--project", "nlp")


@dataclass
class Remote:
    url: str
    key: str
    root: Path
    env: dict[str, str]  # the server's environment (its workspace)

    def cli(self, *args: str, remote: bool = True) -> Result:
        """``imts [--server URL] --tenant acme --project nlp ARGS`` in this process."""
        server = ("--server", self.url) if remote else ()
        return CliRunner().invoke(app, [*server, *AT, *args])

    def both(self, *args: str, ok: bool = True) -> tuple[Result, Result]:
        """The command locally (on the server's workspace) and remotely; both succeed unless not ``ok``."""
        local, remote = self.cli(*args, remote=False), self.cli(*args)
        if ok:
            assert local.exit_code == 0, f"local {args}: {local.output}"
            assert remote.exit_code == 0, f"remote {args}: {remote.output}"
        return local, remote

    def same(self, *args: str) -> Any:
        """The command's output, the same locally and remotely (JSON when it prints JSON)."""
        local, remote = self.both(*args)
        if "--json" in args:  # the same values (an object's keys may come in another order)
            assert json.loads(remote.stdout) == json.loads(local.stdout), f"{args}: {remote.stdout}"
            return json.loads(local.stdout)
        assert remote.stdout == local.stdout, f"{args}:\nlocal:\n{local.stdout}\nremote:\n{remote.stdout}"
        return local.stdout


@contextmanager
def serving(root: Path, **settings: str) -> Iterator[Remote]:
    """A real `imts server` on a fresh workspace under ``root``, tenant acme with project nlp, and an API
    key of its platform administrator in IMTS_API_KEY; ``settings`` (``IMTS_...`` variables) hold for the
    server and for the local side alike."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMTS_")}
    env |= {"IMTS_WORKSPACE": str(root / "ws"), "IMTS_MODEL_CACHE": str(root / "cache"), **settings}
    init = imts_process(env, "admin", "init", "--username", "boss", "--password-stdin", stdin=PASSWORD + "\n")
    assert init.returncode == 0, init.stderr
    made = imts_process(env, "keys", "create", "--user", "boss", "--name", "cli")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    with imts_server(env, root / "server.log") as (url, _), pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("IMTS_")]:
            mp.delenv(name)
        for name in ("IMTS_WORKSPACE", "IMTS_MODEL_CACHE", *settings):
            mp.setenv(name, env[name])
        mp.setenv("IMTS_API_KEY", key)
        mp.chdir(root)
        get_settings.cache_clear()
        try:
            r = Remote(url, key, root, env)
            for args in (("tenants", "create", "acme"), ("projects", "create", "nlp", "--tenant", "acme")):
                done = CliRunner().invoke(app, ["--server", url, *args])
                assert done.exit_code == 0, done.output
            yield r
        finally:
            get_settings.cache_clear()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    with serving(tmp_path_factory.mktemp("remote-verbs")) as r:
        yield r


def _rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    cats = ("add", "sub")
    return [
        {"id": f"r{i}", "prompt": f"What is {i} plus {i + 1}?", "response": f"{i} + {i + 1} = {2 * i + 1}",
         "category": cats[i % 2]}
        for i in range(start, start + n)
    ]  # fmt: skip


def _flat(text: str) -> str:
    """``text`` on one line with its version ids masked (a table or a long line wraps by its length)."""
    return " ".join(re.sub(r"\bdv_[0-9a-z]+", "dv_…", text).split())


def test_a_local_only_command_refuses_while_a_server_is_set(remote: Remote, tmp_path: Path) -> None:
    """It names itself, says that it acts only on this machine's workspace and what works remotely;
    nothing local is opened (IMTS_SERVER as well as --server)."""
    merge = remote.cli("data", "merge", "qa", "qa@1")
    assert merge.exit_code == 2, merge.output
    said = " ".join(merge.output.split())
    assert "`imts data merge` acts only on this machine's workspace" in said, said
    assert "unset IMTS_SERVER" in said and "Remote verbs:" in said and "data import" in said
    assert "Traceback" not in merge.output

    fresh = {k: v for k, v in remote.env.items() if k != "IMTS_WORKSPACE"}
    fresh |= {
        "IMTS_WORKSPACE": str(tmp_path / "never"),
        "IMTS_SERVER": remote.url,
        "IMTS_API_KEY": remote.key,
    }
    redteam = imts_process(fresh, "redteam", "qa@1")
    assert redteam.returncode == 2 and "`imts redteam` acts only on this machine's workspace" in " ".join(
        redteam.stderr.split()
    ), redteam.stderr
    assert "Traceback" not in redteam.stderr and not (tmp_path / "never").exists()
    # Commands about this machine itself still act on it: the first administrator of a new workspace.
    init = imts_process(fresh, "admin", "init", "--password-stdin", stdin=PASSWORD + "\n")
    assert init.returncode == 0 and "platform administrator admin created" in init.stdout, init.stderr
    # A verb that works remotely but not with this option says so, instead of acting locally.
    resume = remote.cli("train", "--resume", "run_x")
    assert resume.exit_code == 2 and "not with --server" in resume.output
    inline = remote.cli("eval", "--model", "m", "--data", "qa@1", "--inline")
    assert inline.exit_code == 2 and "--inline runs in this process" in " ".join(inline.output.split())


def test_data_verbs_remote_as_local(remote: Remote, tmp_path: Path) -> None:
    """The chunked upload imports what a local import makes (rows, content hash); a bad row names the
    file and line as locally; show, preview, stats, split, dedup, diff, rollback, lineage, share answer
    the same over the API as locally."""
    qa = write_jsonl(tmp_path / "qa.jsonl", _rows(20))
    up = remote.cli("data", "import", str(qa), "--name", "qa")
    assert up.exit_code == 0, up.output
    here = remote.cli("data", "import", str(qa), "--name", "qa-local", remote=False)
    assert here.exit_code == 0, here.output
    assert (
        _flat(up.stdout).split("imported", 1)[1]
        == _flat(here.stdout.replace("qa-local@1", "qa@1")).split("imported", 1)[1]
    )
    listed = {f"{v['dataset']}@{v['number']}": v for v in remote.same("data", "list", "--json")}
    assert listed["qa@1"]["num_rows"] == listed["qa-local@1"]["num_rows"] == 20
    assert listed["qa@1"]["content_hash"] == listed["qa-local@1"]["content_hash"]

    bad = write_jsonl(tmp_path / "bad.jsonl", [_rows(1)[0], {"prompt": "no answer"}])
    local_bad, remote_bad = remote.both("data", "import", str(bad), "--name", "bad", ok=False)
    assert local_bad.exit_code == remote_bad.exit_code == 2
    line = " ".join(local_bad.output.split()).replace(str(tmp_path) + "/", "")
    reason = line.split("bad.jsonl:2", 1)[1]
    assert "bad.jsonl:2" in line and "bad.jsonl:2" + reason in " ".join(remote_bad.output.split())

    shown = remote.same("data", "show", "qa@1", "--json", "--rows", "2")
    assert shown["num_rows"] == 20 and len(shown["sample"]) == 2
    remote.same("data", "show", "qa@1")
    page = remote.same("data", "preview", "qa", "--where", "category = 'add'", "--limit", "3", "--json")
    assert page["total"] == 10 and len(page["rows"]) == 3
    remote.same("data", "stats", "qa", "--json")

    split_remote = remote.cli("data", "split", "qa", "--seed", "3")
    split_local = remote.cli("data", "split", "qa-local", "--seed", "3", remote=False)
    assert split_remote.exit_code == split_local.exit_code == 0, split_remote.output + split_local.output
    assert split_remote.stdout.startswith("split into qa@2: train ")
    # the same last line (locally the split's own bars and narrative come before it)
    last = split_local.stdout.strip().splitlines()[-1].replace("qa-local@2", "qa@2")
    assert split_remote.stdout.strip().splitlines()[-1] == last
    listed = {f"{v['dataset']}@{v['number']}": v for v in remote.same("data", "list", "--json")}
    assert listed["qa@2"]["content_hash"] == listed["qa-local@2"]["content_hash"]
    assert listed["qa@2"]["stats"]["split"] == listed["qa-local@2"]["stats"]["split"]

    remote.same("data", "diff", "qa@1", "qa@2", "--json")
    twins = [{**r, "id": f"twin{i}"} for i, r in enumerate(_rows(2))]  # the same rows again
    dup = write_jsonl(tmp_path / "dup.jsonl", _rows(6) + twins)
    for where, name in ((True, "dup"), (False, "dup-local")):
        assert remote.cli("data", "import", str(dup), "--name", name, remote=where).exit_code == 0
    dedup_remote = remote.cli("data", "dedup", "dup", "--exact-only")
    dedup_local = remote.cli("data", "dedup", "dup-local", "--exact-only", remote=False)
    assert dedup_remote.exit_code == dedup_local.exit_code == 0, dedup_remote.output + dedup_local.output
    result = _flat(dedup_remote.stdout).split("dedup -> ", 1)[1]
    assert result == _flat(dedup_local.stdout.replace("dup-local", "dup")).split("dedup -> ", 1)[1]
    assert "8 -> 6 rows (-2 exact" in _flat(dedup_remote.stdout), dedup_remote.output
    back = remote.cli("data", "rollback", "qa", "1")
    assert back.exit_code == 0 and back.stdout.startswith("rolled back: qa@3 = "), back.output
    lineage = remote.same("data", "lineage", "qa", "--json")
    assert [v["ref"] for v in lineage["versions"]] == ["qa@1", "qa@2", "qa@3"]
    assert remote.cli("projects", "create", "other", "--tenant", "acme").exit_code == 0
    shared = remote.cli("data", "share", "qa@1", "--with", "other")
    assert shared.exit_code == 0 and "there it is nlp/qa@1" in shared.stdout, shared.output

    # A URL is the server's to fetch: a path of the server's disk is refused, as over the API.
    nowhere = remote.cli("data", "import", str(tmp_path / "missing.jsonl"))
    assert nowhere.exit_code == 2 and "no file" in nowhere.output
    append = remote.cli("data", "import", str(qa), "--name", "qa", "--append")
    assert append.exit_code == 2 and "--append works only on this machine" in " ".join(append.output.split())


def test_analysis_remote_as_local(remote: Remote, tmp_path: Path) -> None:
    """`data analyze` runs on the server and prints what a local analysis prints; the stored analyses,
    their reports and --out read the same."""
    qa = write_jsonl(tmp_path / "sums.jsonl", _rows(30))
    assert remote.cli("data", "import", str(qa), "--name", "sums").exit_code == 0
    intent = (
        "data",
        "analyze",
        "sums",
        "--intent",
        "Solve arithmetic word problems step by step",
        "--no-map",
    )
    local, there = remote.both(*intent, "--json")
    a, b = json.loads(local.stdout), json.loads(there.stdout)
    assert a["id"] != b["id"] and a["verdict"] == b["verdict"] == "fits"
    assert {k: v for k, v in a.items() if k not in ("id", "reports")} == {
        k: v for k, v in b.items() if k not in ("id", "reports")
    }
    listed = remote.same("data", "analysis", "sums", "--list", "--json")
    assert [x["id"] for x in listed] == [b["id"], a["id"]]
    assert "fits" in remote.same("data", "analysis", "sums")
    assert remote.same("data", "analysis", "sums", "--format", "md", "--id", a["id"]).strip()
    out = tmp_path / "reports"
    saved = remote.cli(*intent, "--out", str(out))
    assert saved.exit_code == 0, saved.output
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "report.html", "report.md"]
    assert "Dataset health report" in (out / "report.html").read_text("utf-8")


def test_runs_models_jobs_and_loops_remote_as_local(remote: Remote, tmp_path: Path) -> None:
    """runs list/show/compare, models list/show, jobs submit/logs/delete, loop status/list/log/stop
    and their refusals: the same over the API as locally."""
    from imts.cli.common import machine_context
    from imts.flywheel import service as loops
    from imts.flywheel.spec import LoopSpec
    from imts.store import runs
    from imts.store.context import open_context
    from imts.store.models import BaseModelRecord

    ctx = machine_context()  # the server's workspace, written here as the other tests' fixtures do
    mv = _model(ctx, Side(tenant="acme", project="nlp"))
    pctx = open_context(ctx.ws, "acme", "nlp", "local", "admin", platform_admin=True)
    run = runs.create(pctx, "eval", {"model": "m", "data": "d"})
    runs.log_batch(pctx, run.id, [(0, {"accuracy": 0.5})])
    runs.finish(pctx, run.id, "succeeded", {"accuracy": 0.5, "n": 2})

    found = remote.same("runs", "list", "--json")
    assert run.id in [r["id"] for r in found]
    remote.same("runs", "list", "--kind", "eval")
    remote.same("runs", "show", run.id)
    remote.same("runs", "compare", *[r["id"] for r in found[:2]], "--json")
    models = remote.same("models", "list", "--json")
    assert [m["id"] for m in models["model_versions"]] == [mv]
    remote.same("models", "list")
    remote.same("models", "show", mv)
    missing_local, missing_remote = remote.both("runs", "show", "run_nope", ok=False)
    assert missing_local.exit_code == missing_remote.exit_code == 2
    assert missing_local.output.removeprefix("error: ").strip() in missing_remote.output

    done = remote.cli("jobs", "submit", "sleep", "seconds=0", "--follow")
    assert done.exit_code == 0 and "succeeded" in done.stdout, done.output
    job = done.stdout.split()[1]
    logs = remote.same("jobs", "logs", job)
    assert logs.startswith("== attempt 1 ==")
    followed = remote.cli("jobs", "logs", "-f", job)
    assert followed.exit_code == 0 and followed.stdout.endswith("== job succeeded ==\n"), followed.output
    assert logs.split("\n", 1)[1] in followed.stdout
    deleted = remote.cli("jobs", "delete", job)
    assert deleted.exit_code == 0 and f"delete requested for {job}; now deleted" in deleted.stdout

    bm = f"bm_{uuid.uuid4().hex[:12]}"
    with ctx.session() as s:
        s.add(BaseModelRecord(id=bm, name=bm, path=str(tmp_path), architecture="Llama", num_params=1,
                              source="test", checksum="0" * 64))  # fmt: skip
    spec = LoopSpec(intent="Teach the model to add numbers and answer with the sum", data="mv-data",
                    base_model=bm, probe="")  # fmt: skip
    loop = loops.stop(pctx, loops.start(pctx, spec).id).id
    listed = remote.same("loop", "list", "--json")
    assert [v["id"] for v in listed] == [loop]
    assert remote.same("loop", "status", "--json")["status"] == "stopped"
    remote.same("loop", "status", loop)
    remote.same("loop", "log", loop, "--json")
    remote.same("loop", "log")
    local, there = remote.both("loop", "approve", loop, ok=False)
    assert local.exit_code == there.exit_code == 2
    assert local.output.removeprefix("error: ").strip() in there.output
    start = ("loop", "start", "--intent", "Teach the model to add numbers", "--data", "nope", "--base-model",
             bm, "--probe", "", "--detach")  # fmt: skip
    local, there = remote.both(*start, ok=False)
    assert local.exit_code == there.exit_code == 2 and "nope" in there.output
    stopped = remote.cli("loop", "stop", loop)
    assert stopped.exit_code in (0, 2), stopped.output  # stopping a stopped loop: refused, or a no-op
    assert "Traceback" not in stopped.output


def test_train_and_eval_run_as_jobs_on_the_server(remote: Remote, tiny_model: Path, math_file: Path) -> None:
    """`imts train` and `imts eval` with --server submit jobs to the server's pool, follow them to their
    end and print the run's summary; the runs are the server's (the same locally on its workspace)."""
    # A base model is registered on the server's machine (`models add` is local: a folder of its disk).
    added = remote.cli("models", "add", str(tiny_model), "--name", "tiny", remote=False)
    assert added.exit_code == 0, added.output
    assert remote.cli("data", "import", str(math_file), "--name", "math").exit_code == 0
    assert remote.cli("data", "split", "math@1").exit_code == 0
    tiny = ["max_steps=2", "batch_size=4", "lora.r=4", "precision=fp32", "eval_every=1000"]
    trained = remote.cli("train", "--data", "math@2", "--base", "tiny", "--cpus", "1", *tiny)
    assert trained.exit_code == 0, trained.output
    said = _flat(trained.stdout)
    found = re.search(r"trained run (run_\w+): final loss \d", said)
    assert found is not None and "queued (follow: imts jobs logs -f job_" in said, said
    run = remote.same("runs", "list", "--json")[0]
    assert run["id"] == found[1] and run["status"] == "succeeded"
    test_set = ("--data", "math@2:test", "--limit", "4", "--cpus", "1")
    evaluated = remote.cli("eval", "--model", found[1], *test_set)
    assert evaluated.exit_code == 0, evaluated.output
    said = _flat(evaluated.stdout)
    assert re.search(r"evaluated run run_\w+ on math@2:test: accuracy \d", said), said
    # The trained version exported and checked on the server (its exports/), then downloaded into --out.
    here = remote.root / "adapter-here"
    fetched = remote.cli("models", "export", found[1], "--format", "adapter", "--out", str(here))
    assert fetched.exit_code == 0 and f"as adapter: {here} (" in _flat(fetched.stdout), fetched.output
    assert (here / "adapter_config.json").is_file() and any(here.glob("*.safetensors"))
    assert "logits within" in fetched.stdout
    mine = remote.root / "adapter-mine"
    local = remote.cli("models", "export", found[1], "--format", "adapter", "--out", str(mine), remote=False)
    assert local.exit_code == 0, local.output
    said = _flat(local.stdout.replace(str(mine), str(here)))
    assert said.split(" MB)")[0] == _flat(fetched.stdout).split(" MB)")[0]
    assert sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in here.iterdir())
    local, there = remote.both("models", "export", found[1], "--format", "adapter", ok=False)  # made: refused
    assert local.exit_code == there.exit_code == 2 and "exists and is not empty" in local.output
    assert local.output.removeprefix("error: ").strip() in " ".join(there.output.split())


def test_remote_verbs_help_and_docs_agree() -> None:
    """The --server help and docs/server.md name the same remote verbs."""
    from imts.cli.common import REMOTE_VERBS

    root = Path(__file__).resolve().parents[2]
    doc = " ".join((root / "docs" / "server.md").read_text(encoding="utf-8").split())
    assert REMOTE_VERBS in doc
    server = next(p for p in typer.main.get_command(app).params if p.name == "server")
    assert REMOTE_VERBS in str(getattr(server, "help", ""))
