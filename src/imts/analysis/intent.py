"""Intent -> task spec: what the user wants the model to learn, in Chinese or English.

The embedded default uses no LLM: keyword rules (weighted cues per task type, both languages) plus the
cosine similarity of the intent's MiniLM embedding to a few prototype descriptions of each task type.
The rules decide when they are clear; the prototypes break ties and carry intents with no cue at all. An
intent with no cue and no clear prototype gets a question back instead of a guess. A configured
:class:`~imts.agents.chat.ChatBackend` (other than the rules backend) may refine the task type and domain.
"""

from __future__ import annotations

import functools
import json
import re
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from imts.core.text import detect_lang


class TaskType(StrEnum):
    MATH_REASONING = "math_reasoning"
    LOGICAL_REASONING = "logical_reasoning"
    KNOWLEDGE_QA = "knowledge_qa"
    CLASSIFICATION = "classification"
    SUMMARIZATION = "summarization"
    TRANSLATION = "translation"
    DIALOGUE = "dialogue"
    CODE = "code"
    EXTRACTION = "extraction"
    CREATIVE_WRITING = "creative_writing"


NAMES: dict[TaskType, tuple[str, str]] = {
    TaskType.MATH_REASONING: ("math reasoning", "数学推理"),
    TaskType.LOGICAL_REASONING: ("logical reasoning", "逻辑推理"),
    TaskType.KNOWLEDGE_QA: ("knowledge QA", "知识问答"),
    TaskType.CLASSIFICATION: ("classification", "分类"),
    TaskType.SUMMARIZATION: ("summarisation", "摘要"),
    TaskType.TRANSLATION: ("translation", "翻译"),
    TaskType.DIALOGUE: ("dialogue", "对话"),
    TaskType.CODE: ("code", "代码"),
    TaskType.EXTRACTION: ("information extraction", "信息抽取"),
    TaskType.CREATIVE_WRITING: ("creative writing", "创意写作"),
}

