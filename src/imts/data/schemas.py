"""Canonical schemas of the dataset formats beyond SFT, and how source rows map onto them.

A dataset has one format, recorded on the dataset and checked on every new version:

    sft             id, messages[{role, content}], category, lang, answer, meta   (see ``formats``)
    preference      id, prompt, chosen, rejected, category, lang, meta           (DPO-style pairs)
    classification  id, text, label, category, lang, meta
    text            id, text, category, lang, meta                                (plain text)

The SFT schema is ``formats.SCHEMA`` unchanged (training and evaluation read it); prompt/response
(Alpaca) and chat (OpenAI/ShareGPT) sources both become ``sft``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from imts.core.errors import InputError
from imts.core.text import detect_lang
from imts.data.formats import SCHEMA as SFT_SCHEMA
from imts.data.formats import FieldMap, _chat_key, _text, _unicode, detect, to_canonical

_COMMON = [pa.field("category", pa.string()), pa.field("lang", pa.string()), pa.field("meta", pa.string())]
_ID = pa.field("id", pa.string(), nullable=False)

SCHEMAS: dict[str, pa.Schema] = {
    "sft": SFT_SCHEMA,
    "preference": pa.schema(
        [
            _ID,
            pa.field("prompt", pa.string()),
            pa.field("chosen", pa.string()),
            pa.field("rejected", pa.string()),
            *_COMMON,
        ]
    ),
    "classification": pa.schema(
        [_ID, pa.field("text", pa.string()), pa.field("label", pa.string()), *_COMMON]
    ),
    "text": pa.schema([_ID, pa.field("text", pa.string()), *_COMMON]),
}
# Source-row formats (FieldMap.format) and the dataset format they produce.
DATASET_FORMAT = {
    "prompt_response": "sft",
    "chat": "sft",
    "preference": "preference",
    "classification": "classification",
    "text": "text",
}
# The columns ``row_text`` reads, per dataset format.
TEXT_COLUMNS = {"sft": ["messages"], "preference": ["prompt"], "classification": ["text"], "text": ["text"]}
TEXT_KEYS = ("text", "content", "sentence", "document", "body")
LABEL_KEYS = ("label", "labels", "class", "target")


def schema_of(dataset_format: str, with_split: bool = False) -> pa.Schema:
    schema = SCHEMAS[dataset_format]
    return schema.append(pa.field("split", pa.string())) if with_split else schema


def detect_any(row: dict[str, Any], given: FieldMap) -> FieldMap:
    """Complete ``given`` from a first row: preference, classification, text, or the SFT formats."""
    fmt = given.format
    if fmt and fmt not in DATASET_FORMAT:
        raise InputError(f"unknown format '{fmt}': expected one of {', '.join(DATASET_FORMAT)}")
    extras = dict(given.extras)
    if fmt == "preference" or (not fmt and "chosen" in row and "rejected" in row):
        prompt = given.prompt or next((k for k in ("prompt", "question", "instruction") if k in row), "")
        extras |= {"chosen": extras.get("chosen", "chosen"), "rejected": extras.get("rejected", "rejected")}
        if not prompt:
            raise InputError(f"preference rows need a prompt field (keys: {sorted(row)})", field="prompt")
        return FieldMap(**{**given.__dict__, "format": "preference", "prompt": prompt, "extras": extras})
    label = extras.get("label") or next((k for k in LABEL_KEYS if k in row), "")
    text = extras.get("text") or next((k for k in TEXT_KEYS if k in row), "")
    if fmt == "classification" or (not fmt and label and text and not _chat_key(row)):
        if not (label and text):
            raise InputError(f"classification rows need text and label fields (keys: {sorted(row)})")
        extras |= {"text": text, "label": label}
        return FieldMap(**{**given.__dict__, "format": "classification", "extras": extras})
    if fmt == "text" or (not fmt and text and not _chat_key(row) and not _has_prompt_response(row, given)):
        if not text:
            raise InputError(f"text rows need a text field (one of {', '.join(TEXT_KEYS)})", field="text")
        return FieldMap(**{**given.__dict__, "format": "text", "extras": {**extras, "text": text}})
    return detect(row, given)


def _has_prompt_response(row: dict[str, Any], given: FieldMap) -> bool:
    try:
        detect(row, given)
    except InputError:
        return False
    return True


def describe(fmap: FieldMap) -> str:
    if fmap.format in ("chat", "prompt_response"):
        return fmap.describe()
    if fmap.format == "preference":
        e = fmap.extras
        return f"preference: prompt<-{fmap.prompt}, chosen<-{e['chosen']}, rejected<-{e['rejected']}"
    if fmap.format == "classification":
        return f"classification: text<-{fmap.extras['text']}, label<-{fmap.extras['label']}"
    return f"text: text<-{fmap.extras['text']}"


def canonical(row: Any, fmap: FieldMap) -> dict[str, Any]:
    """One source row to its canonical dict (without ``id``) for ``fmap.format``."""
    if fmap.format in ("chat", "prompt_response"):
        return to_canonical(row, fmap)
    if not isinstance(row, dict):
        raise InputError(f"expected an object, got {type(row).__name__}")
    e = fmap.extras
    if fmap.format == "preference":
        out: dict[str, Any] = {
            "prompt": _text(row, fmap.prompt),
            "chosen": _text(row, e["chosen"]),
            "rejected": _text(row, e["rejected"]),
        }
        used = {fmap.prompt, e["chosen"], e["rejected"]}
        if out["chosen"] == out["rejected"]:
            raise InputError("chosen and rejected are identical", field=e["rejected"])
    elif fmap.format == "classification":
        label = row.get(e["label"])
        if label is None or (isinstance(label, str) and not label.strip()) or isinstance(label, dict | list):
            raise InputError("missing or non-scalar label", field=e["label"])
        out = {"text": _text(row, e["text"]), "label": str(label)}
        used = {e["text"], e["label"]}
    else:
        out = {"text": _text(row, e["text"])}
        used = {e["text"]}
    used |= {fmap.id, fmap.category, fmap.lang}
    text = " ".join(v for v in out.values() if isinstance(v, str))
    lang = row.get(fmap.lang) or detect_lang(text)
    meta = {k: v for k, v in row.items() if k not in used}
    category = row.get(fmap.category)
    result = {
        **out,
        "category": None if category is None else str(category),
        "lang": str(lang),
        "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str) if meta else None,
    }
    for key in ("category", "lang", "meta", "label"):
        if result.get(key) is not None:
            _unicode(result[key], key)
    return result


def row_text(row: dict[str, Any]) -> str:
    """The text of a canonical row of any format, for dedup and decontamination."""
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"][:-1])
    if "prompt" in row:
        return row["prompt"]
    return row["text"]
