"""The OpenAI-compatible server on real loopback HTTP, with the openai chat backend as its client."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from imts.agents.backends import OpenAIBackend, make_backend
from imts.agents.chat import BackendError
from imts.agents.judges.base import JudgeItem
from imts.agents.judges.llm import LLMJudge
from imts.serve.app import create_app

KEY = "sk-test-secret-123"


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(tiny_model, "tiny", api_key=KEY), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(timeout=10)


def test_models_lists_the_served_model(server: str) -> None:
    resp = httpx.get(f"{server}/models", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 200 and [m["id"] for m in resp.json()["data"]] == ["tiny"]


def test_chat_whole_and_streamed_agree(server: str) -> None:
    backend = make_backend("openai", url=server, model="tiny", api_key=KEY)
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    reply = backend.chat(messages, max_tokens=12)
    assert reply.prompt_tokens > 5 and 0 < reply.completion_tokens <= 12
    assert isinstance(backend, OpenAIBackend)
    pieces = backend.stream(messages, max_tokens=12)
    assert len(pieces) >= 2  # token by token, not one blob
    assert "".join(pieces).strip() == reply.text  # greedy: the same text either way
    backend.close()


def test_wrong_key_is_refused_and_never_logged(server: str, caplog: pytest.LogCaptureFixture) -> None:
    bad = OpenAIBackend(server, "tiny", api_key="sk-wrong-key-456")
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError, match="401"):
        bad.chat([{"role": "user", "content": "hi"}])
    assert "sk-wrong-key-456" not in caplog.text and "sk-wrong-key-456" not in repr(bad)
    assert "rejected a request" in caplog.text
    unknown = OpenAIBackend(server, "gpt-9", api_key=KEY)
    with pytest.raises(BackendError, match="404"):
        unknown.chat([{"role": "user", "content": "hi"}])


def test_llm_judge_through_the_endpoint(server: str) -> None:
    judge = LLMJudge(OpenAIBackend(server, "tiny", api_key=KEY), "logic")
    got = judge.judge([JudgeItem("i", "What is 2 + 3?", "2 + 3 = 5. The answer is 5.", "5")])[0]
    # A random tiny model writes no JSON: the judge must say so and stay undecided, not pass the item.
    assert got.calls == 1 and got.tokens > 0 and 0.0 <= got.score <= 1.0 and got.rationale


def test_unreachable_endpoint_is_a_backend_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match="unreachable"):
        OpenAIBackend(f"http://127.0.0.1:{port}/v1", "x", api_key=KEY).chat(
            [{"role": "user", "content": "hi"}]
        )
