"""The strings a report shows, in English and Chinese: ``t(key, lang, **kw)``.

Proper names (McNemar, Bradley–Terry, LoRA) and numbers stay as they are; everything a reader sees as a
heading, label, sentence or axis title is looked up here, so a new language is one more column.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["CATALOGUE", "LANGS", "Lang", "check_lang", "fact_label", "t"]

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = get_args(Lang)

CATALOGUE: dict[str, dict[Lang, str]] = {
    # titles
    "title.before_after": {
        "en": "Before / after fine-tuning: {base} -> {model}",
        "zh": "微调前后对比：{base} -> {model}",
    },
    "title.models": {"en": "Comparison of {n} models: {labels}", "zh": "{n} 个模型的对比：{labels}"},
    # headline and category table
    "accuracy": {"en": "Accuracy", "zh": "准确率"},
    "accuracy_colon": {"en": "Accuracy:", "zh": "准确率："},
    "accuracy_axis": {"en": "accuracy", "zh": "准确率"},
    "pts": {"en": "pts", "zh": "个百分点"},
    "on_items": {"en": "on {n} items", "zh": "共 {n} 个样本"},
    "category": {"en": "category", "zh": "类别"},
    "n": {"en": "n", "zh": "样本数"},
    "baseline": {"en": "baseline", "zh": "基线"},
    "tuned": {"en": "tuned", "zh": "微调后"},
    "baseline_colon": {"en": "baseline:", "zh": "基线："},
    "tuned_colon": {"en": "tuned:", "zh": "微调后："},
    "baseline_acc": {"en": "baseline acc", "zh": "基线准确率"},
    "tuned_acc": {"en": "tuned acc", "zh": "微调后准确率"},
    "delta_pts": {"en": "Δ pts", "zh": "Δ 百分点"},
    "all": {"en": "all", "zh": "全部"},
    # HTML sections
    "capabilities": {"en": "Capabilities", "zh": "能力分布"},
    "training_curves": {"en": "Training curves", "zh": "训练曲线"},
    "per_category": {"en": "Per-category accuracy", "zh": "各类别准确率"},
    "fixed_items": {"en": "Fixed items (wrong → right): {n}", "zh": "修正的样本（错 → 对）：{n}"},
    "broken_items": {"en": "Broken items (right → wrong): {n}", "zh": "退化的样本（对 → 错）：{n}"},
    "showing": {"en": "Showing {shown} of {total}.", "zh": "显示 {total} 个中的 {shown} 个。"},
    "none_found": {"en": "None.", "zh": "无。"},
    "reference_colon": {"en": "reference:", "zh": "参考答案："},
    "extracted_colon": {"en": "extracted:", "zh": "提取结果："},
    "nothing": {"en": "none", "zh": "无"},
    # Markdown
    "md_fixed": {"en": "Fixed (wrong → right): {n}", "zh": "修正（错 → 对）：{n}"},
    "md_broken": {"en": "Broken (right → wrong): {n}", "zh": "退化（对 → 错）：{n}"},
    "md_more": {"en": "… and {n} more", "zh": "… 另有 {n} 个"},
    "md_none_from": {"en": "none from", "zh": "未提取，原文"},
    "md_ref": {"en": "ref", "zh": "参考"},
    # training curves figure
    "loss": {"en": "Loss", "zh": "损失"},
    "learning_rate": {"en": "Learning rate", "zh": "学习率"},
    "grad_norm": {"en": "Grad norm", "zh": "梯度范数"},
    "tokens_per_s": {"en": "Tokens/s", "zh": "每秒 token 数"},
    "train_loss": {"en": "train loss", "zh": "训练损失"},
    "val_loss": {"en": "val loss", "zh": "验证损失"},
    "lr_trace": {"en": "learning rate", "zh": "学习率"},
    "grad_norm_trace": {"en": "grad norm", "zh": "梯度范数"},
    "tokens_per_s_trace": {"en": "tokens/s", "zh": "token/秒"},
    "step": {"en": "step", "zh": "步数"},
    # significance, win rates, ranking, clusters
    "significance": {"en": "Significance (paired, same items)", "zh": "显著性（配对检验，同一批样本）"},
    "accuracy_a_b": {"en": "accuracy A → B", "zh": "准确率 A → B"},
    "only_right": {"en": "only A / only B right", "zh": "仅 A 对 / 仅 B 对"},
    "mcnemar_p": {"en": "McNemar p", "zh": "McNemar p 值"},
    "delta_ci": {"en": "Δ score, 95% bootstrap CI", "zh": "Δ 得分，95% bootstrap 置信区间"},
    "win_rates_ranking": {"en": "Win rates and ranking", "zh": "胜率与排名"},
    "win_rate_title": {
        "en": "Win rate of row over column (95% Wilson interval)",
        "zh": "行模型对列模型的胜率（95% Wilson 区间）",
    },
    "rank": {"en": "rank", "zh": "排名"},
    "model": {"en": "model", "zh": "模型"},
    "bt_strength": {"en": "Bradley–Terry strength", "zh": "Bradley–Terry 强度"},
    "clusters": {"en": "Bad-case clusters", "zh": "错例聚类"},
    "error_before": {"en": "error before", "zh": "之前错误率"},
    "error_after": {"en": "error after", "zh": "之后错误率"},
    "cluster_meta": {
        "en": "{size} items · error {before} → {after} · terms: {terms}",
        "zh": "{size} 个样本 · 错误率 {before} → {after} · 关键词：{terms}",
    },
    "cluster_example": {
        "en": "expected {reference} · before: {before} · after: {after}",
        "zh": "期望 {reference} · 之前：{before} · 之后：{after}",
    },
    "judges": {"en": "judges: {text}", "zh": "评审意见：{text}"},
    "md_significance": {
        "en": "**Significance** (McNemar on accuracy; paired bootstrap 95% CI of the score difference)",
        "zh": "**显著性**（准确率用 McNemar 检验；得分差用配对 bootstrap 95% 置信区间）",
    },
    "md_significance_header": {
        "en": "| A | B | accuracy | only A / only B | p | Δ [CI] |",
        "zh": "| A | B | 准确率 | 仅 A 对 / 仅 B 对 | p 值 | Δ [置信区间] |",
    },
    "md_ranking": {
        "en": "**Ranking** (Bradley–Terry): {ranking}",
        "zh": "**排名**（Bradley–Terry）：{ranking}",
    },
    "md_clusters": {
        "en": "**Bad-case clusters** (error before → after)",
        "zh": "**错例聚类**（错误率 之前 → 之后）",
    },
    "md_cluster": {
        "en": "{label} ({size} items): {before} → {after}",
        "zh": "{label}（{size} 个样本）：{before} → {after}",
    },
    # the key facts that imts.evals.compare writes (other keys are shown as they are)
    "fact.training run": {"en": "training run", "zh": "训练运行"},
    "fact.method": {"en": "method", "zh": "方法"},
    "fact.base model": {"en": "base model", "zh": "基座模型"},
    "fact.trained on": {"en": "trained on", "zh": "训练数据"},
    "fact.evaluated on": {"en": "evaluated on", "zh": "评测数据"},
    "fact.steps x batch": {"en": "steps x batch", "zh": "步数 × 批大小"},
    "fact.learning rate": {"en": "learning rate", "zh": "学习率"},
    "fact.LoRA rank / alpha": {"en": "LoRA rank / alpha", "zh": "LoRA 秩 / alpha"},
    "fact.precision": {"en": "precision", "zh": "精度"},
    "fact.training time": {"en": "training time", "zh": "训练时长"},
    "fact.model version": {"en": "model version", "zh": "模型版本"},
    "fact.decoding tools": {"en": "decoding tools (every model)", "zh": "解码工具（所有模型相同）"},
}


def check_lang(lang: str) -> Lang:
    """``lang`` if it is a report language, else ValueError naming the choices."""
    if lang not in LANGS:
        raise ValueError(f"unknown report language {lang!r}; choose one of {', '.join(LANGS)}")
    return lang  # type: ignore[return-value]


def t(key: str, lang: Lang = "en", **kw: object) -> str:
    """The string ``key`` in ``lang``, with ``{placeholders}`` filled from ``kw``.

    Raises:
        KeyError: If ``key`` is not in the catalogue.
        ValueError: If ``lang`` is not a report language.
    """
    text = CATALOGUE[key][check_lang(lang)]
    return text.format(**kw) if kw else text


def fact_label(key: str, lang: Lang = "en") -> str:
    """A key fact's label in ``lang``; facts the catalogue does not know are shown as they are."""
    return t(f"fact.{key}", lang) if f"fact.{key}" in CATALOGUE else key
