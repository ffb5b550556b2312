"""Dataset formats and their canonical form.

Every supervised row is stored as ``messages`` (a list of ``{role, content}``) plus optional
``category``, ``lang``, ``answer`` (the expected final answer, when the source has one) and ``meta``
(the other source fields as JSON). Prompt/response (Alpaca) and chat (OpenAI messages, ShareGPT
conversations) both map onto it, so training and evaluation have one path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from imts.core.errors import InputError
from imts.core.text import detect_lang

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field(
            "messages",
            pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])),
            nullable=False,
        ),
        pa.field("category", pa.string()),
        pa.field("lang", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("meta", pa.string()),
    ]
)

ROLES = {"system", "user", "assistant"}
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}

# Source field names we recognise, in order of preference, for each canonical role.
PROMPT_KEYS = ("prompt", "instruction", "question", "query", "input")
RESPONSE_KEYS = ("response", "output", "completion", "solution", "answer")
# Mapping keys of the other formats (preference, classification, text), kept in ``FieldMap.extras``.
EXTRA_KEYS = ("chosen", "rejected", "text", "label")
# One encoder for the ``meta`` column of every row (json.dumps with options builds a new one per call).
META_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class FieldMap:
    """How source fields map onto the canonical row. Empty fields are detected from the first row."""

    format: str = ""  # "prompt_response" | "chat"
    prompt: str = ""
    response: str = ""
    context: str = ""  # Alpaca's optional "input", appended to the instruction
    messages: str = ""
    system: str = ""
    category: str = "category"
    lang: str = "lang"
    answer: str = ""
    id: str = "id"
    extras: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> FieldMap:
        """From ``prompt=question,response=solution`` style text (as given on the command line)."""
        if not text:
            return cls()
        values: dict[str, Any] = {}
        extras: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if sep and key in EXTRA_KEYS:
                extras[key] = value.strip()
                continue
            if not sep or key not in cls.__dataclass_fields__ or key == "extras":
                known = ", ".join([*(k for k in cls.__dataclass_fields__ if k != "extras"), *EXTRA_KEYS])
                raise InputError(f"bad field mapping '{part}': expected KEY=FIELD with KEY one of {known}")
            values[key] = value.strip()
        return cls(**values, extras=extras)

    def describe(self) -> str:
        if self.format == "chat":
            return f"chat: messages<-{self.messages}" + (f", answer<-{self.answer}" if self.answer else "")
        parts = [f"prompt<-{self.prompt}", f"response<-{self.response}"]
        if self.context:
            parts.append(f"context<-{self.context}")
        if self.answer:
            parts.append(f"answer<-{self.answer}")
        return "prompt_response: " + ", ".join(parts)


def detect(row: dict[str, Any], given: FieldMap) -> FieldMap:
    """Complete ``given`` from the keys of a first row; raise if no known format fits."""
    if given.format == "chat" or given.messages or (not given.prompt and _chat_key(row)):
        key = given.messages or _chat_key(row)
        if not key:
            raise InputError(f"no messages field found (keys: {sorted(row)})", field="messages")
        # A chat row's ``answer`` (the expected final answer) is its reference too, as for any format.
        answer = given.answer or ("answer" if "answer" in row and key != "answer" else "")
        return FieldMap(**{**given.__dict__, "format": "chat", "messages": key, "answer": answer})
    prompt = given.prompt or next((k for k in PROMPT_KEYS if k in row), "")
    response = given.response or next((k for k in RESPONSE_KEYS if k in row and k != prompt), "")
    if not prompt or not response:
        raise InputError(
            "cannot tell the format: expected chat 'messages'/'conversations' or a prompt field "
            f"({'/'.join(PROMPT_KEYS)}) and a response field ({'/'.join(RESPONSE_KEYS)}); found keys "
            f"{sorted(row)}. Give the mapping explicitly, e.g. --map prompt=question,response=solution"
        )
    context = given.context or ("input" if prompt == "instruction" and "input" in row else "")
    answer = given.answer or ("answer" if response != "answer" and "answer" in row else "")
    return FieldMap(
        **{
            **given.__dict__,
            "format": "prompt_response",
            "prompt": prompt,
            "response": response,
            "context": context,
            "answer": answer,
        }
    )


def _chat_key(row: dict[str, Any]) -> str:
    for key in ("messages", "conversations", "conversation"):
        if isinstance(row.get(key), list):
            return key
    return ""


def to_canonical(row: Any, fmap: FieldMap) -> dict[str, Any]:
    """One source row to the canonical dict (without ``id``). Raises ``InputError`` with the field."""
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {type(row).__name__}")
    used = {fmap.id, fmap.category, fmap.lang}
    if fmap.format == "chat":
        messages = _messages(row.get(fmap.messages), fmap.messages)
        used.add(fmap.messages)
    else:
        prompt = _text(row, fmap.prompt)
        if fmap.context and row.get(fmap.context):
            prompt = f"{prompt}\n\n{_text(row, fmap.context)}"
        messages = []
        if fmap.system and row.get(fmap.system):
            messages.append({"role": "system", "content": _text(row, fmap.system)})
        messages += [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": _text(row, fmap.response)},
        ]
        used |= {fmap.prompt, fmap.response, fmap.context, fmap.system}
    answer = row.get(fmap.answer) if fmap.answer else None
    used.add(fmap.answer)
    text = " ".join(m["content"] for m in messages)
    lang = row.get(fmap.lang) or detect_lang(text)
    # Null fields are left out of ``meta``: a column-wise reader cannot tell them from absent ones.
    meta = {k: v for k, v in row.items() if k not in used and v is not None}
    out = {
        "messages": messages,
        "category": _opt_str(row.get(fmap.category)),
        "lang": str(lang),
        "answer": _opt_str(answer),
        "meta": META_JSON.encode(meta) if meta else None,
    }
    for key in ("category", "lang", "answer", "meta"):
        if out[key] is not None:
            _unicode(out[key], key)
    return out


def _text(row: dict[str, Any], key: str) -> str:
    if key not in row or row[key] is None:
        raise InputError("missing required field", field=key)
    value = row[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", field=key)
    if not value.strip():
        raise InputError("empty text", field=key)
    _unicode(value, key)
    return value


def _unicode(value: str, key: str) -> None:
    """Refuse text that cannot be stored as UTF-8 (JSON's ``\\ud800`` escapes decode to lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("the text holds an invalid character (a lone UTF-16 surrogate)", field=key) from None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _messages(value: Any, key: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InputError("expected a non-empty list of messages", field=key)
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise InputError(f"message {i} is not an object", field=key)
        if "role" in m:
            role, content = m.get("role"), m.get("content")
        else:  # ShareGPT
            role, content = SHAREGPT_ROLES.get(str(m.get("from"))), m.get("value")
        if role not in ROLES:
            raise InputError(f"message {i} has role {role!r}; expected one of {sorted(ROLES)}", field=key)
        if not isinstance(content, str) or not content.strip():
            raise InputError(f"message {i} has no text content", field=key)
        _unicode(content, key)
        out.append({"role": str(role), "content": content})
    if out[-1]["role"] != "assistant":
        raise InputError("the last message must be the assistant's (the response to learn)", field=key)
    if not any(m["role"] == "user" for m in out):
        raise InputError("no user message", field=key)
    return out
