"""The OpenAI-compatible server on real loopback HTTP, with the openai chat backend as its client."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import make_ws
from tests.serve.factory import serving

from imts.agents.backends import OpenAIBackend, make_backend
from imts.agents.chat import BackendError
from imts.agents.judges.base import JudgeItem
from imts.agents.judges.llm import LLMJudge
from imts.serve.app import create_app
from imts.serve.router import LocalAccess

KEY = "sk-test-secret-123"
SEED = 6


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(
        LocalAccess(make_ws(tmp_path_factory.mktemp("serve")), KEY), {"tiny": (tiny_model, None)}
    )
    with serving(app) as url:
        yield f"{url}/v1"


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


def _post(server: str, **body: object) -> httpx.Response:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "What is 2 + 3?"}], **body}
    return httpx.post(
        f"{server}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )


def test_n_gives_n_choices_and_stop_cuts_the_text(server: str) -> None:
    sampled = {"max_tokens": 16, "temperature": 1.0, "seed": SEED}  # seeded: the same text every time
    whole = _post(server, **sampled).json()["choices"][0]["message"]["content"]
    # A stop sequence from the answer's start (before any partly decoded character), first occurrence.
    k = next(i for i in range(3, len(whole) - 3) if whole.find(whole[i : i + 3]) == i and whole[i - 1] == " ")
    stop = whole[k : k + 3]
    assert "\ufffd" not in whole[: k + 3]
    cut = _post(server, **sampled, stop=[stop, "never-in-the-text"]).json()
    assert cut["choices"][0]["message"]["content"] == whole[:k].strip()
    assert cut["choices"][0]["finish_reason"] == "stop"
    streamed = _post(server, **sampled, stop=stop, stream=True).text
    chunks = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip() == whole[:k].strip() and stop not in text
    many = _post(server, max_tokens=8, n=3, temperature=1.0, seed=4).json()
    assert [c["index"] for c in many["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in many["choices"]}) > 1  # sampled, seeded apart
    assert many["usage"]["completion_tokens"] > 8  # the three generations together
    streams = _post(server, max_tokens=4, n=2, stream=True).text
    indices = {json.loads(line[6:])["choices"][0]["index"] for line in streams.splitlines() if "{" in line}
    assert indices == {0, 1} and streams.rstrip().endswith("data: [DONE]")


def test_n_choices_share_a_batch(server: str) -> None:
    def batches() -> tuple[float, float]:
        text = httpx.get(f"{server[:-3]}/metrics").text
        count, total = (
            re.search(rf"^imts_serve_batch_size_{k} (\S+)$", text, re.M) for k in ("count", "sum")
        )
        assert count and total, text
        return float(count.group(1)), float(total.group(1))

    before = batches()
    assert len(_post(server, max_tokens=4, n=3, temperature=1.0).json()["choices"]) == 3
    after = batches()
    # the three generations were queued together: one batch of three, not three batches of one
    assert (after[0] - before[0], after[1] - before[1]) == (1, 3)


def _openai_error(resp: httpx.Response, status: int, param: str | None) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["param"] == param and body["error"]["message"]
    return body["error"]


def test_every_error_has_openai_shape(server: str) -> None:
    assert _post(server, max_tokens=2, logprobs=False, user="u1").status_code == 200  # "off" is fine
    err = _openai_error(_post(server, logprobs=True), 400, "logprobs")
    assert err["code"] == "unsupported_parameter" and "not supported" in str(err["message"])
    assert _openai_error(_post(server, presence_penalty=0.5), 400, "presence_penalty")
    err = _openai_error(_post(server, best_of=2), 400, "best_of")
    assert "Unrecognized request argument" in str(err["message"])
    assert _openai_error(_post(server, temperature=5), 400, "temperature")["type"] == "invalid_request_error"
    assert _openai_error(_post(server, n=0), 400, "n")
    assert _openai_error(_post(server, stop=["a", "b", "c", "d", "e"]), 400, None)
    assert _openai_error(_post(server, messages=[]), 400, "messages")
    assert _openai_error(_post(server, model="gpt-9"), 404, "model")["code"] == "model_not_found"
    headers = {"Authorization": f"Bearer {KEY}"}
    assert _openai_error(httpx.get(f"{server}/nowhere", headers=headers), 404, None)
    assert _openai_error(httpx.get(f"{server}/chat/completions", headers=headers), 405, None)
    bad = httpx.post(
        f"{server}/chat/completions",
        content=b"{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert _openai_error(bad, 400, None)["code"] == "invalid_json"
    assert _openai_error(httpx.get(f"{server}/models"), 401, None)["code"] == "invalid_api_key"
