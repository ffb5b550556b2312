"""The analysis of the example generator's data against its manifest (the ground truth), stored with
the version; refusal, --force and the fit gate; reports in the intent's language."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import write_jsonl

from imts.analysis import service
from imts.analysis.findings import FindingKind, Severity
from imts.analysis.pipeline import AnalysisOptions
from imts.core.errors import InputError
from imts.data import service as data
from imts.data.dedup import exact_duplicates, exact_key, near_duplicates
from imts.store.context import Context

INTENT = "我想训练一个能解决小学奥数题的数学模型"


@pytest.fixture(scope="module")
def generated(mathgen: ModuleType) -> tuple[list[dict], dict]:
    return mathgen.generate(n=1000, seed=7)


def _by_kind(a: service.Analysis, kind: FindingKind) -> list:  # type: ignore[name-defined]
    return [f for f in a.findings if f.kind == kind]


def test_findings_match_the_manifest(ws: Context, tmp_path: Path, generated: tuple[list[dict], dict]) -> None:
    rows, manifest = generated
    # No category field: the categories must be inferred from the operations each problem needs.
    bare = [{k: v for k, v in r.items() if k != "category"} for r in rows]
    data.import_file(ws, write_jsonl(tmp_path / "math.jsonl", bare), "math")
    a = service.analyze(ws, "math", INTENT, opts=AnalysisOptions(sample=30, clusters=3))
    assert a.status == "complete" and a.fit.verdict == "fits" and a.lang == "zh"
    n = manifest["n"]
    assert a.health and a.health.balance and a.health.balance.source == "inferred_operations"
    for cat, count in manifest["category_counts"].items():
        assert abs(a.health.balance.shares[cat] - count / n) <= 0.01, cat
    under = _by_kind(a, FindingKind.UNDER_REPRESENTED)
    assert [f.params["category"] for f in under] == ["division"] and under[0].severity == Severity.SEVERE

    (ao,) = _by_kind(a, FindingKind.ANSWER_ONLY)
    truth = set(manifest["answer_only_ids"])
    found = set(ao.row_ids)
    assert len(found & truth) / len(found) >= 0.95 and len(found & truth) / len(truth) >= 0.95

    (pii,) = _by_kind(a, FindingKind.PERSONAL_DATA)
    assert len(set(pii.row_ids) & set(manifest["pii_ids"])) / len(manifest["pii_ids"]) >= 0.95

    # Duplicates exactly as the dedup code finds them.
    texts = [r["prompt"] + "\n" + r["response"] for r in rows]
    exact = exact_duplicates([exact_key(t) for t in texts])
    (dup,) = _by_kind(a, FindingKind.DUPLICATE)
    assert set(dup.row_ids) == {rows[i]["id"] for i in exact}
    first = [i for i in range(len(rows)) if i not in exact]
    near = near_duplicates([rows[i]["prompt"] for i in first], 0.7)
    (nd,) = _by_kind(a, FindingKind.NEAR_DUPLICATE)
    assert set(nd.row_ids) == {rows[first[i]]["id"] for i in near}
    assert a.health.score < 100 and {s.name for s in a.health.sub_scores} == {
        "diversity", "balance", "correctness", "reasoning", "privacy"
    }  # fmt: skip

    # Stored with the version; the report speaks the intent's language, or --lang.
    (summary,) = service.list_analyses(ws, "math@1")
    assert summary.verdict == "fits" and summary.findings["answer_only"] == len(ao.row_ids)
    again = service.get_analysis(ws, "math")
    assert again.id == a.id and again.version == "math@1" and len(again.findings) == len(a.findings)
    assert "数据集健康报告" in service.report_path(ws, "math", "md").read_text("utf-8")
    page = service.report_path(ws, "math", "html").read_text("utf-8")
    assert "semantic-map" in page and "Plotly" in page
    assert a.semantic and a.semantic.sample == 30 and len(a.semantic.clusters) == 3
    assert json.loads(service.report_path(ws, "math", "json").read_text("utf-8"))["id"] == a.id


def test_refusal_force_and_gate(ws: Context, tmp_path: Path) -> None:
    poems = [
        {"prompt": f"请赏析这首诗的意境：{line}", "response": f"这句诗{mood}，表达了诗人的{feeling}之情。"}
        for line, mood, feeling in [
            ("床前明月光，疑是地上霜", "以月光写思乡", "思念"),
            ("春眠不觉晓，处处闻啼鸟", "写春日清晨", "惜春"),
            ("白日依山尽，黄河入海流", "气势开阔", "进取"),
            ("红豆生南国，春来发几枝", "借物寄情", "相思"),
            ("独在异乡为异客，每逢佳节倍思亲", "直抒胸臆", "思亲"),
            ("会当凌绝顶，一览众山小", "写登高远望", "豪迈"),
        ]
    ]
    data.import_file(ws, write_jsonl(tmp_path / "poems.jsonl", poems), "poems")
    with pytest.raises(service.AnalysisRefused, match="匹配度"):
        service.analyze(ws, "poems", INTENT, opts=AnalysisOptions(semantic=False))
    (refused,) = service.list_analyses(ws, "poems")
    assert refused.verdict == "refused" and not refused.forced and refused.health_score is None
    with pytest.raises(service.AnalysisRefused):
        service.fit_gate(ws, "poems")
    forced = service.analyze(ws, "poems", INTENT, lang="en", opts=AnalysisOptions(semantic=False, force=True))
    assert forced.fit.forced and forced.health is not None and forced.lang == "en"
    assert _by_kind(forced, FindingKind.OFF_INTENT)[0].params["forced"] is True
    assert service.fit_gate(ws, "poems").forced  # type: ignore[union-attr]
    assert "Dataset health report" in service.report_path(ws, "poems", "md").read_text("utf-8")
    # The ``analyze`` job kind: a refusal is the job's answer (stored), not a failure to retry.
    import imts.analysis.jobs  # noqa: F401  (registers the kind)
    from imts.jobs.service import run_inline

    result = run_inline(ws, "analyze", {"data": "poems@1", "intent": INTENT, "semantic": False})
    assert result.refused and result.verdict == "refused"  # type: ignore[attr-defined]
    assert service.list_analyses(ws, "poems@1")[0].id == result.analysis  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="您希望模型具体做什么"):
        service.analyze(ws, "poems", "make it better")
    with pytest.raises(InputError, match="--lang"):
        service.analyze(ws, "poems", INTENT, lang="fr")


def test_leakage_against_a_registered_evaluation_set(ws: Context, tmp_path: Path) -> None:
    from imts.store.models import Run

    def row(i: int) -> dict[str, str]:
        return {"id": f"r{i}", "prompt": f"What is {i} plus {i + 7}?",
                "response": f"{i} + {i + 7} = {2 * i + 7}. The answer is {2 * i + 7}."}  # fmt: skip

    data.import_file(ws, write_jsonl(tmp_path / "train.jsonl", [row(i) for i in range(10)]), "train")
    held = data.import_file(ws, write_jsonl(tmp_path / "held.jsonl", [row(3), row(50)]), "held")
    with ws.session() as s:
        s.add(Run(id="run_eval1", project_id=ws.project_id, kind="eval", dataset_version_id=held.id))
    a = service.analyze(
        ws, "train", "solve arithmetic word problems step by step", opts=AnalysisOptions(semantic=False)
    )
    (leak,) = _by_kind(a, FindingKind.LEAKAGE)
    assert leak.row_ids == ["r3"] and leak.params["against"] == ["evaluation set held@1"]
    assert leak.severity == Severity.SEVERE
