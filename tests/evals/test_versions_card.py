"""Comparing two model versions (spec, data, evaluations, verdict with significance) and their model
cards (Hugging Face format, English and Chinese), over real rows on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard
from tests.registry.factory import versions

from imts.evals.card import model_card
from imts.evals.versions import compare_versions
from imts.registry.views import ModelVersionView
from imts.store import runs
from imts.store.context import Context
from imts.store.models import EvalItem


def _evaluate(ctx: Context, mv: ModelVersionView, right: set[int], n: int = 40) -> str:
    """A finished eval run of ``mv`` whose items ``right`` are correct (two categories)."""
    run = runs.create(ctx, "eval", {"model": mv.label, "data": "tuned-data@1"}, model_version_id=mv.id,
                      dataset_version_id=mv.dataset_version_id, split="test")  # fmt: skip
    cats = ["addition" if i % 2 else "division" for i in range(n)]
    with ctx.session() as s:
        for i in range(n):
            s.add(EvalItem(run_id=run.id, item_id=f"q{i}", category=cats[i], lang="en", prompt=f"{i}?",
                           reference="1", prediction="1" if i in right else "0", extracted=None,
                           correct=i in right, score=float(i in right)))  # fmt: skip
    per = {c: {"correct": sum(1 for i in range(n) if cats[i] == c and i in right), "total": n // 2}
           for c in ("addition", "division")}  # fmt: skip
    per["all"] = {"correct": len(right), "total": n}
    summary = {"accuracy": len(right) / n, "n": n, "per_category": per, "model_label": mv.label}
    runs.finish(ctx, run.id, "succeeded", summary)
    return run.id


def test_compare_two_versions_gives_spec_data_evals_and_a_significant_verdict(
    any_ws: Context, tmp_path: Path
) -> None:
    ctx = any_ws
    v1, v2 = versions(ctx, tmp_path, 2)
    (other,) = versions(ctx, tmp_path, 1, name="other")
    no_evals = compare_versions(ctx, v1.id, v2.id)
    assert no_evals.evaluations == [] and "no verdict" in no_evals.verdict
    assert "无法判断" in no_evals.verdict_zh
    assert no_evals.spec == {"lr": [0.001, 0.002]} and no_evals.data is None

    _evaluate(ctx, v1, set(range(0, 40, 4)))  # 10 of 40
    _evaluate(ctx, v2, set(range(0, 40, 4)) | set(range(1, 40, 2)))  # 30 of 40
    cmp = compare_versions(ctx, "tuned:1", "tuned:2", lang="zh")
    (pair,) = cmp.evaluations
    assert (pair.n, pair.accuracy_a, pair.accuracy_b, pair.only_a, pair.only_b) == (40, 0.25, 0.75, 0, 20)
    assert pair.per_category == {"division": [0.5, 0.5], "addition": [0.0, 1.0]}
    assert cmp.significant and pair.p_value < 1e-4
    assert cmp.verdict.startswith("tuned:2 is better than tuned:1 by 50.0 points (significant at 0.05)")
    assert "比 tuned:1 好 50.0 个百分点" in cmp.verdict_zh
    assert cmp.report["html"].is_file() and "tuned:2" in cmp.report["md"].read_text()
    # The other way round, and against a version trained on other data: a data diff.
    assert "worse" in compare_versions(ctx, "tuned:2", "tuned:1").verdict
    assert compare_versions(ctx, v1.id, other.id).data is not None


def test_model_card_in_the_hugging_face_format_in_english_and_chinese(
    any_ws: Context, tmp_path: Path
) -> None:
    ctx = any_ws
    (v1,) = versions(ctx, tmp_path, 1)
    _evaluate(ctx, v1, set(range(1, 40, 2)) | {0, 2, 4, 6, 8, 10})  # addition all right, division 6/20
    card = model_card(ctx, v1.id)
    assert card.path is not None and card.path.read_text() == card.text
    parsed = ModelCard.load(card.path)
    meta = parsed.data.to_dict()
    assert meta["language"] == ["en", "zh"] and meta["datasets"] == ["tuned-data@1"]
    result = meta["model-index"][0]["results"][0]
    assert result["metrics"][0] == {"type": "accuracy", "value": 0.65}
    text = parsed.text
    assert "accuracy 65.0% (95% interval" in text and "准确率 65.0%（95% 区间" in text
    assert "- division on `tuned-data@1`: 30.0% of 20 items" in text
    assert "`tuned-data@1` 上的 division" in text
    assert "| lr | 0.001 |" in text and "health score: not assessed" in text and "健康评分：未评估" in text
    assert "AutoModelForCausalLM.from_pretrained" in text and "## 加载方法" in text
