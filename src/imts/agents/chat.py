"""The chat interface every agent takes: messages in, a reply with token counts out.

Implementations (rules, a local model, any OpenAI-compatible endpoint) live in ``backends``; judges, the
court and the red team depend only on this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from imts.core.errors import ImtsError

Message = dict[str, str]


@dataclass(frozen=True)
class ChatReply:
    text: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ChatBackend(Protocol):
    """One chat turn: messages in, the assistant's reply (with token counts) out."""

    name: str

    def chat(
        self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0
    ) -> ChatReply: ...


class BackendError(ImtsError):
    """A chat backend failed (endpoint unreachable, bad reply)."""
