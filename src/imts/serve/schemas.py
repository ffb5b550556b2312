"""Request and response bodies of the OpenAI-compatible API (the subset IMTS serves).

Every parameter of OpenAI's chat completions either works or is refused: ``UNSUPPORTED`` lists those
this server does not implement with the value that means "off" (a request that sends that value is
served; any other value gets a 400 naming the parameter), and a parameter OpenAI does not have at all is
refused like OpenAI refuses it (``extra="forbid"``). ``user``, ``store``, ``metadata``,
``service_tier`` and ``stream_options`` are accepted and change nothing: they concern OpenAI's accounting
and storage, not the completion. One field is IMTS's own: ``decoding_tools`` (``["calculator"]``, or
``[]`` for none) overrides the server's decoding tools (``imts serve --tools``) for one request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Parameters of OpenAI's API this server does not implement, with the values that leave them off.
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "parallel_tool_calls": (None,),
    "functions": (None, []),
    "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
}
MAX_N = 8
MAX_STOP = 4


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    reasoning_effort: str | None = None
    web_search_options: Any = None
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    stream_options: dict[str, Any] | None = None
    # IMTS's own: decoding tools for this request (``imts.inference.tools``); None: the server's
    # (`imts serve --tools`), [] for none.
    decoding_tools: list[str] | None = None

    @field_validator("decoding_tools")
    @classmethod
    def _tools(cls, value: list[str] | None) -> list[str] | None:
        from imts.inference.tools import check

        return None if value is None else check(value)

    @model_validator(mode="after")
    def _stops(self) -> ChatRequest:
        stops = self.stop_list()
        if len(stops) > MAX_STOP or any(not s for s in stops):
            raise ValueError(f"'stop' takes up to {MAX_STOP} non-empty strings")
        return self

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def token_limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 256

    def unsupported(self) -> str | None:
        """The first parameter set to a value this server cannot honour, or None."""
        for name, off in UNSUPPORTED.items():
            if getattr(self, name) not in off:
                return name
        return None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Choice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: Literal["stop", "length"]


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "imts"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape, for every error this server returns."""

    error: ErrorBody
