"""Import: formats detected and validated, bad input located by file/line/field, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.conftest import write_jsonl

from imts.core.errors import InputError, NotFoundError
from imts.data.formats import FieldMap
from imts.data.ingest import import_file
from imts.data.versions import load_rows, resolve
from imts.store.models import Dataset, DatasetVersion
from imts.store.workspace import Workspace


def _nothing_recorded(ws: Workspace) -> None:
    with ws.session() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 0
        assert s.scalar(select(func.count()).select_from(DatasetVersion)) == 0
    shards = ws.artifacts.path("datasets/shards")
    assert not shards.exists() or not any(p.is_file() for p in shards.rglob("*"))
    assert not any(ws.artifacts.path(".staging").iterdir())


def test_prompt_response_import_roundtrip(ws: Workspace, tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "pr.jsonl",
        [
            {
                "id": "a",
                "prompt": "1+1?",
                "response": "1 + 1 = 2. The answer is 2.",
                "answer": "2",
                "category": "add",
            },
            {
                "id": "b",
                "prompt": "小明有3个苹果，又买了4个，一共几个？",
                "response": "3 + 4 = 7。答案是7。",
                "extra": 5,
            },
        ],
    )
    v = import_file(ws, f, name="pr")
    assert (v.dataset, v.number, v.num_rows, v.operation) == ("pr", 1, 2, "import")
    assert v.report["mapping"].startswith("prompt_response: prompt<-prompt, response<-response")
    rows = load_rows(ws, resolve(ws, "pr"))
    assert rows[0]["messages"] == [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "1 + 1 = 2. The answer is 2."},
    ]
    assert rows[0]["answer"] == "2" and rows[0]["category"] == "add" and rows[0]["lang"] == "en"
    assert rows[1]["lang"] == "zh" and rows[1]["meta"] == '{"extra": 5}'
    assert v.stats["category"] == {"add": 1, "(none)": 1}


def test_chat_and_sharegpt_and_alpaca(ws: Workspace, tmp_path: Path) -> None:
    chat = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                ]
            }
        ],
    )
    sharegpt = write_jsonl(
        tmp_path / "sg.jsonl",
        [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}],
    )
    alpaca = write_jsonl(
        tmp_path / "alpaca.jsonl", [{"instruction": "Add", "input": "2 and 3", "output": "5"}]
    )
    assert load_rows(ws, import_file(ws, chat))[0]["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }
    assert load_rows(ws, import_file(ws, sharegpt))[0]["messages"][1] == {
        "role": "assistant",
        "content": "yo",
    }
    row = load_rows(ws, import_file(ws, alpaca))[0]
    assert row["messages"][0]["content"] == "Add\n\n2 and 3" and row["messages"][1]["content"] == "5"


def test_explicit_mapping(ws: Workspace, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "m.jsonl", [{"q": "2*3?", "sol": "6", "final": 6}])
    v = import_file(ws, f, mapping=FieldMap.parse("prompt=q,response=sol,answer=final"))
    assert load_rows(ws, v)[0]["answer"] == "6"
    with pytest.raises(InputError, match="bad field mapping 'colour=red'"):
        FieldMap.parse("colour=red")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": \n', r"bad\.jsonl:2: malformed JSON"),
        (
            '{"prompt": "a", "response": "b"}\n\n{"prompt": "c"}\n',
            r"bad\.jsonl:3, field 'response': missing required field",
        ),
        ('{"prompt": "a", "response": "b"}\n[1, 2]\n', r"bad\.jsonl:2: expected a JSON object, got list"),
        ('{"prompt": "a", "response": "  "}\n', r"bad\.jsonl:1, field 'response': empty text"),
        ('{"foo": "hello"}\n', r"bad\.jsonl:1: cannot tell the format"),
        (
            '{"messages": [{"role": "user", "content": "hi"}]}\n',
            r"bad\.jsonl:1, field 'messages': the last message must be",
        ),
        (
            '{"id": 1, "prompt": "a", "response": "b"}\n{"id": 1, "prompt": "c", "response": "d"}\n',
            r"bad\.jsonl:2, field 'id': duplicate id '1' \(first on line 1\)",
        ),
    ],
)
def test_bad_lines_fail_with_location_and_leave_nothing(
    ws: Workspace, tmp_path: Path, lines: str, expected: str
) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(lines, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        import_file(ws, f)
    _nothing_recorded(ws)


def test_empty_and_missing_files(ws: Workspace, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match=r"empty\.jsonl: the file is empty"):
        import_file(ws, empty)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    with pytest.raises(InputError, match="holds no rows"):
        import_file(ws, blank)
    with pytest.raises(InputError, match="no such file"):
        import_file(ws, tmp_path / "nope.jsonl")
    _nothing_recorded(ws)


def test_skip_policy_reports_bad_lines(ws: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "mixed.jsonl"
    f.write_text(
        '{"prompt": "a", "response": "b"}\nnot json\n{"prompt": "c"}\n{"prompt": "d", "response": "e"}\n'
    )
    v = import_file(ws, f, on_error="skip")
    assert v.num_rows == 2
    assert v.report["skipped"] == 2
    assert [(e["line"], e["field"]) for e in v.report["errors"]] == [(2, None), (3, "response")]


def test_versions_are_content_addressed_and_shared(ws: Workspace, math_file: Path) -> None:
    v1 = import_file(ws, math_file, name="m")
    again = import_file(ws, math_file, name="m")  # the same rows again: no second, identical version
    assert again.unchanged and again.id == v1.id and not v1.unchanged
    v2 = import_file(ws, math_file, name="m2")
    assert v2.number == 1 and v1.content_hash == v2.content_hash and v1.shards == v2.shards
    assert len(list(ws.artifacts.path("datasets/shards").rglob("*.parquet"))) == 1  # stored once
    assert resolve(ws, "m").version.number == 1 and resolve(ws, "m@1").version.id == v1.id
    with pytest.raises(NotFoundError, match="no dataset named 'zzz'"):
        resolve(ws, "zzz")
    with pytest.raises(NotFoundError, match="has no split 'test'"):
        resolve(ws, "m@1:test")
