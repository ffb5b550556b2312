"""`data fix` through the service and the job kind: plan, apply, lineage, review, findings, kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import make_ws, write_jsonl

from imts.analysis.findings import Action, Finding, FindingKind, Severity
from imts.core.errors import InputError
from imts.data.service import import_file
from imts.data.split import split_version
from imts.data.versions import list_versions, load_rows, resolve
from imts.jobs.service import run_inline
from imts.optimise import service
from imts.optimise.audit import audit
from imts.optimise.pii.engine import find
from imts.optimise.spec import FixSpec, read_findings
from imts.services.kinds import load
from imts.store.context import Context

load()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, mathgen: ModuleType) -> tuple[Path, dict]:
    rows, manifest = mathgen.generate(n=500, seed=3)
    return write_jsonl(tmp_path_factory.mktemp("fix") / "math.jsonl", rows), manifest


def _split(ws: Context, path: Path) -> str:
    v = import_file(ws, path, "math")
    return split_version(ws, resolve(ws, v.ref), (0.8, 0.1, 0.1), 0, "category", 13).ref


def test_plan_then_apply_replaces_pii_rewrites_and_augments(ws: Context, data: tuple[Path, dict]) -> None:
    path, manifest = data
    ref = _split(ws, path)
    spec = FixSpec(data=ref, pii=True, cot=True, augment={"division": 0.1}, review_share=0.15)
    plan = service.plan_fix(ws, spec)
    assert plan.planned and plan.pii_rows >= len(manifest["pii_ids"])
    assert plan.augment["division"].wanted > 0 and plan.version is None
    report = run_inline(ws, "data_fix", spec)
    new = resolve(ws, report.version).version
    assert new.parents == [resolve(ws, ref).version.id] and new.operation == "fix"
    rows = load_rows(ws, new)
    # PII: no original value remains anywhere (train, val, test); the rows are still there.
    before = {r["id"]: r for r in load_rows(ws, resolve(ws, ref))}
    originals = {
        s.text for i in manifest["pii_ids"] for m in before[i]["messages"] for s in find(m["content"])
    }
    assert originals and not [o for o in originals for r in rows for m in r["messages"] if o in m["content"]]
    # CoT: every rewrite kept is verified; every answer-only training row is rewritten or listed.
    for cat in report.cot.values():
        assert cat.rewritten + 0 <= cat.answer_only
    assert sum(c.rewritten for c in report.cot.values()) >= 0.9 * sum(
        c.answer_only for c in report.cot.values()
    )
    # Augmentation: the target share is reached (minus what waits in review), every item audits right.
    aug = report.augment["division"]
    added = [r for r in rows if r["id"].startswith("aug-")]
    assert added and all(r["split"] == "train" for r in added)
    assert all(audit(r)[0] for r in added)
    assert aug.accepted == aug.wanted and aug.accept_rate > 0
    pending = service.list_reviews(ws)
    assert pending and len(pending) == report.review["pending"]
    assert {p.kind for p in pending} <= {"generated", "rewritten"}
    again = service.apply_fix(ws, spec, new.params["job"])  # a requeued attempt after the commit
    assert again.version == new.ref and len(service.list_reviews(ws)) == len(pending)
    held = {p.row_id for p in pending}
    assert not held & {r["id"] for r in added}  # held items are not in the version
    # change log: why each row changed
    log = new.report["changes"]
    assert {c["change"] for c in log} == {"added", "rewritten", "replaced"}
    # review: accept one, reject one; only the accepted one enters the next version
    gen = [p for p in pending if p.kind == "generated"] or pending
    service.decide(ws, gen[0].id, accept=True)
    if len(pending) > 1:
        service.decide(ws, pending[-1].id, accept=False, reason="wording")
    reviewed = service.commit_reviewed(ws, new.id)
    ids = [r["id"] for r in load_rows(ws, reviewed)]
    assert len(ids) == len(set(ids))
    if gen[0].kind == "generated":
        assert gen[0].row_id in ids and len(ids) == len(rows) + 1
    if len(pending) > 1 and pending[-1].kind == "generated":
        assert pending[-1].row_id not in ids


def test_findings_drive_the_same_operations(ws: Context, data: tuple[Path, dict], tmp_path: Path) -> None:
    path, _ = data
    ref = import_file(ws, path, "m").ref
    pii = {"kind": FindingKind.PERSONAL_DATA, "severity": Severity.SEVERE, "action": Action.PII_REPLACE}
    few = {"kind": FindingKind.UNDER_REPRESENTED, "severity": Severity.WARNING, "action": Action.AUGMENT}
    findings = [
        Finding(**pii, message_en="personal data", message_zh="个人信息"),
        Finding(
            **few, message_en="few", message_zh="少", params={"category": "division", "target_share": 0.05}
        ),
    ]
    file = tmp_path / "findings.json"
    file.write_text(json.dumps({"findings": [f.model_dump(mode="json") for f in findings]}))
    spec = FixSpec(data=ref, findings=read_findings(file)).resolved()
    assert spec.pii and spec.augment == {"division": 0.05} and not spec.cot
    plan = service.plan_fix(ws, FixSpec(data=ref, findings=findings))
    assert plan.pii_rows > 0 and plan.augment["division"].wanted > 0
    file.write_text('[{"kind": "personal_data"}]')
    with pytest.raises(InputError) as err:
        read_findings(file)
    assert err.value.file == str(file) and "findings[0]" in (err.value.field or "")
    with pytest.raises(InputError):
        FixSpec(data=ref).resolved()


_KILLED = """
import json, sys
from pathlib import Path
from imts.jobs.registry import JobContext, get
from imts.core.progress import NullProgress
from imts.services.kinds import load
from tests.conftest import make_ws
load()
ws = make_ws(Path(sys.argv[1]))
state = Path(sys.argv[2])
data = json.loads(state.read_text()) if state.exists() else {}
def save(d):
    tmp = state.with_suffix(".tmp"); tmp.write_text(json.dumps(d)); tmp.replace(state)