# Cues: (regular expression, weight). Latin cues match whole words (prefixes where they end in \w*);
# Chinese cues are substrings. Weight 2 names the task outright, 1 hints at it.
_CUES: dict[TaskType, list[tuple[str, float]]] = {
    TaskType.MATH_REASONING: [
        (r"\bmath\w*|\barithmetic|\balgebra|\bgeometry|\bcalculus|\bgsm8k|\bolympiad|\bamc\b", 2),
        (r"\bword problems?|\bequations?|\bfractions?|\bpercentages?|\bratios?|\bderivation", 1.5),
        (r"数学|奥数|应用题|算术|方程|几何|代数|微积分|鸡兔同笼|行程问题|分数|列式", 2),
        (r"计算|算出|怎么算|解题|求解", 1),
    ],
    TaskType.LOGICAL_REASONING: [
        (r"\blogic\w*|\bsyllogisms?|\bdeduc\w*|\bpuzzles?|\bsudoku|\bknights?|\bknaves?|\blsat\b", 2),
        (r"\bbrain teasers?|\briddles?|\binference", 1.5),
        (r"逻辑|谜题|数独|真话|假话|凶手|智力题|推理题|脑筋急转弯", 2),
        (r"推理|推出|排除法", 1),
    ],
    TaskType.KNOWLEDGE_QA: [
        (r"\bquestion[- ]answering|\bfaqs?\b|\btrivia|\bfactual|\bfacts?\b|\bknowledge|\bwiki\w*", 2),
        (r"\banswer\w*|\bquestions?|\bhelp[- ]desk|\bask\w*", 1),
        (r"问答|常识|百科|知识|常见问题", 2),
        (r"回答|解答|提问|问题|答案", 1),
    ],
    TaskType.CLASSIFICATION: [
        (r"\bclassif\w*|\bcategori[sz]\w*|\bsentiment|\bspam|\bintent detection|\btag\w*\b", 2),
        (r"\blabel\w*|\bdetect\w*|\bsort\w*|\bpositive|\bnegative|\burgent|\bwhether|\bstar rating", 1),
        (r"分类|分成|标签|好评|差评|情感|类别|打标", 2),
        (r"判断|是不是|是否|检测|属于哪", 1),
    ],
    TaskType.SUMMARIZATION: [
        (r"\bsummar\w*|\bcondens\w*|\btl;?dr|\babstracts?\b|\bdigest", 2),
        (r"\bbullet points?|\bbrief\b|\bshort\w*|\bheadlines?", 1),
        (r"摘要|总结|纪要|浓缩|概括|提要|缩写|压缩成|提炼|精简成|归纳", 2),
        (r"要点|简短|几句话|三句话|一段话", 1),
    ],
    TaskType.TRANSLATION: [
        (r"\btranslat\w*|\binterpret\w*|\b\w+[- ]to[- ](english|chinese|french|german|spanish|japanese)", 2),
        (r"\binto (english|chinese|french|german|spanish|japanese|korean|portuguese)\b", 1.5),
        (r"翻译|译成|译为|中译英|英译中|互译|翻成|白话文", 2),
    ],
    TaskType.DIALOGUE: [
        (
            r"\bchat\w*|\bconvers\w*|\bmulti[- ]turn|\bcompanion|\bsmall talk|\bchit[- ]chat",
            2,
        ),
        (r"\brole[- ]play\w*|\bempath\w*|\bguests?\b|\bcustomer service", 1),
        (r"聊天(?!记录)|对话(?!记录)|闲聊|多轮|陪聊|解闷|聊天机器人", 2),  # chat logs are input, not the task
        (r"客服|沟通|陪|心理疏导|安慰|亲切", 1),
    ],
    TaskType.CODE: [
        (r"\bcod(e|ing)\b|\bpython|\bjava(script)?\b|\btypescript|\bsql\b|\bbash|\bc\+\+|\bleetcode", 2),
        (r"\bprogram\w*|\bfunctions?\b|\bscripts?\b|\bbugs?\b|\bcompiler|\bunit tests?|\bdocstrings?", 1.5),
        (r"代码|编程|程序|函数|sql|脚本|bug|前端|算法题", 2),
    ],
    TaskType.EXTRACTION: [
        (r"\bextract\w*|\bnamed entit\w*|\bner\b|\bparse\w*|\bstructured", 2),
        (r"\b(pull|get|take)\w*\b.{0,80}\bout of\b", 2),  # "pull the amount and due date out of ..."
        (r"\bfields?\b|\bjson\b|\bentit\w*", 1),
        (r"抽取|提取|实体|结构化|解析|字段|人名地名", 2),
        (r"识别.{0,12}(名|实体)", 1.5),
    ],
    TaskType.CREATIVE_WRITING: [
        (r"\bpoe(m|try|ms)\w*|\bstor(y|ies)\b|\bfiction|\blyrics|\bslogans?|\bcopywrit\w*|\bcreative", 2),
        (r"\bmarketing copy|\bad copy|\bnovel\w*|\bchapters?|\bsong", 1.5),
        (r"诗|小说|故事|文案|标语|童话|创作|歌词|绝句", 2),
    ],
}

# Prototype descriptions per task: what the MiniLM similarity compares the intent with. English only:
# all-MiniLM-L6-v2 was trained on English and maps most Chinese text to near-identical vectors, so a
# Chinese intent is decided by its cues (the prototypes only rank task types with equal cues).
_PROTOTYPES: dict[TaskType, list[str]] = {
    TaskType.MATH_REASONING: [
        "solve math word problems step by step",
        "a model that does arithmetic and algebra calculations",
    ],
    TaskType.LOGICAL_REASONING: [
        "solve logic puzzles by deduction",
        "logical reasoning questions and riddles",
    ],
    TaskType.KNOWLEDGE_QA: [
        "answer factual questions about a topic",
        "a question answering assistant with domain knowledge",
    ],
    TaskType.CLASSIFICATION: [
        "classify texts into categories and labels",
        "sentiment analysis of reviews",
    ],
    TaskType.SUMMARIZATION: [
        "summarize long documents into short summaries",
        "write a brief summary of an article",
    ],
    TaskType.TRANSLATION: [
        "translate text from one language to another",
        "machine translation between English and Chinese",
    ],
    TaskType.DIALOGUE: [
        "a chatbot that holds friendly conversations",
        "multi-turn customer service dialogue",
    ],
    TaskType.CODE: [
        "write and fix program code",
        "generate python functions and sql queries",
    ],
    TaskType.EXTRACTION: [
        "extract entities and structured fields from text",
        "named entity recognition and information extraction",
    ],
    TaskType.CREATIVE_WRITING: [
        "write poems, stories and creative fiction",
        "write advertising copy and slogans",
    ],
}

