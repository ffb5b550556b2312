"""Shared fixtures: isolated workspaces (SQLite, and the local PostgreSQL), tiny real models."""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from imts.core.settings import Settings
from imts.jobs.ray_local import LocalRayCluster
from imts.services.startup import local_context
from imts.store.context import Context


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs on two workers (pytest-xdist, ``--dist loadgroup``). Each test module stays on
    one worker (its module-scoped fixtures — a world of users, a server, a trained model — are built
    once), and every test on the loopback Ray cluster joins one group, so one cluster serves them all."""
    on_ray = [i for i in items if "ray_cluster" in getattr(i, "fixturenames", ())]
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("ray" if item in on_ray else item.nodeid.split("::")[0]))
    # The cluster's tests first: its fault tests (a killed raylet, a lost head) then run on a fresh
    # cluster, and the cluster's processes are idle for the rest of the session.
    items[:] = on_ray + [i for i in items if i not in on_ray]


ROOT = Path(__file__).resolve().parents[1]
# Subprocesses started by tests (the CLI, workers) import this checkout's code, not another install.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
# Workers at the test processes' own priority: niced (the default, IMTS_WORKER_NICE=10) they would starve
# while the other xdist worker computes, and a test waiting on its job would wait for the other test.
os.environ.setdefault("IMTS_WORKER_NICE", "0")
PG_ADMIN_URL = os.environ.get(
    "IMTS_TEST_POSTGRES_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def make_ws(root: Path, database_url: str | None = None, **settings: Any) -> Context:
    """The local user's context (default tenant and project unless ``settings`` name others)."""
    return local_context(
        Settings(workspace=root / "ws", database_url=database_url, model_cache=_model_cache(), **settings)
    )


def _model_cache() -> Path:
    return Path(os.environ.get("IMTS_MODEL_CACHE", Path.home() / ".cache" / "imts" / "models"))


@pytest.fixture
def ws(tmp_path: Path) -> Context:
    """A fresh workspace with an embedded SQLite database."""
    return make_ws(tmp_path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text("select 1"))
    except Exception as exc:  # no server: skip, unless CI demands it
        if os.environ.get("IMTS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (IMTS_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        pytest.skip(f"local PostgreSQL not reachable: {exc}")
    name = f"imts_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.execute(text(f'create database "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from imts.store.db import session_factory

    session_factory(url).kw["bind"].dispose()
    with admin.connect() as c:
        c.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Context:
    """The same test against SQLite and against the local PostgreSQL (each test in its own project)."""
    if request.param == "sqlite":
        return make_ws(tmp_path)
    url = request.getfixturevalue("postgres_url")
    return make_ws(tmp_path, url, project=f"p-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def mathgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mathgen_for_tests", ROOT / "examples" / "mathgen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """One real Ray cluster per test session (loopback), shared by every test that needs one: a head of
    1 CPU and a node of 2 CPUs, so a 2-CPU job can only be placed on the second node."""
    cluster = LocalRayCluster(head_cpus=1, node_cpus=(2,)).start()
    yield cluster
    cluster.stop()


def ray_ws(root: Path, cluster: LocalRayCluster, **settings: Any) -> Context:
    """A workspace whose pool runs on ``cluster`` (``executor: ray``), with fast heartbeats."""
    pool = root / "pool.yaml"
    write_ray_pool(pool, cluster)
    values = dict(heartbeat_s=0.3, heartbeat_timeout_s=5.0, start_timeout_s=60.0, scheduler_interval_s=0.1)
    values.update(settings)
    return local_context(Settings(workspace=root / "ws", pool_file=pool, **values))


def write_ray_pool(pool: Path, cluster: LocalRayCluster, **more: Any) -> Path:
    spec = {
        "executor": "ray",
        "ray_address": cluster.address,
        "nodes": [{"name": "ray", "cpus": 3, "memory_gb": 8}],  # what the cluster holds, to share out
        **more,
    }
    pool.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return pool


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def math_file(tmp_path_factory: pytest.TempPathFactory, mathgen: ModuleType) -> Path:
    rows, _ = mathgen.generate(n=400, seed=1)
    return write_jsonl(tmp_path_factory.mktemp("data") / "math.jsonl", rows)


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, mathgen: ModuleType) -> Path:
    """A randomly initialised 2-layer Llama with a BPE tokenizer trained on the example task's text.

    Real transformers classes end to end, small enough that a whole loop runs in seconds.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rows, _ = mathgen.generate(n=600, seed=7)
    texts = [r["prompt"] + " " + r["response"] for r in rows]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800,
        special_tokens=["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator([*texts, "system user assistant"], trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
