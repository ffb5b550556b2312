"""Chat backends, chosen by name: ``rules`` (no model), ``local`` (a transformers model), ``openai``
(any OpenAI-compatible endpoint: vLLM, Ollama, a hosted API, ``imts serve``).

Every agent (judges, red team, analyst) takes a :class:`ChatBackend` and nothing else model-shaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imts.agents.chat import BackendError, ChatBackend, ChatReply, Message
from imts.core.errors import InputError


def _approx_tokens(text: str) -> int:
    """Words and CJK characters: what the rules backend counts, having no tokenizer."""
    return len(re.findall(r"[\u4e00-\u9fff]|\w+|[^\w\s]", text))


class RulesBackend:
    """No model: answers judge prompts (see ``imts.agents.judges.llm``) by rules, anything else with a
    fixed reply. Deterministic and free; the embedded default."""

    name = "rules"

    def chat(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0) -> ChatReply:
        from imts.agents.judges.rules import rules_reply

        prompt = "\n".join(m["content"] for m in messages)
        text = rules_reply(prompt)
        return ChatReply(text, _approx_tokens(prompt), _approx_tokens(text))


class LocalBackend:
    """A transformers model from a folder (a base model, a merged fine-tune, the tiny test model)."""

    def __init__(self, path: Path, name: str | None = None, adapter: Path | None = None) -> None:
        from imts.inference.generate import load

        self.path = Path(path)
        self.name = name or f"local:{(adapter or self.path).name}"
        self.tokenizer, self.model = load(self.path, adapter)

    def chat(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0) -> ChatReply:
        from imts.inference.generate import Sampling, generate, render_prompt

        texts, speed = generate(
            self.tokenizer,
            self.model,
            [list(messages)],
            max_new_tokens=max_tokens,
            batch_size=1,
            sampling=Sampling(temperature=temperature),
        )
        prompt_tokens = len(render_prompt(self.tokenizer, list(messages)))
        return ChatReply(texts[0], prompt_tokens, int(speed["new_tokens"]))


class OpenAIBackend:
    """Any OpenAI-compatible ``/v1/chat/completions`` endpoint. The key is sent, never logged or shown."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key=***)"

    def chat(self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0) -> ChatReply:
        import httpx

        body = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        try:
            resp = self._client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.base_url} unreachable: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise BackendError(f"{self.base_url} answered {resp.status_code}: {resp.text[:200]}")
        data: dict[str, Any] = resp.json()
        usage = data.get("usage") or {}
        return ChatReply(
            data["choices"][0]["message"]["content"] or "",
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )

    def stream(self, messages: Sequence[Message], max_tokens: int = 256) -> list[str]:
        """The reply's pieces as the server streams them (``stream: true``, server-sent events)."""
        body = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens, "stream": True}
        pieces = []
        with self._client.stream("POST", "/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                raise BackendError(f"{self.base_url} answered {resp.status_code}")
            for line in resp.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                delta = json.loads(line[6:])["choices"][0]["delta"]
                if delta.get("content"):
                    pieces.append(delta["content"])
        return pieces

    def close(self) -> None:
        self._client.close()


BACKENDS = ("rules", "local", "openai")


def make_backend(
    name: str,
    *,
    model_path: Path | None = None,
    adapter: Path | None = None,
    url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
) -> ChatBackend:
    """A backend by name: ``rules``; ``local`` with ``model_path`` (and a LoRA ``adapter`` over it);
    ``openai`` with ``url`` (+ ``model``,
    ``api_key``)."""
    if name == "rules":
        return RulesBackend()
    if name == "local":
        if model_path is None:
            raise InputError("the local backend needs a model folder", field="model")
        return LocalBackend(model_path, adapter=adapter)
    if name == "openai":
        if not url:
            raise InputError("the openai backend needs an endpoint URL", field="url")
        return OpenAIBackend(url, model or "default", api_key)
    raise InputError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})", field="backend")
