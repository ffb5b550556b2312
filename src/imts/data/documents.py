"""Documents as text datasets: PDF pages, HTML and Markdown sections, each a chunk with its source and
position, so a user can start from documents (seed 000 §3.1).

Each reader yields ``(position, record)`` as ``readers.read_records`` does: the position is the PDF page
or the line where a Markdown section starts (HTML: the section's number); the record is
``{"text", "source", "page" | "section", "part"}`` (the extra keys land in the row's ``meta``). A chunk
longer than ``MAX_CHARS`` is cut at paragraph boundaries into parts.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import IO, Any

from imts.core.errors import InputError

MAX_CHARS = 2000
Record = tuple[int, dict[str, Any] | InputError]
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def parts(text: str, limit: int = MAX_CHARS) -> list[str]:
    """``text`` cut at blank lines (then single lines) into pieces of at most ``limit`` characters;
    a single longer line stays whole."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    out: list[str] = []
    current = ""
    pieces = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    for para in pieces:
        lines = [para] if len(para) <= limit else para.splitlines()
        for piece in lines:
            if current and len(current) + len(piece) + 2 > limit:
                out.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        out.append(current)
    return out


def _records(position: int, text: str, source: str, where: dict[str, Any]) -> Iterator[Record]:
    for n, piece in enumerate(parts(text), start=1):
        yield position, {"text": piece, "source": source, **where, "part": n}


def pdf(f: IO[bytes], source: str) -> Iterator[Record]:
    """One chunk per page (parts of long pages), with its 1-based page number."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    data = f.read()
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InputError("the PDF is encrypted: decrypt it first")
        pages = reader.pages
    except PdfReadError as exc:
        raise InputError(f"not a readable PDF: {exc}") from None
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # pypdf raises many kinds on a broken page: that page is the bad record
            yield number, InputError(f"page {number} cannot be read: {exc}")
            continue
        yield from _records(number, text, source, {"page": number})


def html(f: IO[bytes], source: str) -> Iterator[Record]:
    """One chunk per section: a heading (h1-h6) with the text up to the next heading; the text before
    the first heading is section 0. Scripts, styles and navigation are left out."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(f.read(), "html.parser")
    for tag in soup(["script", "style", "nav", "noscript", "template"]):
        tag.decompose()
    root = soup.body or soup
    number, title, buf = 0, "", []  # type: int, str, list[str]
    for el in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "blockquote"]):
        if el.name[0] == "h" and el.name[1:].isdigit():
            if "".join(buf).strip():
                yield from _records(number, "\n".join([title, *buf]).strip(), source, {"section": title})
            number, title, buf = number + 1, el.get_text(" ", strip=True), []
        elif not el.find_parent(["li", "td", "blockquote"]) or el.name == "pre":
            text = el.get_text(" ", strip=True)
            if text:
                buf.append(text)
    if "".join(buf).strip():
        yield from _records(number, "\n".join([title, *buf]).strip(), source, {"section": title})


def markdown(f: IO[bytes], source: str) -> Iterator[Record]:
    """One chunk per section: an ATX heading (``#`` ... ``######``, not inside a fenced code block) with
    the lines up to the next heading; ``section`` is the heading path (``Guide > Install``)."""
    path: list[str] = []
    start, buf, fenced = 1, [], False  # type: int, list[str], bool
    for lineno, raw in enumerate(io.TextIOWrapper(f, encoding="utf-8-sig", newline=""), start=1):
        line = raw.rstrip("\r\n")
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            if "\n".join(buf).strip():
                yield from _records(start, "\n".join(buf), source, {"section": " > ".join(path)})
            level = len(heading.group(1))
            path = [*path[: level - 1], heading.group(2)]
            start, buf = lineno, [line]
        else:
            buf.append(line)
    if "\n".join(buf).strip():
        yield from _records(start, "\n".join(buf), source, {"section": " > ".join(path)})


READERS = {"pdf": pdf, "html": html, "markdown": markdown}


def read(f: IO[bytes], kind: str, source: str) -> Iterator[Record]:
    try:
        yield from READERS[kind](f, source)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}") from None
