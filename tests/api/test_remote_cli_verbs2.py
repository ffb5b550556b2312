"""The rest of the CLI against a server (issue 12, item 3): loop report, data export / embed / fix /
pii-scan / review, the registry's aliases, tags, archive, delete, compare, card and pull, deployments,
and the pool (quotas set through a pool file: ``test_remote_cli_verbs3.py``). As in
``test_remote_cli_verbs.py``, each verb runs against one real `imts server` and locally on the same
workspace, and the two answers are compared.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from tests.api.conftest import Side, _model
from tests.api.test_remote_cli_verbs import Remote, _rows
from tests.api.test_remote_cli_verbs import remote as remote  # the fixture: this module's own server
from tests.conftest import write_jsonl


def _unbarred(text: str) -> str:
    """``text`` without the lines of progress bars (a local command's own work shows one)."""
    return "".join(line for line in text.splitlines(keepends=True) if "━" not in line)


def _masked(text: str) -> str:
    """``text`` on one line, its version numbers and alias-change numbers masked."""
    text = re.sub(r"@\d+", "@N", re.sub(r"#\d+", "#N", text))
    return " ".join(text.split())


def test_export_embed_fix_and_review_remote_as_local(remote: Remote, tmp_path: Path) -> None:
    """`data export` streams the same file as a local export; embed, pii-scan, fix --plan, fix --apply
    (a job on the server's pool) and the review queue answer the same over the API as locally."""
    # answer-only rows (a chain-of-thought fix rewrites them) with an e-mail address in each prompt
    rows = [{**r, "prompt": f"{r['prompt']} Reply to user{i}@example.com", "response": str(2 * i + 1)}
            for i, r in enumerate(_rows(8))]  # fmt: skip
    src = write_jsonl(tmp_path / "ex.jsonl", rows)
    assert remote.cli("data", "import", str(src), "--name", "ex").exit_code == 0

    for name in ("ex.jsonl", "ex.parquet"):
        out = tmp_path / name
        local = remote.cli("data", "export", "ex@1", str(out), remote=False)
        assert local.exit_code == 0, local.output
        here = out.read_bytes()
        there = remote.cli("data", "export", "ex@1", str(out))
        assert there.exit_code == 0, there.output
        assert there.stdout == local.stdout and "exported 8 rows" in there.stdout
        if name.endswith(".jsonl"):
            assert out.read_bytes() == here
        else:
            import pyarrow.parquet as pq

            assert pq.read_table(out).to_pylist() == pq.read_table(tmp_path / name).to_pylist()
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    missing_local, missing_remote = remote.both(
        "data", "export", "nope@1", str(tmp_path / "x.jsonl"), ok=False
    )
    assert missing_local.exit_code == missing_remote.exit_code == 2
    assert missing_local.output.removeprefix("error: ").strip() in " ".join(missing_remote.output.split())
    hf = remote.cli("data", "export", "ex@1", str(tmp_path / "hf"))
    assert hf.exit_code == 2 and "Hugging Face folder" in hf.output

    first = remote.cli("data", "embed", "ex@1")  # computed on the server; then read back (cached)
    assert first.exit_code == 0 and "embedded ex@1: 8 rows" in first.stdout, first.output
    local, again = remote.both("data", "embed", "ex@1")
    assert again.stdout == local.stdout and "cached" in again.stdout
    assert remote.same("data", "embed", "ex@1", "--json")["rows"] == 8
    assert remote.cli("data", "embed", "ex@1", "--out", str(tmp_path / "v.npy")).exit_code == 2

    scan = remote.same("data", "pii-scan", "ex", "--json")
    assert scan["rows_with_pii"] == 8
    local, there = remote.both("data", "pii-scan", "ex")  # the same, but for this process's own bar
    assert _unbarred(there.stdout) == _unbarred(local.stdout) and "8 of 8 rows" in there.stdout
    plan = remote.same("data", "fix", "ex", "--pii", "--cot", "--json")
    assert plan["planned"] and plan["pii_rows"] == 8
    remote.same("data", "fix", "ex", "--pii")

    fix = ("data", "fix", "ex@1", "--cot", "--review-share", "1.0", "--apply", "--json")
    local = remote.cli(*fix, remote=False)  # inline here
    there = remote.cli(*fix)  # a data_fix job on the server's pool, followed
    assert local.exit_code == 0 and there.exit_code == 0, local.output + there.output
    assert there.stdout.startswith("job job_") and " queued\n" in there.stdout, there.output
    a, b = json.loads(local.stdout), json.loads(there.stdout[there.stdout.index("{") :])
    assert a["version"] != b["version"]
    for key in ("source", "cot", "review", "changes", "not_rewritten"):
        assert a[key] == b[key], key
    inline = remote.cli("data", "fix", "ex@1", "--cot", "--apply", "--inline")
    assert inline.exit_code == 2 and "--inline runs in this process" in " ".join(inline.output.split())

    held = remote.same("data", "review", "list", "--json")
    assert len(held) == 2 * a["review"]["pending"] > 0
    remote.same("data", "review", "list")
    first_item, second_item = held[0]["id"], held[1]["id"]
    accepted = remote.cli("data", "review", "accept", first_item)
    assert accepted.stdout == f"accepted {held[0]['row_id']}\n", accepted.output
    local, there = remote.both("data", "review", "accept", first_item, ok=False)  # decided already
    assert local.exit_code == there.exit_code == 2
    assert local.output.removeprefix("error: ").strip() in " ".join(there.output.split())
    rejected = remote.cli("data", "review", "reject", second_item, "--reason", "wrong", remote=False)
    assert rejected.stdout == f"rejected {held[1]['row_id']}\n"
    assert remote.same("data", "review", "list", "--status", "all", "--json")[0]["status"] == "accepted"
    fix_version = held[0]["fix_version"]
    local, there = remote.both("data", "review", "commit", fix_version)
    assert _masked(there.stdout) == _masked(local.stdout) and "committed ex@" in there.stdout


def test_registry_deployments_pool_and_loop_report_remote_as_local(
    remote: Remote,
    tmp_path: Path,
) -> None:
    """aliases, protection, tags, archive, compare, card, delete, pull, deploy add/list/remove, pool
    show/costs and loop report: the same over the API as locally."""
    from imts.cli.common import machine_context
    from imts.flywheel import service as loops
    from imts.flywheel.spec import LoopSpec
    from imts.store.context import open_context
    from imts.store.models import BaseModelRecord

    ctx = machine_context()
    side = Side(tenant="acme", project="nlp")
    first, second = _model(ctx, side), _model(ctx, side)
    shown = json.loads(remote.same("models", "show", second))
    name = shown["name"]
    one = "{name}:{version}".format(**json.loads(remote.same("models", "show", first)))

    there = remote.cli("models", "alias", first, "staging")
    local = remote.cli("models", "alias", first, "champion", remote=False)
    assert there.exit_code == local.exit_code == 0, there.output + local.output
    assert _masked(there.stdout.replace("staging", "X")) == _masked(local.stdout.replace("champion", "X"))
    assert remote.same("models", "alias-history", name, "--json")[0]["alias"] in ("champion", "staging")
    remote.same("models", "alias-history", name)
    remote.same("models", "alias-history", name, "--alias", "staging", "--json")
    there = remote.cli("models", "protect", name, "staging", "--role", "admin")
    local = remote.cli("models", "protect", name, "champion", "--role", "admin", remote=False)
    assert there.stdout.replace("staging", "X") == local.stdout.replace("champion", "X"), there.output
    assert "protected" in there.stdout
    there = remote.cli("models", "protect", name, "staging", "--lift")
    local = remote.cli("models", "protect", name, "champion", "--lift", remote=False)
    assert there.stdout.replace("staging", "X") == local.stdout.replace("champion", "X"), there.output
    remote.same("models", "tag", first, "gold", "reviewed")
    assert "tags gold, reviewed" in remote.same("models", "tag", first, "--remove", "none")
    local, there = remote.both("models", "archive", first, ok=False)  # aliased: refused
    assert local.exit_code == there.exit_code == 2
    assert local.output.removeprefix("error: ").strip() in " ".join(there.output.split())
    assert remote.same("models", "archive", second).endswith("archived\n")
    assert remote.same("models", "archive", second, "--undo").endswith("restored\n")
    cmp = remote.same("models", "compare", first, second, "--json")
    assert cmp["a"]["id"] == first
    card = remote.same("models", "card", first)
    assert card.startswith(f"model card of {one}")
    remote.same("models", "card", first, "--print")

    deployed = remote.cli("deploy", "add", name, "--alias", "staging")
    assert deployed.exit_code == 0 and f"deployed {name}@staging as {name}@staging" in deployed.stdout
    bm = f"bm_{uuid.uuid4().hex[:12]}"
    with ctx.session() as s:
        s.add(BaseModelRecord(id=bm, name=bm, path=str(tmp_path), architecture="Llama", num_params=1,
                              source="test", checksum="0" * 64))  # fmt: skip
    assert remote.cli("deploy", "add", bm, "--base", remote=False).exit_code == 0
    listed = remote.same("deploy", "list")
    assert one in listed and "base model" in listed
    gone = remote.cli("deploy", "remove", f"{name}@staging")
    assert gone.stdout == f"removed deployment {name}@staging\n", gone.output
    local, there = remote.both("deploy", "remove", f"{name}@staging", ok=False)
    assert local.exit_code == there.exit_code == 2
    assert local.output.removeprefix("error: ").strip() in " ".join(there.output.split())
    assert remote.cli("deploy", "remove", bm, remote=False).exit_code == 0

    for alias in ("staging", "champion"):
        assert remote.cli("models", "unalias", name, alias, remote=alias == "staging").exit_code == 0
    # In use (the test's base model record points at its weights' folder): refused the same way.
    local, there = remote.both("models", "delete", second, "--yes", ok=False)
    assert (
        local.exit_code == there.exit_code == 2
        and f"model {name}:{shown['version']} is in use" in local.output
    )
    assert local.output.removeprefix("error: ").strip() in " ".join(there.output.split())
    local, there = remote.both("models", "pull", "no-such-model", ok=False)
    assert local.exit_code == there.exit_code == 2
    assert local.output.removeprefix("error: ").strip() in " ".join(there.output.split())

    remote.same("pool", "show")
    pool_local, pool_remote = (json.loads(r.stdout) for r in remote.both("pool", "show", "--json"))
    for state in (pool_local, pool_remote):
        state["pool"].pop("at")
    assert pool_remote == pool_local and "acme" in pool_remote["quota"]["tenant"]
    costs = [json.loads(r.stdout) for r in remote.both("pool", "costs", "--json")]
    assert [{k: v for k, v in c.items() if k != "at"} for c in costs] == [
        {"priced": False, "currency": "", "total": 0.0, "projects": []}
    ] * 2
    remote.same("pool", "costs")
    # `pool quota`: shown the same; without a pool file (IMTS_POOL_FILE) setting is refused the same way
    assert remote.same("pool", "quota", "--json")["pool_file"] is None
    assert "no pool file" in remote.same("pool", "quota")
    local, there = remote.both("pool", "quota", "--max-jobs", "2", ok=False)
    assert local.exit_code == there.exit_code == 2 and "IMTS_POOL_FILE" in local.output
    assert local.output.removeprefix("error: ").strip() in " ".join(there.output.split())

    pctx = open_context(ctx.ws, "acme", "nlp", "local", "admin", platform_admin=True)
    spec = LoopSpec(intent="Teach the model to add numbers and answer with the sum", data="mv-data",
                    base_model=bm, probe="")  # fmt: skip
    loop = loops.stop(pctx, loops.start(pctx, spec).id).id
    for fmt in ("md", "html"):
        out = tmp_path / f"report.{fmt}"
        local = remote.cli("loop", "report", loop, "--out", str(out), "--format", fmt, remote=False)
        assert local.exit_code == 0, local.output
        here = out.read_text("utf-8")
        there = remote.cli("loop", "report", loop, "--out", str(out), "--format", fmt)
        assert there.stdout == local.stdout and out.read_text("utf-8") == here, there.output
    assert loop in here or "iteration" in here
    default = remote.cli("loop", "report", "--lang", "zh", "--format", "md")  # the latest loop, into ./
    assert default.exit_code == 0 and (remote.root / f"{loop}-zh.md").is_file(), default.output
