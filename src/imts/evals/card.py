"""The model card of a version, in the Hugging Face format (YAML header + README), English and Chinese:
base model, data versions with their health and PII treatment, method and hyper-parameters, evaluation
results with 95% intervals, known weak categories, licence, and how to load it.

Written as ``README.md`` into the version's weights folder (so exports carry it) and returned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from imts.data import service as data
from imts.evals.versions import evaluations_of
from imts.registry import service as registry
from imts.registry.views import ModelVersionView
from imts.store.context import Context
from imts.store.runs import RunView

WEAK_GAP = 0.10  # a category this far below the overall accuracy is called weak


class ModelCardView(BaseModel):
    """A generated model card and where it was written."""

    version: str
    path: Path | None
    text: str


class EvalLine(BaseModel):
    data: str
    split: str | None
    n: int
    accuracy: float
    low: float
    high: float
    weak: list[tuple[str, float, int]]  # category, accuracy, items


def model_card(ctx: Context, ref: str, write: bool = True) -> ModelCardView:
    """Generate the card of version ``ref`` (and write it as ``README.md`` beside its weights)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    mv = registry.get_model_version(ctx, ref)
    base = registry.get_base_model(ctx, mv.base_model_id)
    dv = data.resolve(ctx, mv.dataset_version_id).version
    evals = [_eval_line(e) for e in evaluations_of(ctx, mv)]
    meta = ModelCardData(
        language=["en", "zh"],
        license=(base.license or "other").lower(),
        library_name="peft" if mv.adapter_path and not mv.merged_path else "transformers",
        base_model=base.name,
        datasets=[dv.ref],
        tags=["imts", str(mv.spec.get("method", "")), *mv.tags, *(f"alias:{a}" for a in mv.aliases)],
        model_name=mv.label,
        eval_results=[
            EvalResult(task_type="text-generation", dataset_type=e.data, dataset_name=e.data,
                       dataset_split=e.split, metric_type="accuracy", metric_value=round(e.accuracy, 4))
            for e in evals
        ] or None,
    )  # fmt: skip
    facts = _facts(mv, base.name, base.license, dv.ref, dv.num_rows, dv.stats, dv.report)
    body = _english(mv, facts, evals) + "\n\n" + _chinese(mv, facts, evals)
    card = ModelCard(f"---\n{meta.to_yaml()}\n---\n\n{body}\n")
    folder = mv.merged_path or mv.adapter_path
    path = None
    if write and folder and Path(folder).is_dir():
        path = Path(folder) / "README.md"
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(str(card), encoding="utf-8")
        tmp.replace(path)
    return ModelCardView(version=mv.label, path=path, text=str(card))


def _eval_line(e: RunView) -> EvalLine:
    from scipy.stats import binomtest

    n = int(e.summary.get("n", 0))
    acc = float(e.summary.get("accuracy", 0.0))
    correct = round(acc * n)
    ci = binomtest(correct, n).proportion_ci(method="wilson") if n else None
    weak = []
    for cat, v in (e.summary.get("per_category") or {}).items():
        if cat != "all" and v.get("total"):
            cat_acc = v["correct"] / v["total"]
            if cat_acc <= acc - WEAK_GAP:
                weak.append((cat, cat_acc, int(v["total"])))
    return EvalLine(
        data=str(e.spec.get("data", e.dataset_version_id)), split=e.split, n=n, accuracy=acc,
        low=ci.low if ci else 0.0, high=ci.high if ci else 0.0, weak=sorted(weak, key=lambda w: w[1]),
    )  # fmt: skip


