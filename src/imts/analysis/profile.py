"""The profile of a dataset version: rows, token lengths, languages, formats, missing and empty fields,
exact and near duplicates (``data.dedup``), answer forms, per-field statistics.

Rows are read column by column in Arrow batches (``versions.iter_tables``) and kept as a few lists of
strings: the prompt and response text, id, category, language, answer and split of each row.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from imts.core.text import detect_lang, tokens
from imts.data.dedup import exact_duplicates, exact_key, near_duplicates, semantic_tokens
from imts.data.versions import DataRef, VersionInfo, iter_tables
from imts.store.context import Context

NEAR_THRESHOLD = 0.7
# A response this short (words, numbers, CJK characters) with at most one number is an answer alone.
ANSWER_ONLY_TOKENS = 8


@dataclass
class Rows:
    """A version's rows as parallel lists (the prompt is every message but the last; the response is
    the last one, or the label / chosen answer of the other formats)."""

    ids: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    langs: list[str | None] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    fmt: str = "sft"

    def __len__(self) -> int:
        return len(self.ids)

    def example(self, i: int, **extra: Any) -> dict[str, Any]:
        return {
            "id": self.ids[i],
            "prompt": self.prompts[i][:200],
            "response": self.responses[i][:200],
            **extra,
        }


def read_rows(ctx: Context, ref: DataRef | VersionInfo) -> Rows:
    version = ref.version if isinstance(ref, DataRef) else ref
    out = Rows(fmt=version.format)
    for table in iter_tables(ctx, ref, batch_rows=20_000):
        cols = table.column_names
        for row in table.to_pylist():
            if "messages" in cols:
                msgs = row.get("messages") or []
                prompt = "\n".join(m.get("content") or "" for m in msgs[:-1])
                response = (msgs[-1].get("content") or "") if msgs else ""
                out.turns.append(len(msgs))
            else:
                prompt = row.get("prompt") or row.get("text") or ""
                response = row.get("chosen") or row.get("label") or ""
                out.turns.append(1)
            out.ids.append(str(row["id"]))
            out.prompts.append(prompt)
            out.responses.append(response)
            out.categories.append(row.get("category"))
            out.langs.append(row.get("lang"))
            out.answers.append(row.get("answer"))
            out.splits.append(row.get("split"))
    return out


def is_answer_only(response: str, answer: str | None = None) -> bool:
    """The response gives an answer and no working: a few tokens holding at most one number."""
    toks = tokens(response)
    if not toks or len(toks) > ANSWER_ONLY_TOKENS:
        return False
    numbers = [t for t in semantic_tokens(response) if t[0].isdigit()]
    return len(numbers) <= 1


class LengthSummary(BaseModel):
    mean: float = 0
    p50: float = 0
    p95: float = 0
    max: int = 0
    over_context: int = 0  # rows longer than the model's context


class Profile(BaseModel):
    rows: int
    format: str
    tokenizer: str  # the base model whose tokenizer counted, or "approx" (words and CJK characters)
    prompt_tokens: LengthSummary
    response_tokens: LengthSummary
    languages: dict[str, int]
    turns: dict[str, int]  # messages per row -> rows
    missing: dict[str, int]  # field -> rows where it is absent (null)
    empty: dict[str, int]  # field -> rows where it is present but blank
    exact_duplicates: int
    near_duplicates: int
    answer_forms: dict[str, int]  # answer_only | with_reasoning | empty
    fields: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-field distinct values and top 10
    splits: dict[str, int] = Field(default_factory=dict)


@dataclass
class ProfileResult:
    profile: Profile
    exact: dict[int, int]  # duplicate index -> index of the first copy
    near: dict[int, int]  # near-duplicate index -> an earlier near-identical row
    answer_only: list[int]
    empty_rows: list[int]


def token_counter(ctx: Context | None, model: str | None) -> tuple[str, Any]:
    """The name and a ``list[str] -> list[int]`` counter of ``model``'s tokenizer (a recorded base
    model); without a model, or if it is not recorded here, words and CJK characters ("approx")."""
    if model and ctx is not None:
        from imts.core.errors import NotFoundError
        from imts.registry.base_models import get

        try:
            path = get(ctx, model).path
        except NotFoundError:
            path = None
        if path:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(path)
            return model, lambda texts: [len(ids) for ids in tok(list(texts))["input_ids"]]
    return "approx", lambda texts: [len(tokens(t)) for t in texts]


def _lengths(counts: Sequence[int], context: int | None) -> LengthSummary:
    if not counts:
        return LengthSummary()
    a = np.asarray(counts)
    over = int((a > context).sum()) if context else 0
    return LengthSummary(
        mean=round(float(a.mean()), 1),
        p50=float(np.percentile(a, 50)),
        p95=float(np.percentile(a, 95)),
        max=int(a.max()),
        over_context=over,
    )


def profile(
    ctx: Context | None, rows: Rows, model: str | None = None, context: int | None = 2048, near: bool = True
) -> ProfileResult:
    """Profile ``rows``: lengths counted with ``model``'s tokenizer, duplicates by ``data.dedup``
    (exact keys, MinHash near duplicates of the prompts at Jaccard 0.7)."""
    name, count = token_counter(ctx, model)
    prompt_len = count(rows.prompts)
    response_len = count(rows.responses)
    langs = Counter(lang or detect_lang(p) for lang, p in zip(rows.langs, rows.prompts, strict=True))
    keys = [exact_key(p + "\n" + r) for p, r in zip(rows.prompts, rows.responses, strict=True)]
    exact = exact_duplicates(keys)
    near_map: dict[int, int] = {}
    if near:
        first = [i for i in range(len(rows)) if i not in exact]
        found = near_duplicates([rows.prompts[i] for i in first], NEAR_THRESHOLD)
        near_map = {first[i]: first[j] for i, j in found.items()}
    answer_only = [
        i for i, (r, a) in enumerate(zip(rows.responses, rows.answers, strict=True)) if is_answer_only(r, a)
    ]
    empty_rows = [i for i, r in enumerate(rows.responses) if not r.strip()]
    missing: dict[str, int] = {}
    empty: dict[str, int] = {}
    for name_, values in (
        ("prompt", rows.prompts),
        ("response", rows.responses),
        ("category", rows.categories),
        ("lang", rows.langs),
        ("answer", rows.answers),
    ):
        missing[name_] = sum(v is None for v in values)
        empty[name_] = sum(v is not None and not str(v).strip() for v in values)
    fields: dict[str, dict[str, Any]] = {}
    for name_, values in (("category", rows.categories), ("lang", rows.langs), ("answer", rows.answers)):
        c = Counter(v for v in values if v is not None)
        fields[name_] = {"distinct": len(c), "top": dict(c.most_common(10))}
    prof = Profile(
        rows=len(rows),
        format=rows.fmt,
        tokenizer=name,
        prompt_tokens=_lengths(prompt_len, context),
        response_tokens=_lengths(response_len, context),
        languages=dict(langs.most_common()),
        turns={str(k): v for k, v in sorted(Counter(rows.turns).items())},
        missing=missing,
        empty=empty,
        exact_duplicates=len(exact),
        near_duplicates=len(near_map),
        answer_forms={
            "answer_only": len(answer_only),
            "with_reasoning": len(rows) - len(answer_only) - len(empty_rows),
            "empty": len(empty_rows),
        },
        fields=fields,
        splits=dict(Counter(s for s in rows.splits if s)),
    )
    return ProfileResult(prof, exact, near_map, answer_only, empty_rows)


_JSONISH = re.compile(r"^\s*[\[{]")


def looks_structured(text: str) -> bool:
    """The response is a JSON object or list that parses."""
    if not _JSONISH.match(text):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