# The answer form, abilities and expected sub-skills each task type implies.
_DEFAULTS: dict[TaskType, tuple[str, list[str], list[str]]] = {
    TaskType.MATH_REASONING: (
        "reasoning_then_answer",
        ["multi-step chain of thought", "exact arithmetic"],
        ["addition", "subtraction", "multiplication", "division", "multi_step"],
    ),
    TaskType.LOGICAL_REASONING: (
        "reasoning_then_answer",
        ["multi-step deduction"],
        ["deduction", "elimination", "conditionals"],
    ),
    TaskType.KNOWLEDGE_QA: ("short_answer", ["factual recall"], []),
    TaskType.CLASSIFICATION: ("label", ["label consistency"], []),
    TaskType.SUMMARIZATION: ("free_text", ["compression", "faithfulness"], []),
    TaskType.TRANSLATION: ("free_text", ["bilingual fluency", "faithfulness"], []),
    TaskType.DIALOGUE: ("free_text", ["multi-turn coherence", "tone"], []),
    TaskType.CODE: ("code", ["program synthesis", "correctness under tests"], []),
    TaskType.EXTRACTION: ("structured", ["span finding", "field normalisation"], []),
    TaskType.CREATIVE_WRITING: ("free_text", ["style", "fluency"], []),
}

_DOMAINS: dict[str, str] = {
    r"诗|词|文学|赏析|poem|poetry|literature|verse": "literature",
    r"做菜|菜谱|食谱|烹饪|厨|cooking|recipes?|kitchen|baking|chef": "cooking",
    r"小学|年级|孩子|学生|初中|高考|homework|grade[- ]school|kid|school|students?|elementary": "education",
    r"医|病历|药|clinical|medical|pharmac\w*|patient|nursing|biology": "medical",
    r"法律|合同|legal|law\b|contracts?|lsat": "legal",
    r"金融|银行|保险|税|bank\w*|insurance|financ\w*|tax|invoice|发票|研报": "finance",
    r"电商|商品|网店|买家|e-?commerce|product|shop|review|评价|评论": "e-commerce",
    r"客服|工单|customer|support|ticket|help-?desk|hotel": "customer service",
    r"新闻|news|headline|press": "news",
}
_LANGS: dict[str, str] = {
    r"中文|汉语|中译|译中|chinese|mandarin|古文|白话": "zh",
    r"英文|英语|英译|译英|english": "en",
    r"日语|日文|japanese": "ja",
    r"韩|korean": "ko",
    r"法语|french": "fr",
    r"德语|german": "de",
    r"西班牙|spanish": "es",
    r"葡萄牙|portuguese": "pt",
}
_STEPS = re.compile(r"step|explain|show|derivation|过程|步骤|一步步|讲|思路|说明|理由|依据|严谨|思维链", re.I)
# How sure the parser must be to act without asking.
MIN_PROTOTYPE = 0.42
MIN_MARGIN = 0.03


class TaskSpec(BaseModel):
    """What the intent asks for: the task type and what the data must show to serve it."""

    intent: str
    lang: str  # the intent's language: the report's default
    task: TaskType | None = None  # None: too vague, see ``question``
    confidence: float = 0.0
    domain: str | None = None
    abilities: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    languages_named: bool = False  # the intent names them (else: the intent's own language)
    answer_form: str | None = None
    sub_skills: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)  # the evidence: combined score per task type
    method: str = "rules+minilm"
    question_en: str | None = None
    question_zh: str | None = None

    def question(self, lang: str) -> str | None:
        return self.question_zh if lang.startswith("zh") else self.question_en

    def task_name(self, lang: str) -> str:
        if self.task is None:
            return "未确定" if lang.startswith("zh") else "undetermined"
        return NAMES[self.task][1 if lang.startswith("zh") else 0]


def cue_scores(text: str) -> dict[TaskType, float]:
    """Sum of the weights of each task type's cues found in ``text`` (each cue counted once)."""
    low = text.lower()
    return {t: sum(w for pattern, w in cues if re.search(pattern, low, re.I)) for t, cues in _CUES.items()}


@functools.lru_cache(maxsize=1)
def _prototype_matrix() -> tuple[list[TaskType], np.ndarray]:
    from imts.data.embeddings import embed

    owners = [t for t, texts in _PROTOTYPES.items() for _ in texts]
    return owners, embed([s for texts in _PROTOTYPES.values() for s in texts])


