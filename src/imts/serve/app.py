"""The OpenAI-compatible app: ``/v1/models`` and ``/v1/chat/completions`` (whole or streamed as SSE)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from imts.core.ids import new_id
from imts.inference.generate import Sampling
from imts.serve.engine import Engine
from imts.serve.schemas import ChatMessage, ChatRequest, ChatResponse, Choice, ModelCard, ModelList, Usage

log = logging.getLogger(__name__)


def create_app(
    model_path: Path, model_name: str, api_key: str | None = None, adapter: Path | None = None
) -> FastAPI:
    """An app serving one model under ``model_name`` (with ``adapter``: that LoRA adapter merged into
    it on load); with ``api_key``, requests must bear it."""
    engine = Engine(model_path, model_name, adapter)
    created = int(time.time())
    app = FastAPI(title="IMTS OpenAI-compatible endpoint", version="1")

    @app.middleware("http")
    async def check_key(request: Request, call_next):  # type: ignore[no-untyped-def]
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
            # The presented key is never logged, only that it was wrong.
            log.warning("rejected a request to %s: missing or wrong API key", request.url.path)
            return JSONResponse({"error": {"message": "invalid API key", "type": "auth"}}, status_code=401)
        return await call_next(request)

    @app.get("/v1/models", response_model=ModelList)
    def models() -> ModelList:
        """The model this endpoint serves."""
        return ModelList(data=[ModelCard(id=engine.name, created=created)])

    @app.post("/v1/chat/completions", response_model=ChatResponse)
    def chat(req: ChatRequest):  # type: ignore[no-untyped-def]
        """A chat completion; with ``stream: true`` server-sent ``chat.completion.chunk`` events."""
        if req.model not in (engine.name, "default"):
            raise HTTPException(404, f"model '{req.model}' is not served here (try '{engine.name}')")
        messages = [m.model_dump() for m in req.messages]
        sampling = Sampling(temperature=req.temperature, top_p=req.top_p, seed=req.seed or 0)
        cid = new_id("chatcmpl")
        if req.stream:
            return StreamingResponse(
                _sse(engine.stream(messages, req.max_tokens, sampling), cid, engine.name),
                media_type="text/event-stream",
            )
        done = engine.complete(messages, req.max_tokens, sampling)
        return ChatResponse(
            id=cid,
            created=int(time.time()),
            model=engine.name,
            choices=[
                Choice(
                    message=ChatMessage(role="assistant", content=done.text),
                    finish_reason=done.finish_reason,  # type: ignore[arg-type]
                )
            ],
            usage=Usage(
                prompt_tokens=done.prompt_tokens,
                completion_tokens=done.completion_tokens,
                total_tokens=done.prompt_tokens + done.completion_tokens,
            ),
        )

    return app


def _sse(pieces: Iterator[str], cid: str, model: str) -> Iterator[str]:
    def chunk(delta: dict[str, str], finish: str | None) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant"}, None)
    for piece in pieces:
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"


def serve(
    model_path: Path,
    model_name: str,
    host: str,
    port: int,
    api_key: str | None = None,
    adapter: Path | None = None,
) -> None:
    """Run the endpoint until interrupted."""
    import uvicorn

    app = create_app(model_path, model_name, api_key, adapter)
    uvicorn.run(app, host=host, port=port, log_level="info")
