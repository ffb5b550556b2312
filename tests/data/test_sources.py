"""Ingest from every file type, the other dataset formats, SQL databases and S3 (a local moto server)."""

from __future__ import annotations

import csv
import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imts.core.errors import ConflictError, InputError
from imts.core.net import free_port
from imts.data.formats import FieldMap
from imts.data.ingest import import_file, import_query
from imts.data.versions import load_rows
from imts.store.workspace import Workspace

ROWS = [
    {"id": "a", "question": "What is 2+3?", "solution": "5", "category": "addition"},
    {"id": "b", "question": "What is 7-4?", "solution": "3", "category": "subtraction"},
]


def _expect_sft(ws: Workspace, path: Path | str, **kw: object) -> None:
    v = import_file(ws, path, name="d", **kw)  # type: ignore[arg-type]
    rows = load_rows(ws, v)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["messages"] == [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "5"},
    ]
    assert (
        v.format == "sft" and v.report["mapping"] == "prompt_response: prompt<-question, response<-solution"
    )


def test_json_array_csv_parquet_import_the_same_rows(ws: Workspace, tmp_path: Path) -> None:
    js = tmp_path / "d.json"
    js.write_text("[\n" + ",\n".join(json.dumps(r) for r in ROWS) + "\n]\n")
    _expect_sft(ws, js)
    cs = tmp_path / "d.csv"
    with cs.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        w.writeheader()
        w.writerows(ROWS)
    _expect_sft(ws, cs)
    pqf = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), pqf)
    _expect_sft(ws, pqf)


