"""Deployments and the many-model server: LoRA adapters of one tiny base over real loopback HTTP with
platform API keys, batched across requests, following alias moves, restored after a restart."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.conftest import make_ws, write_jsonl
from tests.registry.factory import versions
from tests.serve.factory import answer_alone, lora_adapter, serving

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.data import service as data
from imts.registry import models
from imts.registry import service as registry
from imts.serve.app import create_app
from imts.serve.router import KeyAccess
from imts.serve.usage import Meter
from imts.services import identity
from imts.store import runs
from imts.store.context import Context, open_context, platform_context
from imts.store.models import BaseModelRecord

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


def test_deployments_add_list_remove_and_guard_delete(any_ws: Context, tmp_path: Path) -> None:
    ctx = any_ws
    v1, v2 = versions(ctx, tmp_path, 2)
    registry.set_alias(ctx, v1.id, "production")
    seq = registry.alias_seq(ctx)
    d = registry.add_deployment(ctx, "tuned")
    assert (d.name, d.model, d.alias) == ("tuned", "tuned", "production")
    assert registry.alias_seq(ctx) == seq + 1  # a running server sees it on its next request
    assert registry.add_deployment(ctx, "tuned", "staging").name == "tuned@staging"
    with pytest.raises(ConflictError, match="already deployed"):
        registry.add_deployment(ctx, "tuned")
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        registry.add_deployment(ctx, "nope")
    with pytest.raises(InputError, match="alias"):
        registry.add_deployment(ctx, "tuned", "Bad Alias", "x")
    with pytest.raises(ConflictError, match="deployment 'tuned' serves it"):
        registry.delete_model_version(ctx, v1.id)
    registry.remove_alias(ctx, "tuned", "production")
    registry.delete_model_version(ctx, v1.id)  # the alias moved away: nothing serves it any more
    assert [x.name for x in registry.list_deployments(ctx)] == ["tuned", "tuned@staging"]
    registry.remove_deployment(ctx, "tuned@staging")
    with pytest.raises(NotFoundError, match="nothing is deployed as 'tuned@staging'"):
        registry.remove_deployment(ctx, "tuned@staging")
    assert [x.name for x in registry.list_deployments(ctx)] == ["tuned"] and v2.version == 2


def test_meter_limits_requests_and_tokens_per_key() -> None:
    meter = Meter(requests_per_minute=2, tokens_per_minute=0)
    assert meter.admit("k1") is None and meter.admit("k1") is None
    assert "limit 2" in str(meter.admit("k1")) and meter.admit("k2") is None
    tokens = Meter(tokens_per_minute=10)
    assert tokens.admit("k") is None
    tokens.record("k", "m", 7, 5, 0.1)
    assert "used 12 tokens" in str(tokens.admit("k"))
    assert tokens.of("k").model_dump() == {
        "key": "k",
        "requests": 1,
        "prompt_tokens": 7,
        "completion_tokens": 5,
    }


def _reference(base: Path, adapter: Path | None) -> str:
    """What today's path (one request alone, ``generate``) answers, greedy, 8 tokens."""
    return answer_alone(base, adapter, PROMPT, 8)


@contextmanager
def _serving(ctx: Context) -> Iterator[str]:
    with serving(create_app(KeyAccess(ctx.ws), window_ms=200, max_batch=8)) as url:
        yield url


