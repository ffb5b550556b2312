"""Data operations split over a version's shards: in one process, or as Ray tasks on the real loopback
cluster (the session's one ``ray_cluster``), with the same result either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from tests.conftest import make_ws, write_jsonl, write_ray_pool

from imts.core.errors import InputError
from imts.data import parallel, service, vectors
from imts.data.cleaning import dedup_version
from imts.data.ingest import import_file
from imts.data.versions import iter_tables, load_rows, resolve
from imts.jobs.ray_local import LocalRayCluster
from imts.optimise.pii.scan import scan_version
from imts.store.context import Context


def count_letters(table: pa.Table, letter: str) -> list[int]:
    """A shard operation registered by a test, as the PII scan registers itself."""
    return [str(r).count(letter) for r in table["text"].to_pylist()]


parallel.register("count_letters", count_letters, columns=lambda fmt: ["text"])


def _local_pool(ws: Context) -> None:
    pool = ws.settings.pool_file
    assert pool is not None
    pool.write_text(yaml.safe_dump({"nodes": [{"name": "local", "cpus": 2, "memory_gb": 4}]}), "utf-8")


def _texts(n: int) -> list[dict[str, str]]:
    # Written apart from the math generator: plain sentences, some repeated, some reworded, one Chinese.
    rows = [{"text": f"Row {i}: the river passes mill number {i % 37} before the bridge."} for i in range(n)]
    rows[10] = dict(rows[3])  # an exact duplicate
    rows[20] = {"text": "Row 3: the river passes the mill number 3 before the bridge."}  # reworded
    rows[30] = {"text": "第三行：河水流过三号磨坊，然后到桥。"}
    return rows


def test_registry_names_operations_and_pieces_keep_row_order(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, pool_file=tmp_path / "pool.yaml")
    _local_pool(ws)
    v = import_file(ws, write_jsonl(tmp_path / "t.jsonl", _texts(33)), name="t")
    with pytest.raises(InputError, match=r"unknown data operation 'nope'.*count_letters"):
        parallel.map_shards(ws, v, "nope")
    run = parallel.map_shards(ws, v, "count_letters", {"letter": "r"}, rows_per_piece=5)
    assert run.executor == "local" and [p.stop - p.start for p in run.pieces] == [5, 5, 5, 5, 5, 5, 3]
    got = [n for piece in run for n in piece]
    want = [str(r["text"]).count("r") for r in load_rows(ws, v)]
    assert got == want and len(got) == 33


def test_dedup_hashes_and_embeddings_on_ray_equal_one_process(
    tmp_path: Path, ray_cluster: LocalRayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_ws(tmp_path, pool_file=tmp_path / "pool.yaml")
    _local_pool(ws)
    v = import_file(ws, write_jsonl(tmp_path / "t.jsonl", _texts(120)), name="t")
    ref = resolve(ws, v.ref)

    # one process: the reference results
    hashes = list(parallel.map_shards(ws, v, "dedup_hash", {"num_perm": 64}))
    local_dedup = dedup_version(ws, v, threshold=0.7, into="t_local")
    local_info = service.embed(ws, v.ref)
    assert local_info.executor == "local" and local_info.rows == 120
    ids, local_vectors = vectors.load_vectors(ws, ref)
    ws.artifacts.delete(local_info.key)  # so that the Ray run computes them again

    # the same calls with the pool on Ray: pieces of 60 rows as Ray tasks over both nodes
    write_ray_pool(ws.settings.pool_file, ray_cluster)  # type: ignore[arg-type]
    monkeypatch.setattr(parallel, "RAY_PIECE_ROWS", 60)
    run = parallel.map_shards(ws, v, "dedup_hash", {"num_perm": 64})
    on_ray = list(run)
    assert run.executor == "ray" and len(run.pieces) == 2 and len(set(run.nodes)) == 2
    for key in ("id", "norm", "head"):
        assert pa.concat_arrays([p[key] for p in on_ray]).equals(pa.concat_arrays([p[key] for p in hashes]))
    assert np.array_equal(
        np.concatenate([p["sig"] for p in on_ray]), np.concatenate([p["sig"] for p in hashes])
    )

    ray_dedup = dedup_version(ws, v, threshold=0.7, into="t_ray")  # the user's path, on Ray
    assert ray_dedup.report == local_dedup.report
    assert local_dedup.report["exact_removed"] == 1 and local_dedup.report["near_removed"] >= 1
    kept = [t["id"].to_pylist() for t in iter_tables(ws, ray_dedup)]
    assert kept == [t["id"].to_pylist() for t in iter_tables(ws, local_dedup)]

    info = service.embed(ws, v.ref)
    assert (info.executor, info.pieces, info.nodes, info.rows) == ("ray", 2, 2, 120)
    ray_ids, ray_vectors = vectors.load_vectors(ws, ref)
    assert ray_ids == ids and ray_vectors.shape == (120, 384)
    np.testing.assert_allclose(ray_vectors, local_vectors, atol=1e-5)
    assert service.embed(ws, v.ref).executor == "cached"  # versions are immutable: computed once
    # the exact duplicate has the same vector; the Chinese row is far from the English ones
    assert np.allclose(ray_vectors[10], ray_vectors[3], atol=1e-6)
    assert float(ray_vectors[30] @ ray_vectors[3]) < float(ray_vectors[20] @ ray_vectors[3])

    # The personal-data scan (imts.optimise registers it the same way): the same rows on Ray as here.
    rows = [{"text": f"Order {i}: 3 pens, total {12 + i}.50 yuan, ticket 2024{i:04d}."} for i in range(40)]
    rows[5] = {"text": "请联系王小明，电话 13812345678，周五前回复。"}
    rows[17] = {"text": "Send the invoice to lena.berg@example.org before Friday."}
    rows[33] = {"text": "身份证号 11010519491231002X 已登记。"}
    p = import_file(ws, write_jsonl(tmp_path / "p.jsonl", rows), name="p")
    on_ray_scan = scan_version(ws, p.ref)
    _local_pool(ws)
    here = scan_version(ws, p.ref)
    assert (on_ray_scan.executor, here.executor) == ("ray", "local")
    assert on_ray_scan.row_ids == here.row_ids and on_ray_scan.by_kind == here.by_kind
    ids = [r["id"] for r in load_rows(ws, p)]
    assert here.row_ids == [ids[5], ids[17], ids[33]]  # prices, order and ticket numbers are not personal
    assert {"PHONE_NUMBER", "EMAIL_ADDRESS", "CN_RESIDENT_ID"} <= set(here.by_kind)