def _facts(
    mv: ModelVersionView, base: str, licence: str | None, data_ref: str, rows: int,
    stats: dict[str, Any], report: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    health = (stats.get("health") or report.get("health") or {}) if isinstance(stats, dict) else {}
    pii = report.get("pii") or stats.get("pii")
    spec = mv.spec
    lora = spec.get("lora") or {}
    return {
        "base": base,
        "licence": licence or "see the base model",
        "data": data_ref,
        "rows": rows,
        "health": health.get("score") if isinstance(health, dict) else health,
        "pii": pii,
        "method": spec.get("method", ""),
        "hyper": {
            "lr": spec.get("lr"), "epochs": spec.get("epochs"), "max_steps": spec.get("max_steps"),
            "batch_size": spec.get("batch_size"), "max_seq_len": spec.get("max_seq_len"),
            "lora.r": lora.get("r"), "lora.alpha": lora.get("alpha"), "precision": spec.get("precision"),
            "seed": spec.get("seed"),
        },
        "final_loss": mv.metrics.get("final_loss"),
        "folder": mv.merged_path or mv.adapter_path or "",
        "adapter_only": bool(mv.adapter_path and not mv.merged_path),
        "train_run": mv.train_run_id,
    }  # fmt: skip


def _load(facts: dict[str, Any], mv: ModelVersionView) -> str:
    if facts["adapter_only"]:
        code = (
            "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'base = AutoModelForCausalLM.from_pretrained("{facts["base"]}")\n'
            f'model = PeftModel.from_pretrained(base, "{facts["folder"]}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{facts["folder"]}")'
        )
    else:
        code = (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("{facts["folder"]}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{facts["folder"]}")'
        )
    cli = f"imts models export {mv.label} --format merged|adapter|gguf"
    return f"```python\n{code}\n```\n\n```bash\n{cli}\n```"


def _hyper_table(facts: dict[str, Any]) -> str:
    rows = [f"| {k} | {v} |" for k, v in facts["hyper"].items() if v is not None]
    return "| | |\n| --- | --- |\n" + "\n".join(rows)


def _english(mv: ModelVersionView, f: dict[str, Any], evals: list[EvalLine]) -> str:
    health = f"{f['health']}" if f["health"] is not None else "not assessed"
    pii = f"{f['pii']}" if f["pii"] else "no PII treatment recorded for this version"
    lines = [
        f"# {mv.label}",
        "",
        f"A fine-tune of **{f['base']}** made with IMTS (training run `{f['train_run']}`).",
        "",
        "## Training data",
        f"- `{f['data']}`: {f['rows']} rows; health score: {health}; PII: {pii}",
        "",
        "## Method and hyper-parameters",
        f"Method: `{f['method']}`; final training loss: {_num(f['final_loss'])}.",
        "",
        _hyper_table(f),
        "",
        "## Evaluation",
    ]
    if not evals:
        lines.append(f"Not evaluated yet: `imts eval --model {mv.label} --data <dataset>`.")
    for e in evals:
        lines.append(
            f"- `{e.data}` (split {e.split}): accuracy {e.accuracy:.1%} "
            f"(95% interval {e.low:.1%} – {e.high:.1%}, n={e.n})"
        )
    lines += ["", "## Known weak categories"]
    weak = [(e.data, w) for e in evals for w in e.weak]
    lines += [f"- {w[0]} on `{d}`: {w[1]:.1%} of {w[2]} items" for d, w in weak] or [
        "None found (no category 10 points or more below the overall accuracy)."
    ]
    lines += ["", "## Licence", f"{f['licence']} (the base model's licence applies).", ""]
    lines += ["## How to load it", _load(f, mv)]
    return "\n".join(lines)


def _chinese(mv: ModelVersionView, f: dict[str, Any], evals: list[EvalLine]) -> str:
    health = f"{f['health']}" if f["health"] is not None else "未评估"
    pii = f"{f['pii']}" if f["pii"] else "本版本未记录个人信息处理"
    lines = [
        f"# {mv.label}（中文）",
        "",
        f"基于 **{f['base']}** 用 IMTS 微调的模型（训练运行 `{f['train_run']}`）。",
        "",
        "## 训练数据",
        f"- `{f['data']}`：{f['rows']} 行；健康评分：{health}；个人信息：{pii}",
        "",
        "## 方法与超参数",
        f"方法：`{f['method']}`；最终训练损失：{_num(f['final_loss'])}。",
        "",
        _hyper_table(f),
        "",
        "## 评估结果",
    ]
    if not evals:
        lines.append(f"尚未评估：`imts eval --model {mv.label} --data <数据集>`。")
    for e in evals:
        lines.append(
            f"- `{e.data}`（划分 {e.split}）：准确率 {e.accuracy:.1%}"
            f"（95% 区间 {e.low:.1%} – {e.high:.1%}，n={e.n}）"
        )
    lines += ["", "## 已知薄弱类别"]
    weak = [(e.data, w) for e in evals for w in e.weak]
    lines += [f"- `{d}` 上的 {w[0]}：{w[2]} 题中答对 {w[1]:.1%}" for d, w in weak] or [
        "未发现（没有比总体准确率低 10 个百分点以上的类别）。"
    ]
    lines += ["", "## 许可证", f"{f['licence']}（适用基础模型的许可证）。", "", "## 加载方法", _load(f, mv)]
    return "\n".join(lines)


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) else "—"