def _chat(url: str, key: str, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": PROMPT, "max_tokens": 8, **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=120)  # fmt: skip


def test_many_adapters_over_one_base_with_keys_aliases_and_restart(tmp_path: Path, tiny_model: Path) -> None:
    ctx = make_ws(tmp_path)
    bm = f"bm_{uuid.uuid4().hex[:8]}"
    with ctx.session() as s:
        s.add(BaseModelRecord(id=bm, name="tiny-base", path=str(tiny_model), architecture="Llama",
                              num_params=1, source="test", checksum="0" * 64))  # fmt: skip
    rows = [{"prompt": "1 + 1 = ?", "response": "2"}]
    dv = data.import_file(ctx, str(write_jsonl(tmp_path / "d.jsonl", rows)), "d")
    folders = [lora_adapter(tiny_model, tmp_path / f"adapter-{i}", seed=i + 1) for i in range(3)]

    def version(c: Context, name: str, folder: Path) -> str:
        run = runs.create(c, "train", {"base_model": bm})
        return models.create_version(c, name, bm, run.id, dv.id, folder, None, run.spec, {}).id

    a1, a2 = version(ctx, "alpha", folders[0]), version(ctx, "alpha", folders[1])
    version(ctx, "beta", folders[2])
    registry.set_alias(ctx, a1, "production")
    registry.set_alias(ctx, "beta:1", "production")
    registry.add_deployment(ctx, "alpha")
    registry.add_deployment(ctx, "beta")
    registry.add_deployment(ctx, "tiny-base", alias=None)
    # A second project of the tenant, with a deployment a project-scoped key must not see.
    other = open_context(ctx.ws, ctx.tenant, "second")
    dv2 = data.import_file(other, str(write_jsonl(tmp_path / "d2.jsonl", rows)), "d")
    run = runs.create(other, "train", {"base_model": bm})
    models.create_version(other, "hidden", bm, run.id, dv2.id, folders[2], None, run.spec, {})
    registry.set_alias(other, "hidden:1", "production")
    registry.add_deployment(other, "hidden")
    root = platform_context(ctx.ws, "root")
    identity.create_user(root, "ada", "a-long-password-1")
    identity.add_member(open_context(ctx.ws, ctx.tenant, ctx.project, "root", "admin"), "ada", "developer")
    scoped_key = identity.create_key(root, "scoped", ctx.tenant, ctx.project, username="ada")
    scoped = scoped_key.secret
    wide = identity.create_key(root, "wide", username="ada").secret

    expected = {
        "alpha": _reference(tiny_model, folders[0]),
        "beta": _reference(tiny_model, folders[2]),
        "tiny-base": _reference(tiny_model, None),
    }
    assert len(set(expected.values())) == 3  # the adapters really change the answer
    with _serving(ctx) as url:
        listed = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {scoped}"}).json()
        assert [m["id"] for m in listed["data"]] == ["alpha", "beta", "tiny-base"]
        listed = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {wide}"}).json()
        assert [m["id"] for m in listed["data"]] == ["alpha", "beta", "hidden", "tiny-base"]
        assert _chat(url, scoped, "hidden").json()["error"]["code"] == "model_not_found"
        assert _chat(url, "sk-nobody", "alpha").status_code == 401
        # Concurrent requests for two adapters and the bare base: answered in shared batches, each
        # exactly as its model answers alone.
        names = ["alpha", "beta", "tiny-base", "alpha", "beta", "tiny-base"]
        got: dict[int, str] = {}
        threads = [
            threading.Thread(target=lambda i=i, n=n: got.__setitem__(
                i, _chat(url, scoped, n).json()["choices"][0]["message"]["content"]))
            for i, n in enumerate(names)
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [got[i] for i in range(len(names))] == [expected[n] for n in names]
        metrics = httpx.get(f"{url}/metrics").text
        batches = float(re.search(r"imts_serve_batch_size_count (\S+)", metrics).group(1))  # type: ignore[union-attr]
        assert batches < 6, "the concurrent requests were not batched together"
        assert "imts_serve_requests_total{key=" in metrics or "imts_serve_requests_total{" in metrics
        streamed = _chat(url, scoped, "beta", stream=True).text
        assert streamed.rstrip().endswith("data: [DONE]") and '"finish_reason"' in streamed
        # Moving the alias: the next request is served by the new version, no restart.
        registry.set_alias(ctx, a2, "production")
        after = _chat(url, scoped, "alpha").json()["choices"][0]["message"]["content"]
        assert after == _reference(tiny_model, folders[1]) != expected["alpha"]
        deadline = time.time() + 10  # the old version's adapter is unloaded once the scheduler idles
        while a1 in (loaded := httpx.get(f"{url}/health").json()["bases"][str(tiny_model)]):
            assert time.time() < deadline, loaded
            time.sleep(0.1)
        assert a2 in loaded and len(loaded) == 2  # alpha:2 and beta:1 over the one base
        usage = httpx.get(f"{url}/v1/usage", headers={"Authorization": f"Bearer {scoped}"}).json()
        assert usage["requests"] == 8 and usage["prompt_tokens"] > 8 * 5 and usage["completion_tokens"] > 0
    with pytest.raises(ConflictError, match="deployment 'alpha' serves it"):
        registry.delete_model_version(ctx, a2)
    # A new server process over the same database serves the same deployments, alpha at version 2.
    with _serving(ctx) as url:
        assert _chat(url, scoped, "alpha").json()["choices"][0]["message"]["content"] == after