def test_json_array_errors_are_located(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[\n{"prompt": "a", "response": "b"},\n{"prompt": "c"}\n]\n')
    with pytest.raises(InputError, match=r"bad\.json:3, field 'response': missing required field"):
        import_file(ws, bad)
    cut = tmp_path / "cut.json"
    cut.write_text('[{"prompt": "a", "response": "b"}, {"prompt": ')
    with pytest.raises(InputError, match=r"malformed JSON|not closed"):
        import_file(ws, cut)
    ragged = tmp_path / "r.csv"
    ragged.write_text("prompt,response\na,b\nc,d,e\n")
    with pytest.raises(InputError, match=r"r\.csv:3: 3 columns, the header has 2"):
        import_file(ws, ragged)


def test_text_lines_and_paragraphs(ws: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("first line\nsecond line\n\nthird, after a blank\n")
    v = import_file(ws, f, name="lines")
    assert v.format == "text" and v.num_rows == 3
    assert [r["text"] for r in load_rows(ws, v)] == ["first line", "second line", "third, after a blank"]
    p = import_file(ws, f, name="paras", text_unit="paragraph")
    assert [r["text"] for r in load_rows(ws, p)] == ["first line\nsecond line", "third, after a blank"]


def test_preference_and_classification_formats(ws: Workspace, tmp_path: Path) -> None:
    pref = tmp_path / "pref.jsonl"
    pref.write_text(
        json.dumps({"prompt": "2+2?", "chosen": "4", "rejected": "5"})
        + "\n"
        + json.dumps({"prompt": "3+3?", "chosen": "6", "rejected": "6"})
        + "\n"
    )
    with pytest.raises(
        InputError, match=r"pref\.jsonl:2, field 'rejected': chosen and rejected are identical"
    ):
        import_file(ws, pref)
    v = import_file(ws, pref, on_error="skip")
    assert v.format == "preference" and v.num_rows == 1 and v.report["skipped"] == 1
    assert load_rows(ws, v)[0]["chosen"] == "4"
    assert v.stats["chosen_chars"]["max"] == 1
    from imts.evals.service import EvalSettings, evaluate

    with pytest.raises(InputError, match="holds preference rows; the sft task reads sft rows"):
        evaluate(ws, "any-model", "pref:all", EvalSettings(task="sft"))
    cls = tmp_path / "cls.jsonl"
    cls.write_text(
        json.dumps({"sentence": "great film", "sentiment": "pos"})
        + "\n"
        + json.dumps({"sentence": "dull", "sentiment": "neg"})
        + "\n"
    )
    guessed = import_file(ws, cls, name="guessed")  # 'sentiment' is no known label field: plain text
    assert guessed.format == "text" and json.loads(load_rows(ws, guessed)[0]["meta"]) == {"sentiment": "pos"}
    c = import_file(ws, cls, mapping=FieldMap.parse("format=classification,text=sentence,label=sentiment"))
    assert c.format == "classification" and c.stats["label"] == {"pos": 1, "neg": 1}
    assert c.report["mapping"] == "classification: text<-sentence, label<-sentiment"
    # A dataset keeps its format: classification rows cannot become a version of the preference set.
    with pytest.raises(ConflictError, match="holds preference rows"):
        import_file(
            ws,
            cls,
            name="pref",
            mapping=FieldMap.parse("format=classification,text=sentence,label=sentiment"),
        )


def test_sql_query_sqlite_and_postgres(ws: Workspace, tmp_path: Path, postgres_url: str) -> None:
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as c:
        c.execute("create table qa (id text, prompt text, response text, topic text)")
        c.executemany(
            "insert into qa values (?, ?, ?, ?)",
            [(f"q{i}", f"question {i}", f"answer {i}", "t") for i in range(30)],
        )
    v = import_query(ws, f"sqlite:///{db}", "select * from qa where id != 'q3'", name="fromsql")
    rows = load_rows(ws, v)
    assert v.num_rows == 29 and rows[0]["id"] == "q0" and json.loads(rows[0]["meta"]) == {"topic": "t"}
    with pytest.raises(InputError, match="the query failed"):
        import_query(ws, f"sqlite:///{db}", "select * from nope", name="x")
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as c:
        c.execute(text("create table if not exists src_pairs (prompt text, response text)"))
        c.execute(text("insert into src_pairs values ('2+2', '4'), ('3+3', '6')"))
    engine.dispose()
    pg = import_query(
        ws, postgres_url, "select prompt, response from src_pairs order by prompt", name="frompg"
    )
    assert [r["messages"][1]["content"] for r in load_rows(ws, pg)] == ["4", "6"]


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> object:
    """A real S3-compatible HTTP server (moto) on loopback, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_import_from_s3(ws: Workspace, s3_server: str) -> None:
    import s3fs

    opts = {"endpoint_url": s3_server, "key": "test", "secret": "test"}
    fs = s3fs.S3FileSystem(**opts)
    fs.mkdir("bucket")
    with fs.open("bucket/dir/rows.jsonl", "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    _expect_sft(ws, "s3://bucket/dir/rows.jsonl", storage_options=opts)
    v = import_file(ws, "s3://bucket/dir/rows.jsonl", storage_options=opts)
    assert v.dataset == "rows" and v.params["file"] == "s3://bucket/dir/rows.jsonl"
    with pytest.raises(InputError, match="no such file"):
        import_file(ws, "s3://bucket/missing.jsonl", storage_options=opts)


def test_id_index_finds_duplicates_across_chunks(
    monkeypatch: pytest.MonkeyPatch, ws: Workspace, tmp_path: Path
) -> None:
    import imts.data.ingest as ingest

    idx = ingest.IdIndex(tmp_path)
    idx.add({f"id{n}": n + 1 for n in range(1000)})
    assert idx.lookup(["id7", "nope", "id999"]) == {"id7": 8, "id999": 1000}
    idx.close()
    monkeypatch.setattr(ingest, "CHUNK", 64)  # the duplicate is many chunks after its first line
    rows = [{"id": f"k{i}", "prompt": f"p{i}", "response": "r"} for i in range(300)] + [
        {"id": "k7", "prompt": "again", "response": "r"}
    ]
    f = tmp_path / "dup.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        InputError, match=r"dup\.jsonl:301, field 'id': duplicate id 'k7' \(first on line 8\)"
    ):
        import_file(ws, f)
    v = import_file(ws, f, name="skip", on_error="skip")
    assert v.num_rows == 300 and v.report["errors"][0]["line"] == 301
    # Rows without ids and with the same content, in different chunks: both kept, distinct ids.
    same = tmp_path / "same.jsonl"
    same.write_text(
        "".join(json.dumps({"prompt": f"p{i % 100}", "response": "r"}) + "\n" for i in range(200))
    )
    ids = [r["id"] for r in load_rows(ws, import_file(ws, same, name="same"))]
    assert len(set(ids)) == 200 and ids[150] == f"{ids[50]}-151"
