"""The fit check: how well the data serves the intent, with the evidence; clearly off-intent data is
refused before any training or optimisation step.

Each sampled row gets the task type its own text shows (the intent cues on its prompt, plus the shape
of the pair: worked arithmetic, code, a language change, a much shorter response, several turns, a
JSON answer, a question with a short answer ...). The score is the share of rows showing the intent's
task (related tasks count half), times how many rows speak of the intent's subject domain when that
domain is a field of knowledge (legal, medical, finance, cooking, literature) and the task is about
content (question answering, classification, extraction, summaries, dialogue): a recipe collection is
question answering, but not legal question answering.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field

from imts.analysis.intent import NAMES, TaskSpec, TaskType, cue_scores
from imts.analysis.profile import looks_structured
from imts.core.text import detect_lang, tokens
from imts.data.dedup import semantic_tokens

REFUSE_BELOW = 0.3
PARTIAL_BELOW = 0.6
# Tasks close enough that rows of one partly serve the other.
_RELATED: set[frozenset[TaskType]] = {
    frozenset({TaskType.MATH_REASONING, TaskType.LOGICAL_REASONING}),
    frozenset({TaskType.KNOWLEDGE_QA, TaskType.DIALOGUE}),
    frozenset({TaskType.KNOWLEDGE_QA, TaskType.LOGICAL_REASONING}),
    frozenset({TaskType.EXTRACTION, TaskType.CLASSIFICATION}),
    frozenset({TaskType.KNOWLEDGE_QA, TaskType.CREATIVE_WRITING}),  # questions about poems, stories
}
# Tasks whose data must be about the intent's subject (writing, translating or coding need not be).
_CONTENT_TASKS = {
    TaskType.KNOWLEDGE_QA,
    TaskType.CLASSIFICATION,
    TaskType.EXTRACTION,
    TaskType.SUMMARIZATION,
    TaskType.DIALOGUE,
}
# Subject domains whose rows must speak of them (audience domains such as education do not).
DOMAIN_TERMS: dict[str, str] = {
    "legal": r"法律|法院|法规|法定|依法|\w法第|律师|合同|诉讼|起诉|判决|条款|违约|侵权|仲裁|赔偿|维权|权益|"
    r"遗嘱|继承|财产|犯罪|刑事|民事|\bcourt|\blaw\b|\blegal|lawsuit|\bsue\b|statute|contract|tenant|"
    r"landlord|liab|attorney|lawyer|\bjudge|clause|breach|plaintiff|defendant",
    "medical": r"医|病|药|症|诊|治疗|患者|手术|patient|symptom|disease|drug|\bdos(e|age)|medic|clinic|"
    r"diagnos|treat|therap|surgery|infection",
    "finance": r"税|银行|保险|贷款|利率|投资|股票|基金|发票|财务|\btax|\bbank|\bloan|interest rate|invest|"
    r"stock|insurance|invoice|credit|financ",
    "cooking": r"菜|烹饪|食谱|厨|炒|煮|蒸|炖|炸|烤|调料|recipe|\bcook|\bbak|kitchen|\bfood|\bdish|\bmeal|"
    r"\bsoup|\bsauce|oven|\bpan\b|fry|boil",
    "literature": r"诗|词|文学|赏析|意境|意象|抒发|七律|绝句|《|poem|poet|literar|verse|novel|stanza",
}
_CODE = re.compile(
    r"\bdef \w+\(|\breturn\b|\bimport \w+|#include|\bfunction\s*\w*\(|=>|\bSELECT\b.+\bFROM\b|\bclass \w+|"
    r"console\.log|\bprint\(|;\s*$|^\s*[{}]\s*$",
    re.M | re.I,
)
_QUESTION = re.compile(
    r"[?？]\s*$|^(what|who|when|where|why|how|which|is|are|can|does|do)\b|什么|为什么|怎么|哪|吗", re.I
)
_STEP = re.compile(r"\d\s*[-+×x*/÷]\s*\d+\s*=")


class FitResult(BaseModel):
    score: float  # 0..1
    verdict: str  # fits | partial | refused
    task_shares: dict[str, float]  # the task types the sampled rows show, by share
    domain_share: float | None = None  # rows speaking of the intent's domain (subject domains only)
    language_shares: dict[str, float] = Field(default_factory=dict)
    reason_en: str
    reason_zh: str
    suggestion_en: str = ""
    suggestion_zh: str = ""
    forced: bool = False  # refused, and the user went on with --force (recorded)
    sampled: int = 0

    @property
    def refused(self) -> bool:
        return self.verdict == "refused"


def row_task(prompt: str, response: str, turns: int = 2) -> TaskType | None:
    """The task type one row's text shows, or None when it shows none."""
    scores: Counter[TaskType] = Counter({t: min(2.0, s) for t, s in cue_scores(prompt).items() if s})
    p_toks, r_toks = tokens(prompt), tokens(response)
    numbers = [t for t in semantic_tokens(prompt) if t[0].isdigit() and len(t) <= 6]
    if len(numbers) >= 2 and (_STEP.search(response) or (len(r_toks) <= 6 and re.search(r"\d", response))):
        scores[TaskType.MATH_REASONING] += 3
    if _CODE.search(response):
        scores[TaskType.CODE] += 2.5
    if prompt and response and detect_lang(prompt[-300:]) != detect_lang(response[:300]):
        scores[TaskType.TRANSLATION] += 1.5
    if len(p_toks) >= 60 and len(r_toks) < 0.5 * len(p_toks):
        scores[TaskType.SUMMARIZATION] += 1.5
    if turns > 2:
        scores[TaskType.DIALOGUE] += 2.5
    if looks_structured(response):
        scores[TaskType.EXTRACTION] += 2
    if 0 < len(r_toks) <= 3 and not numbers:
        scores[TaskType.CLASSIFICATION] += 1
    if _QUESTION.search(prompt.strip()[-80:]) or _QUESTION.search(prompt.strip()[:20]):
        scores[TaskType.KNOWLEDGE_QA] += 1
    if len(r_toks) >= 40 and response.count("\n") >= 3 and not _CODE.search(response):
        scores[TaskType.CREATIVE_WRITING] += 1
    if not scores:
        return None
    best, value = scores.most_common(1)[0]
    return best if value >= 1 else None