def prototype_scores(vectors: np.ndarray) -> np.ndarray:
    """``len(vectors) x len(TaskType)``: each text's best cosine similarity to each task's prototypes."""
    owners, protos = _prototype_matrix()
    sims = vectors @ protos.T
    tasks = list(TaskType)
    out = np.full((len(vectors), len(tasks)), -1.0, dtype=np.float32)
    for col, owner in enumerate(owners):
        k = tasks.index(owner)
        out[:, k] = np.maximum(out[:, k], sims[:, col])
    return out


def parse_intent(intent: str, backend: Any = None) -> TaskSpec:
    """The task spec of ``intent``; a spec with ``task=None`` and a question when it is too vague.

    Args:
        backend: a ``ChatBackend`` to refine the result (ignored when it is the rules backend).
    """
    return parse_intents([intent], backend)[0]


def parse_intents(intents: list[str], backend: Any = None) -> list[TaskSpec]:
    """``parse_intent`` of many intents, embedded in one batch."""
    from imts.data.embeddings import embed

    texts = [" ".join(i.split()) for i in intents]
    protos = prototype_scores(embed(texts))
    return [_spec(i, t, p, backend) for i, t, p in zip(intents, texts, protos, strict=True)]


def _spec(intent: str, text: str, protos: np.ndarray, backend: Any) -> TaskSpec:
    lang = detect_lang(text) if text else "en"
    cues = cue_scores(text)
    tasks = list(TaskType)
    # Cues weigh most; the prototype similarity (0..1) decides among equal cues and alone when none.
    combined = {t: cues[t] + float(protos[k]) for k, t in enumerate(tasks)}
    ranked = sorted(combined, key=lambda t: -combined[t])
    best, second = ranked[0], ranked[1]
    spec = TaskSpec(intent=intent, lang=lang, scores={t.value: round(v, 3) for t, v in combined.items()})
    clear_cue = cues[best] >= 1
    clear_proto = (
        lang == "en"
        and protos[tasks.index(best)] >= MIN_PROTOTYPE
        and combined[best] - combined[second] >= MIN_MARGIN
    )
    if not (clear_cue or clear_proto):
        spec.question_en = (
            "What should the model do? For example: solve math word problems, answer questions about "
            "your documents, classify texts, summarise, translate, chat with customers, write code."
        )
        spec.question_zh = (
            "您希望模型具体做什么？例如：解数学应用题、回答关于您文档的问题、文本分类、摘要、翻译、"
            "与客户对话、写代码。"
        )
        return spec
    if backend is not None and getattr(backend, "name", "rules") != "rules":
        best = _refine(backend, text, best, spec)
    answer_form, abilities, sub_skills = _DEFAULTS[best]
    abilities = list(abilities)
    if best in (TaskType.MATH_REASONING, TaskType.LOGICAL_REASONING) or _STEPS.search(text):
        if "multi-step chain of thought" not in abilities and best != TaskType.LOGICAL_REASONING:
            abilities.append("multi-step chain of thought")
        if answer_form not in ("code", "label"):
            answer_form = "reasoning_then_answer"
    spec.task = best
    spec.confidence = round(min(1.0, combined[best] / 3), 3)
    spec.domain = spec.domain or next((d for p, d in _DOMAINS.items() if re.search(p, text, re.I)), None)
    named = [code for p, code in _LANGS.items() if re.search(p, text, re.I)]
    spec.languages_named = bool(named)
    spec.languages = list(dict.fromkeys(named if best == TaskType.TRANSLATION and named else [lang, *named]))
    spec.answer_form, spec.abilities, spec.sub_skills = answer_form, abilities, list(sub_skills)
    return spec


def _refine(backend: Any, text: str, best: TaskType, spec: TaskSpec) -> TaskType:
    """Ask the backend for the task type and domain as JSON; keep the rules' choice on any bad reply."""
    prompt = (
        "Classify this fine-tuning goal. Reply with JSON only: "
        '{"task": one of ' + json.dumps([t.value for t in TaskType]) + ', "domain": a short word}.\n'
        f"Goal: {text}"
    )
    try:
        reply = backend.chat([{"role": "user", "content": prompt}], max_tokens=60).text
        found = json.loads(reply[reply.index("{") : reply.rindex("}") + 1])
    except Exception:  # an unreachable endpoint or a reply that is no JSON: the embedded answer stands
        return best
    if found.get("task") in TaskType.__members__.values():
        spec.method = f"rules+minilm+{backend.name}"
        if isinstance(found.get("domain"), str) and found["domain"].strip():
            spec.domain = found["domain"].strip()[:40]
        return TaskType(found["task"])
    return best