kind = get("data_fix")
spec = kind.parse(json.loads(sys.argv[3]))
job = JobContext(ws, "job_killed", int(sys.argv[4]), data, save, lambda: False, NullProgress(), 0.0)
print(kind.run(job, spec).version)
"""


@pytest.mark.parametrize("during", ["cot", "augment"])
def test_kill_minus_9_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, data: tuple[Path, dict], during: str
) -> None:
    """Killed while rewriting, or while augmenting (personal data replaced first, in both): the
    resumed fix makes the very version an uninterrupted run makes."""
    from imts.optimise.service import PII_PURPOSE
    from imts.store.models import ProjectSecret

    path, _ = data
    a, b = make_ws(tmp_path / "a"), make_ws(tmp_path / "b")
    refs = [_split(x, path) for x in (a, b)]
    with b.session() as s:  # the same project key: the same surrogates (they are keyed per project)
        s.add(
            ProjectSecret(
                project_id=b.project_id, purpose=PII_PURPOSE, secret=service.project_secret(a).hex()
            )
        )
    spec = {"data": refs[0], "pii": True, "cot": True, "augment": {"division": 0.12}, "seed": 7}
    whole = run_inline(a, "data_fix", spec)
    state = tmp_path / "state.json"
    env = dict(os.environ)
    cmd = [sys.executable, "-c", _KILLED, str(tmp_path / "b"), str(state), json.dumps(spec)]
    proc = subprocess.Popen([*cmd, "1"], env=env, cwd=Path(__file__).parents[2])
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        saved_now = json.loads(state.read_text()).get("fix", {}) if state.exists() else {}
        if saved_now.get(during):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = json.loads(state.read_text())["fix"]
    assert saved[during]  # some verified work was saved before the kill
    if during == "cot":
        assert not saved.get("augment")  # killed before the augmentation began
    out = subprocess.run([*cmd, "2"], env=env, cwd=Path(__file__).parents[2], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    resumed = resolve(b, out.stdout.strip().splitlines()[-1]).version
    assert resumed.content_hash == resolve(a, whole.version).version.content_hash
    ids = [r["id"] for r in load_rows(b, resumed)]
    assert len(ids) == len(set(ids))
    # a third attempt (as if killed after its commit) returns the same version and makes no other
    from imts.core.progress import NullProgress
    from imts.jobs.registry import JobContext, get

    kind = get("data_fix")
    job = JobContext(b, "job_killed", 3, {}, lambda d: None, lambda: False, NullProgress(), 0.0)
    assert kind.run(job, kind.parse(spec)).version == resumed.ref
    assert len([v for v in list_versions(b, "math") if v.operation == "fix"]) == 1


def test_two_hundred_generated_items_pass_the_independent_audit(mathgen: ModuleType) -> None:
    from imts.optimise.augment import AugmentState, Guard, augment_category
    from imts.optimise.cot import is_answer_only

    rows = []
    for r in mathgen.generate(n=800, seed=11)[0]:
        messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        rows.append({"id": r["id"], "messages": messages, "answer": r["answer"], "category": r["category"]})
    seeds = [r for r in rows if r["category"] == "division" and not is_answer_only(r)]
    state = augment_category("division", seeds, 200, Guard(rows, []), 5, AugmentState())
    assert len(state.accepted) == 200
    verdicts = [audit(r) for r in state.accepted]
    assert [w for ok, w in verdicts if not ok] == []
    assert len({r["messages"][0]["content"] for r in state.accepted}) == 200


def test_a_multi_step_category_is_also_chained_from_one_step_rows(mathgen: ModuleType) -> None:
    """A multi-step category's new items each extend a one-step problem of another category by a step on
    its answer (English and Chinese, both forms); every one passes the independent audit."""
    import json as _json

    from imts.agents.judges.math import extract_steps
    from imts.optimise.augment import AugmentState, Guard, augment_category, chain_seeds
    from imts.optimise.cot import assistant_text, is_answer_only, user_text

    rows = []
    for r in mathgen.generate(n=800, seed=12, zh_share=0.5)[0]:
        messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        rows.append({"id": r["id"], "messages": messages, "answer": r["answer"], "category": r["category"],
                     "lang": r["lang"]})  # fmt: skip
    train = [r for r in rows if not is_answer_only(r)]
    assert chain_seeds("addition", train) == []  # a one-step category is not chained
    links = chain_seeds("multi_step", train)
    by_id = {r["id"]: r for r in train}
    assert links and {r["category"] for r in links} == {"addition", "subtraction", "multiplication"}
    seeds = [r for r in train if r["category"] == "multi_step"]
    state = augment_category("multi_step", seeds, 80, Guard(rows, []), 7, AugmentState(), chain_seeds=links)
    assert len(state.accepted) == 80
    assert [w for ok, w in map(audit, state.accepted) if not ok] == []
    chained = [r for r in state.accepted if _json.loads(r["meta"])["generator"] == "embedded-chain"]
    forms = {True: 0, False: 0}
    assert len(chained) == 80 and {r["lang"] for r in chained} == {"en", "zh"}
    for item in chained:
        seed = by_id[_json.loads(item["meta"])["seed_row"]]
        assert seed["category"] != "multi_step" and item["category"] == "multi_step"
        steps = extract_steps(assistant_text(item))
        assert len(steps) == 2 and steps[1].expression.startswith(steps[0].claimed)  # it works on the answer
        question, mark = user_text(item), "?" if item["lang"] == "en" else "？"
        assert question.endswith(mark)
        forms[question.count(mark) > 1] += 1  # an event before the seed's question, or a follow-up after it
        new = steps[1].expression.split()[-1]  # the follow-up's number comes after the seed's numbers
        assert re.search(rf"(?<!\d){new}(?!\d)", question.split(steps[0].expression.split()[0])[-1])
    assert forms[True] and forms[False]


def test_a_language_is_augmented_to_its_target_share_in_its_own_category_mix(mathgen: ModuleType) -> None:
    from collections import Counter

    from imts.optimise.apply import plan_or_apply

    rows = []
    for r in mathgen.generate(n=400, seed=13, zh_share=0.25)[0]:
        messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        rows.append({"id": r["id"], "messages": messages, "answer": r["answer"], "category": r["category"],
                     "lang": r["lang"]})  # fmt: skip
    spec = FixSpec(data="x", augment_lang={"zh": 0.4})
    _, _, _, planned, _ = plan_or_apply(rows, spec, b"k", plan=True)
    assert planned.augment["lang:zh"].wanted > 0 and planned.augment["lang:zh"].accepted == 0
    fixed, _, changes, report, _ = plan_or_apply(rows, spec, b"k")
    info = report.augment["lang:zh"]
    added = fixed[len(rows) :]
    assert info.accepted == len(added) == len(changes) == info.wanted
    assert {r["lang"] for r in added} == {"zh"} and info.after >= 0.4 > info.before
    assert sum(r["lang"] == "zh" for r in fixed) / len(fixed) >= 0.4
    assert [w for ok, w in map(audit, added) if not ok] == []
    # the new rows follow the language's own category mix (within sampling error)
    own = Counter(r["category"] for r in rows if r["lang"] == "zh")
    new = Counter(r["category"] for r in added)
    assert set(new) <= set(own) and new.most_common(1)[0][0] in {c for c, _ in own.most_common(2)}
    with pytest.raises(InputError, match="augment_lang"):
        FixSpec(data="x", augment_lang={"zh": 1.5}).resolved()


def test_a_chat_teachers_unverified_rewrites_are_rejected_and_listed(mathgen: ModuleType) -> None:
    from imts.agents.backends import RulesBackend
    from imts.optimise.apply import plan_or_apply

    rows = []
    for r in mathgen.generate(n=120, seed=4)[0]:
        messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        rows.append({"id": r["id"], "messages": messages, "answer": r["answer"], "category": r["category"]})
    # The rules backend has no model: its fixed reply holds no steps, so the verifier refuses every one.
    fixed, _, changes, report, _ = plan_or_apply(rows, FixSpec(data="x", cot=True), b"k", chat=RulesBackend())
    assert report.not_rewritten and not changes and fixed == rows
    assert all("verifier" in x["reason"] for x in report.not_rewritten)
    assert sum(c.answer_only for c in report.cot.values()) == len(report.not_rewritten)


def test_personal_data_is_replaced_in_every_field_of_every_format(ws: Context, tmp_path: Path) -> None:
    """Not only the messages: the answer, the source's other fields (kept in ``meta``) and preference
    rows' prompt/chosen/rejected; nothing of the original values is left anywhere in a row."""
    phone, email, name = "13812345678", "lily.carter@example.com", "Lily Carter"
    sft = [
        {"id": f"s{i}", "prompt": f"{name} has {i + 2} apples. How many are left after eating 1?",
         "response": f"{i + 2} - 1 = {i + 1}. The answer is {i + 1}.", "answer": str(i + 1),
         "contact": f"call {phone} or write to {email}"}
        for i in range(6)
    ]  # fmt: skip
    pref = [
        {"id": f"p{i}", "prompt": f"How do I reach {name}?", "chosen": f"Write to {email}.",
         "rejected": f"Call {phone} at midnight."}
        for i in range(4)
    ]  # fmt: skip
    for name_, rows in (("people", sft), ("pairs", pref)):
        v = import_file(ws, write_jsonl(tmp_path / f"{name_}.jsonl", rows), name_)
        report = run_inline(ws, "data_fix", {"data": v.ref, "pii": True})
        assert report.pii_rows == len(rows)
        for row in load_rows(ws, resolve(ws, report.version).version):
            text = json.dumps(row, ensure_ascii=False)
            assert phone not in text and email not in text and "Carter" not in text, text
        if name_ == "people":
            meta = json.loads(load_rows(ws, resolve(ws, report.version).version)[0]["meta"])
            assert meta["contact"].startswith("call ") and "@" in meta["contact"]  # replaced, still usable