def check_fit(
    spec: TaskSpec,
    prompts: Sequence[str],
    responses: Sequence[str],
    turns: Sequence[int],
    langs: Sequence[str | None] = (),
    label_like: bool = False,
) -> FitResult:
    """Score how well the rows serve ``spec``.

    Args:
        label_like: the responses are a handful of distinct values (a classification dataset).
    """
    n = len(prompts)
    if spec.task is None or n == 0:
        raise ValueError("a fit check needs a task type and at least one row")
    found = [
        TaskType.CLASSIFICATION if label_like else row_task(p, r, t)
        for p, r, t in zip(prompts, responses, turns, strict=True)
    ]
    shares = Counter(t.value if t else "unknown" for t in found)
    task_shares = {k: round(v / n, 4) for k, v in shares.most_common()}
    credit = sum(
        1.0 if t == spec.task else 0.5 if t and frozenset({t, spec.task}) in _RELATED else 0.0 for t in found
    )
    score = credit / n
    domain_share = None
    if spec.domain in DOMAIN_TERMS and spec.task in _CONTENT_TASKS:
        pattern = re.compile(DOMAIN_TERMS[spec.domain], re.I)
        domain_share = (
            sum(bool(pattern.search(p + " " + r)) for p, r in zip(prompts, responses, strict=True)) / n
        )
        score *= min(1.0, domain_share / 0.4)
    lang_counts = Counter(
        lang or detect_lang(p) for lang, p in zip(langs or [None] * n, prompts, strict=True)
    )
    language_shares = {k: round(v / n, 4) for k, v in lang_counts.most_common()}
    verdict = "refused" if score < REFUSE_BELOW else "partial" if score < PARTIAL_BELOW else "fits"
    main = max((k for k in task_shares if k != "unknown"), key=lambda k: task_shares[k], default="unknown")
    main_en, main_zh = (
        NAMES[TaskType(main)] if main != "unknown" else ("no recognisable task", "无法识别的任务")
    )
    want_en, want_zh = NAMES[spec.task]
    here = task_shares.get(spec.task.value, 0.0)
    dom = "" if domain_share is None else f"; {domain_share:.0%} of the rows speak of {spec.domain}"
    dom_zh = "" if domain_share is None else f"；{domain_share:.0%} 的数据涉及{_zh_domain(spec.domain)}"
    reason_en = (
        f"fit {score:.2f}: {here:.0%} of {n} sampled rows look like {want_en}, the most common kind is "
        f"{main_en} ({task_shares.get(main, 0):.0%}){dom}"
    )
    reason_zh = (
        f"匹配度 {score:.2f}：抽样的 {n} 行中 {here:.0%} 属于{want_zh}，最常见的是{main_zh}"
        f"（{task_shares.get(main, 0):.0%}）{dom_zh}"
    )
    suggestion_en = suggestion_zh = ""
    if verdict != "fits":
        suggestion_en = (
            f"bring {want_en} data (prompts with the responses you want"
            f"{', about ' + spec.domain if spec.domain else ''}), "
            "or restate the goal if this data is what you meant; --force goes on anyway and records it"
        )
        suggestion_zh = (
            f"请提供{want_zh}类的数据（问题及期望的回答），或者如果这批数据就是您想要的，请重新描述目标；"
            "使用 --force 可强制继续，该操作会被记录"
        )
    return FitResult(
        score=round(score, 4),
        verdict=verdict,
        task_shares=task_shares,
        domain_share=None if domain_share is None else round(domain_share, 4),
        language_shares=language_shares,
        reason_en=reason_en,
        reason_zh=reason_zh,
        suggestion_en=suggestion_en,
        suggestion_zh=suggestion_zh,
        sampled=n,
    )


def _zh_domain(domain: str | None) -> str:
    names = {"legal": "法律", "medical": "医疗", "finance": "金融", "cooking": "烹饪", "literature": "文学"}
    return names.get(domain or "", domain or "")
