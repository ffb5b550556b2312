"""The health report's findings and its score.

Every finding names the rows behind it (``row_ids``) and a few examples, how bad it is and which action
could fix it (``findings.Finding``). The score is the mean of five sub-scores, each 0-100 with the
reason for it: diversity, balance, correctness, reasoning, privacy (docs/analysis.md).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from imts.analysis.findings import Action, Finding, FindingKind, Severity
from imts.analysis.intent import TaskSpec
from imts.analysis.pii import find_pii
from imts.analysis.profile import ProfileResult, Rows
from imts.core.answers import extract_number, numeric_match
from imts.data.dedup import exact_key

EXAMPLES = 3
# A category below this fraction of an even share is under-represented (severe below the second).
UNDER, SEVERE_UNDER = 0.5, 0.25


class SubScore(BaseModel):
    name: str
    score: float  # 0..100
    reason_en: str
    reason_zh: str


class Balance(BaseModel):
    source: str  # field | inferred_operations | clusters
    shares: dict[str, float]


class Health(BaseModel):
    score: float
    sub_scores: list[SubScore]
    balance: Balance | None = None


@dataclass
class Evidence:
    """What the findings are built from, besides the rows and profile."""

    categories: list[str | None]  # per row: the category field, inferred operations, or the cluster
    category_source: str
    leaked: dict[int, str] = field(default_factory=dict)  # row -> where its prompt also is
    pii: dict[int, list[str]] = field(default_factory=dict)


def find_personal_data(rows: Rows) -> dict[int, list[str]]:
    out = {}
    for i, (p, r) in enumerate(zip(rows.prompts, rows.responses, strict=True)):
        kinds = find_pii(p + "\n" + r)
        if kinds:
            out[i] = kinds
    return out


def split_leaks(rows: Rows) -> dict[int, str]:
    """Rows of val/test whose prompt is also a train prompt (exact keys)."""
    if not any(rows.splits):
        return {}
    train = {exact_key(p) for p, s in zip(rows.prompts, rows.splits, strict=True) if s == "train"}
    return {
        i: "train split"
        for i, (p, s) in enumerate(zip(rows.prompts, rows.splits, strict=True))
        if s and s != "train" and exact_key(p) in train
    }


def expected_skills(spec: TaskSpec, ev: Evidence) -> list[str]:
    """The spec's sub-skills, where the categories can speak of them: inferred operations, or a
    category field that names at least one of them (a field of other names is another taxonomy)."""
    if ev.category_source == "inferred_operations":
        return list(spec.sub_skills)
    if ev.category_source == "field" and set(spec.sub_skills) & set(filter(None, ev.categories)):
        return list(spec.sub_skills)
    return []


def _finding(
    rows: Rows,
    kind: FindingKind,
    severity: Severity,
    idx: Sequence[int],
    en: str,
    zh: str,
    action: Action,
    share: bool = True,
    **params: object,
) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        message_en=en,
        message_zh=zh,
        row_ids=[rows.ids[i] for i in idx],
        examples=[rows.example(i) for i in idx[:EXAMPLES]],
        share=round(len(idx) / max(1, len(rows)), 4) if share else None,
        action=action,
        params=dict(params),
    )


def build_findings(rows: Rows, prof: ProfileResult, spec: TaskSpec, ev: Evidence) -> list[Finding]:
    n = max(1, len(rows))
    out: list[Finding] = []
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(ev.categories):
        if c is not None:
            by_cat[c].append(i)
    expected = expected_skills(spec, ev)
    known = sum(len(v) for v in by_cat.values())
    if len(by_cat) >= 2 and known:
        even = 1 / len(set(by_cat) | set(expected))
        for cat, idx in sorted(by_cat.items(), key=lambda kv: len(kv[1])):
            share = len(idx) / known
            if share < UNDER * even:
                sev = Severity.SEVERE if share < SEVERE_UNDER * even else Severity.WARNING
                out.append(
                    _finding(
                        rows,
                        FindingKind.UNDER_REPRESENTED,
                        sev,
                        idx,
                        f"category '{cat}' is {share:.1%} of the rows (an even share would be {even:.0%}; "
                        f"from {ev.category_source.replace('_', ' ')})",
                        f"类别「{cat}」只占 {share:.1%}"
                        f"（均衡应为 {even:.0%}；来源：{_zh_source(ev.category_source)}）",
                        Action.AUGMENT,
                        category=cat,
                        target_share=round(even, 4),
                        source=ev.category_source,
                    )
                )
    for skill in expected:
        if skill not in by_cat or len(by_cat[skill]) < 0.01 * n:
            idx = by_cat.get(skill, [])
            out.append(
                _finding(
                    rows,
                    FindingKind.COVERAGE_GAP,
                    Severity.SEVERE,
                    idx,
                    f"the expected sub-skill '{skill}' has {len(idx)} rows",
                    f"期望的子技能「{skill}」只有 {len(idx)} 行",
                    Action.AUGMENT if idx else Action.COLLECT,
                    category=skill,
                )
            )
    if spec.answer_form == "reasoning_then_answer" and prof.answer_only:
        share = len(prof.answer_only) / n
        out.append(
            _finding(
                rows,
                FindingKind.ANSWER_ONLY,
                Severity.WARNING if share < 0.3 else Severity.SEVERE,
                prof.answer_only,
                f"{len(prof.answer_only)} rows ({share:.1%}) give the answer without reasoning: "
                "little to learn "
                "for a task that needs steps",
                f"{len(prof.answer_only)} 行（{share:.1%}）只有答案没有推理过程，对需要推理的任务信息量低",
                Action.COT_REWRITE,
            )
        )
    for kind, dups, en, zh in (
        (FindingKind.DUPLICATE, prof.exact, "exact duplicates of earlier rows", "行与前面的行完全重复"),
        (
            FindingKind.NEAR_DUPLICATE,
            prof.near,
            "near duplicates of earlier rows (MinHash Jaccard >= 0.7)",
            "行与前面的行近似重复",
        ),
    ):
        if dups:
            idx = sorted(dups)
            f = _finding(
                rows,
                kind,
                Severity.WARNING,
                idx,
                f"{len(idx)} rows are {en}",
                f"{len(idx)} {zh}",
                Action.DROP,
            )
            f.examples = [{**rows.example(i), "duplicate_of": rows.ids[dups[i]]} for i in idx[:EXAMPLES]]
            out.append(f)
    if ev.pii:
        idx = sorted(ev.pii)
        kinds = Counter(k for v in ev.pii.values() for k in v)
        f = _finding(
            rows,
            FindingKind.PERSONAL_DATA,
            Severity.SEVERE,
            idx,
            f"{len(idx)} rows hold personal data ({', '.join(f'{k}: {v}' for k, v in kinds.items())})",
            f"{len(idx)} 行含有个人信息（{', '.join(f'{k}: {v}' for k, v in kinds.items())}）",
            Action.PII_REPLACE,
            kinds=dict(kinds),
        )
        f.examples = [{**rows.example(i), "kinds": ev.pii[i]} for i in idx[:EXAMPLES]]
        out.append(f)
    if ev.leaked:
        idx = sorted(ev.leaked)
        where = sorted(set(ev.leaked.values()))
        out.append(
            _finding(
                rows,
                FindingKind.LEAKAGE,
                Severity.SEVERE,
                idx,
                f"{len(idx)} rows repeat a prompt of {', '.join(where)}",
                f"{len(idx)} 行的问题与{', '.join(where)}重复（数据泄漏）",
                Action.DROP,
                against=where,
            )
        )
    mismatched = [
        i
        for i, (r, a) in enumerate(zip(rows.responses, rows.answers, strict=True))
        if a and r.strip() and extract_number(a) is not None and not numeric_match(extract_number(r), a)
    ]
    broken = sorted(set(prof.empty_rows) | {i for i, p in enumerate(rows.prompts) if not p.strip()})
    if broken:
        out.append(
            _finding(
                rows,
                FindingKind.FORMAT,
                Severity.SEVERE,
                broken,
                f"{len(broken)} rows have an empty prompt or response",
                f"{len(broken)} 行的问题或回答为空",
                Action.DROP,
                problem="empty",
            )
        )
    if mismatched:
        out.append(
            _finding(
                rows,
                FindingKind.FORMAT,
                Severity.WARNING,
                mismatched,
                f"{len(mismatched)} rows end on another number than their answer field",
                f"{len(mismatched)} 行回答的最终数字与答案字段不一致",
                Action.DROP,
                problem="answer_mismatch",
            )
        )
    if prof.profile.prompt_tokens.over_context or prof.profile.response_tokens.over_context:
        over = prof.profile.prompt_tokens.over_context + prof.profile.response_tokens.over_context
        out.append(
            Finding(
                kind=FindingKind.LENGTH,
                severity=Severity.WARNING,
                message_en=f"{over} prompts or responses are longer than the model's context",
                message_zh=f"{over} 条问题或回答超过模型的上下文长度",
                share=round(over / n, 4),
                action=Action.DROP,
            )
        )
    wanted = set(spec.languages)
    if wanted and spec.languages_named and spec.task is not None and spec.task.value != "translation":
        other = [i for i, lang in enumerate(rows.langs) if lang and lang not in wanted]
        if other and len(other) / n > 0.05:
            out.append(
                _finding(
                    rows,
                    FindingKind.LANGUAGE,
                    Severity.INFO if len(other) / n < 0.5 else Severity.WARNING,
                    other,
                    f"{len(other)} rows are in a language the intent does not ask for "
                    f"({', '.join(sorted(wanted))})",
                    f"{len(other)} 行的语言不在目标语言（{', '.join(sorted(wanted))}）之内",
                    Action.NONE,
                )
            )
    return out


def _entropy(counts: Sequence[int]) -> float:
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return 1.0
    h = -sum(c / total * math.log(c / total) for c in counts if c)
    return h / math.log(len(counts))


def score(rows: Rows, prof: ProfileResult, spec: TaskSpec, ev: Evidence, findings: list[Finding]) -> Health:
    n = max(1, len(rows))
    dup = (len(prof.exact) + len(prof.near)) / n
    cats = Counter(c for c in ev.categories if c is not None)
    for s in expected_skills(spec, ev):
        cats.setdefault(s, 0)
    balance = _entropy(list(cats.values())) if cats else 1.0
    broken = {i for f in findings if f.kind in (FindingKind.FORMAT, FindingKind.LEAKAGE) for i in f.row_ids}
    reasoning_task = spec.answer_form == "reasoning_then_answer"
    ao = len(prof.answer_only) / n
    pii = len(ev.pii) / n
    subs = [
        SubScore(
            name="diversity",
            score=round(100 * max(0.0, 1 - dup), 1),
            reason_en=f"{dup:.1%} of the rows are exact or near duplicates",
            reason_zh=f"{dup:.1%} 的数据为完全或近似重复",
        ),
        SubScore(
            name="balance",
            score=round(100 * balance, 1),
            reason_en=f"normalised entropy of {len(cats)} categories ({_en_source(ev.category_source)})",
            reason_zh=f"{len(cats)} 个类别的归一化熵（{_zh_source(ev.category_source)}）",
        ),
        SubScore(
            name="correctness",
            score=round(100 * (1 - len(broken) / n), 1),
            reason_en=f"{len(broken)} rows are empty, leaked or contradict their answer field",
            reason_zh=f"{len(broken)} 行为空、泄漏或与答案字段矛盾",
        ),
        SubScore(
            name="reasoning",
            score=round(100 * (1 - ao), 1) if reasoning_task else 100.0,
            reason_en=f"{ao:.1%} of the rows are answer-only"
            if reasoning_task
            else "the task needs no worked steps",
            reason_zh=f"{ao:.1%} 的数据只有答案" if reasoning_task else "该任务不需要推理步骤",
        ),
        SubScore(
            name="privacy",
            score=round(100 * max(0.0, 1 - 10 * pii), 1),
            reason_en=f"{len(ev.pii)} rows ({pii:.1%}) hold personal data; each 1% costs 10 points",
            reason_zh=f"{len(ev.pii)} 行（{pii:.1%}）含个人信息；每 1% 扣 10 分",
        ),
    ]
    shares = {k: round(v / max(1, sum(cats.values())), 4) for k, v in cats.most_common()}
    return Health(
        score=round(sum(s.score for s in subs) / len(subs), 1),
        sub_scores=subs,
        balance=Balance(source=ev.category_source, shares=shares) if cats else None,
    )


def _en_source(source: str) -> str:
    return {
        "field": "the category field",
        "inferred_operations": "operations inferred",
        "clusters": "clusters",
    }[source]


def _zh_source(source: str) -> str:
    return {"field": "类别字段", "inferred_operations": "推断出的运算", "clusters": "语义聚类"}.get(
        source, source
    )
