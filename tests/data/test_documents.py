"""Documents import as text datasets: PDF pages, Markdown and HTML sections, each chunk with its source
and position (in ``meta``); a broken PDF is an error naming the file, and nothing is committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imts.core.errors import InputError
from imts.data import service
from imts.data.documents import parts
from imts.data.versions import load_rows
from imts.store.context import Context


def _pdf(path: Path, pages: list[str]) -> Path:
    """A real PDF whose pages show ``pages`` in Helvetica (pypdf writes it; pypdf reads it back)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    })  # fmt: skip
    for text in pages:
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 14 Tf 72 700 Td ({text}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})
        })  # fmt: skip
    with path.open("wb") as f:
        writer.write(f)
    return path


def _meta(row: dict) -> dict:
    return json.loads(row["meta"])


def test_pdf_markdown_html_become_chunks_with_positions(ws: Context, tmp_path: Path) -> None:
    v = service.import_file(
        ws, _pdf(tmp_path / "guide.pdf", ["Refunds take five days.", "Call us any time."])
    )
    rows = load_rows(ws, v)
    assert v.format == "text" and [r["text"] for r in rows] == [
        "Refunds take five days.",
        "Call us any time.",
    ]
    assert [(_meta(r)["source"], _meta(r)["page"]) for r in rows] == [("guide.pdf", 1), ("guide.pdf", 2)]

    md = tmp_path / "handbook.md"
    md.write_text(
        "intro line\n\n# 安装\n\n先安装依赖。\n\n```\n# not a heading\n```\n\n## 配置\n\n编辑配置文件。\n",
        "utf-8",
    )
    rows = load_rows(ws, service.import_file(ws, md))
    assert [_meta(r)["section"] for r in rows] == ["", "安装", "安装 > 配置"]
    assert "# not a heading" in rows[1]["text"] and rows[2]["text"].startswith("## 配置")

    page = tmp_path / "faq.html"
    page.write_text(
        "<html><head><script>var x = 1;</script></head><body><nav>menu</nav>"
        "<h1>Shipping</h1><p>We ship worldwide.</p><ul><li>Europe: 3 days</li></ul>"
        "<h2>Returns</h2><p>Within 30 days.</p></body></html>",
        "utf-8",
    )
    rows = load_rows(ws, service.import_file(ws, page))
    assert [r["text"] for r in rows] == [
        "Shipping\nWe ship worldwide.\nEurope: 3 days",
        "Returns\nWithin 30 days.",
    ]
    assert [_meta(r)["section"] for r in rows] == ["Shipping", "Returns"]


def test_long_sections_are_cut_and_broken_pdfs_refused(ws: Context, tmp_path: Path) -> None:
    text = "\n\n".join(f"paragraph {i} " + "word " * 60 for i in range(40))
    pieces = parts(text, 1000)
    assert (
        len(pieces) > 1 and all(len(p) <= 1000 for p in pieces) and "".join(pieces).count("paragraph") == 40
    )
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(InputError, match=r"broken\.pdf"):
        service.import_file(ws, bad)
    assert service.list_versions(ws) == []
