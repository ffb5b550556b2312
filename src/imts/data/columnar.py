"""Column-wise import of prompt/response rows: parse and validate whole Arrow columns, not Python dicts.

The fast path of ``ingest.import_file`` for JSONL and Parquet files whose rows are prompt/response
(Alpaca-style) SFT rows. JSONL is cut into blocks of ``BLOCK_BYTES`` that end at a line break and parsed
by ``pyarrow.json``; Parquet is read in batches. Each block is validated and mapped onto the canonical
SFT schema with ``pyarrow.compute`` (the same rules as ``formats.to_canonical``, row for row: required
texts present and not blank, Alpaca's ``input`` appended to the instruction, ``lang`` detected where the
row has none, the other fields as sorted ``meta`` JSON). Memory is one block at a time.

Anything this path does not handle exactly as the row path would (a bad row, a type other than text or
integers, nested extra fields, a system field, control characters that JSON escapes as ``\\uXXXX``)
raises ``Unsupported``; the caller then discards what was staged and imports the file row by row, which
locates the bad line or maps the unusual row. The result of both paths is identical.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from imts.data.formats import SCHEMA, FieldMap
from imts.data.readers import BOM, READ_ERRORS

BLOCK_BYTES = 8 << 20  # bytes of JSONL parsed at once (about 40,000 rows of 200 bytes)
BATCH_ROWS = 50_000  # Parquet rows read at once
CJK = r"[\x{3400}-\x{9fff}\x{f900}-\x{faff}]"  # core.text.CJK in RE2 syntax
_MESSAGES = SCHEMA.field("messages").type
_ROLES = pa.array(["user", "assistant"])
# JSON escapes of the control characters that have a short form; any other one sends the block to the
# row path (JSON writes it as \uXXXX).
_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]
_OTHER_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
# What Python's ``str.strip()`` strips (a "blank" text is refused); wider than Unicode's White_Space.
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
# A blank text, in RE2: one pass that stops at the first other character, no copy of the strings.
BLANK = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]*$"
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


class Unsupported(Exception):
    """This block cannot be mapped column-wise exactly as the row path would; use the row path."""


def jsonl_blocks(f: IO[bytes]) -> Iterator[pa.Table]:
    """Tables of ``BLOCK_BYTES`` of JSON Lines each; a block that does not parse raises ``Unsupported``."""
    first = True
    while True:
        try:
            block = f.read(BLOCK_BYTES)
            if block and not block.endswith(b"\n"):
                block += f.readline()
        except READ_ERRORS as exc:  # a broken compressed stream: the row path says after which line
            raise Unsupported(str(exc)) from None
        if not block:
            return
        if first and block.startswith(BOM):
            block = block[len(BOM) :]
        first = False
        if block.isspace():
            continue
        try:
            block.decode("utf-8")  # pyarrow.json does not check UTF-8; the row path says where it breaks
        except UnicodeDecodeError:
            raise Unsupported("not UTF-8") from None
        try:
            table = pj.read_json(
                io.BytesIO(block),
                read_options=pj.ReadOptions(use_threads=True, block_size=len(block) + 1),
            )
        except (pa.ArrowException, ValueError) as exc:
            raise Unsupported(str(exc)) from None
        yield table


def parquet_blocks(f: IO[bytes]) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS):
            batch.validate(full=True)  # e.g. strings that are not UTF-8
            yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Unsupported(str(exc)) from None


def first_row(table: pa.Table) -> dict[str, Any]:
    """The first row's fields as the row path sees them (a JSON block gives every row every key)."""
    return {k: v for k, v in table.slice(0, 1).to_pylist()[0].items() if v is not None}


def supports(fmap: FieldMap) -> bool:
    return fmap.format == "prompt_response" and not fmap.system


def to_canonical(table: pa.Table, fmap: FieldMap) -> pa.Table:
    """``table``'s rows as canonical SFT rows (``formats.SCHEMA`` without ``id``); ``Unsupported`` when a
    row is bad or unusual."""
    cols = {name: table.column(name) for name in table.column_names}
    prompt = _required_text(cols, fmap.prompt)
    response = _required_text(cols, fmap.response)
    if fmap.context and fmap.context in cols:
        context = _optional_text(cols[fmap.context])
        if context is not None:
            given = pc.and_(pc.is_valid(context), pc.greater(pc.utf8_length(context), 0))
            given = pc.fill_null(given, False)
            if pc.any(pc.and_(given, pc.match_substring_regex(context, BLANK))).as_py():
                raise Unsupported("a blank context")
            joined = pc.binary_join_element_wise(prompt, context, "\n\n")
            prompt = pc.if_else(given, joined, prompt)
    n = table.num_rows
    contents = pa.concat_arrays([_array(prompt), _array(response)])
    order = np.empty(2 * n, dtype=np.int64)
    order[0::2] = np.arange(n)
    order[1::2] = np.arange(n) + n
    # "user", "assistant", "user", ...: built as one buffer, not 2n Python strings
    offsets = np.empty(2 * n + 1, dtype=np.int32)
    offsets[0::2] = 13 * np.arange(n + 1, dtype=np.int32)
    offsets[1::2] = 13 * np.arange(n, dtype=np.int32) + 4
    roles = pa.StringArray.from_buffers(2 * n, pa.py_buffer(offsets), pa.py_buffer(b"userassistant" * n))
    structs = pa.StructArray.from_arrays(
        [roles, contents.take(pa.array(order))], fields=list(_MESSAGES.value_type)
    )
    messages = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), structs)
    messages = messages.cast(_MESSAGES)
    used = {fmap.id, fmap.category, fmap.lang, fmap.prompt, fmap.response, fmap.context, fmap.answer}
    lang = _lang(cols.get(fmap.lang), prompt, response)
    out = pa.table(
        {
            "messages": messages,
            "category": _optional_text(cols.get(fmap.category), n),
            "lang": lang,
            "answer": _optional_text(cols.get(fmap.answer) if fmap.answer else None, n),
            "meta": _meta({k: v for k, v in cols.items() if k not in used}, n),
        }
    )
    return out.cast(pa.schema([f for f in SCHEMA if f.name != "id"]))


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _as_text(values: pa.ChunkedArray, key: str) -> pa.ChunkedArray:
    """Text columns as they are, integer columns as their decimal text (as ``str(int)``)."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values.cast(pa.string())
    if pa.types.is_integer(t):
        return values.cast(pa.string())
    raise Unsupported(f"field {key} is {t}")


def _required_text(cols: dict[str, pa.ChunkedArray], key: str) -> pa.ChunkedArray:
    if key not in cols:
        raise Unsupported(f"no field {key}")
    values = _as_text(cols[key], key)
    if values.null_count or pc.any(pc.match_substring_regex(values, BLANK)).as_py():
        raise Unsupported(f"a missing or blank {key}")
    return values


def _optional_text(values: pa.ChunkedArray | None, n: int = 0) -> pa.ChunkedArray | pa.Array | None:
    """A text column, or ``n`` nulls where the field is absent or always null."""
    if values is None or pa.types.is_null(values.type):
        return pa.nulls(n, pa.string()) if n else None
    return _as_text(values, "?")


def _lang(given: pa.ChunkedArray | None, prompt: pa.ChunkedArray, response: pa.ChunkedArray) -> pa.Array:
    """``core.text.detect_lang`` of prompt and response, column-wise; a row's own non-empty lang wins."""
    n = len(prompt)
    detected: pa.Array = pa.repeat(pa.scalar("en"), n)
    ascii_only = pc.all(pc.string_is_ascii(prompt)).as_py() and pc.all(pc.string_is_ascii(response)).as_py()
    if not ascii_only and (
        pc.any(pc.match_substring_regex(prompt, CJK)).as_py()
        or pc.any(pc.match_substring_regex(response, CJK)).as_py()
    ):
        cjk = pc.add(pc.count_substring_regex(prompt, CJK), pc.count_substring_regex(response, CJK))
        chars = pc.subtract(
            pc.add(pc.utf8_length(prompt), pc.utf8_length(response)),
            pc.add(pc.count_substring(prompt, " "), pc.count_substring(response, " ")),
        )
        zh = pc.greater(pc.cast(cjk, pa.float64()), pc.multiply(pc.max_element_wise(chars, 1), 0.2))
        detected = _array(pc.if_else(zh, "zh", "en"))
    own = _optional_text(given)
    if own is None:
        return detected
    has = pc.fill_null(pc.greater(pc.utf8_length(own), 0), False)
    return _array(pc.if_else(has, own, detected))


def _json_string(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON string literals of a text column (``json.dumps(..., ensure_ascii=False)``)."""
    if not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():  # most columns: one pass
        return pc.binary_join_element_wise('"', values, '"', "")
    if pc.any(pc.match_substring_regex(values, _OTHER_CONTROL)).as_py():
        raise Unsupported("control characters")
    for plain, escaped in _ESCAPES:
        values = pc.replace_substring(values, plain, escaped)
    return pc.binary_join_element_wise('"', values, '"', "")


def _meta(extra: dict[str, pa.ChunkedArray], n: int) -> pa.Array:
    """The ``meta`` JSON of each row: its other non-null fields, keys sorted (``formats.META_JSON``).

    Each column is encoded on its distinct values (``dictionary_encode``) and spread to the rows with
    one ``take``: extra fields are mostly a source tag or a few labels, so this is nearly free.
    """
    keys = [k for k in sorted(extra) if not pa.types.is_null(extra[k].type)]
    if not keys:
        return pa.nulls(n, pa.string())
    if len(keys) == 1:  # the whole meta text per distinct value
        return _per_distinct(extra[keys[0]], lambda v: _wrap(_piece(keys[0], v)))
    pieces = [pc.fill_null(_per_distinct(extra[k], lambda v, k=k: _piece(k, v)), "") for k in keys]
    return _wrap(pc.binary_join_element_wise(*pieces, ""))


def _piece(key: str, values: pa.Array) -> pa.Array:
    """``, "key": value`` per value (null where the value is null)."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        encoded = _json_string(values.cast(pa.string()))
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        encoded = values.cast(pa.string())
    else:
        raise Unsupported(f"field {key} is {t}")
    # (null_handling="skip" of binary_join_element_wise returns a wrong length for mostly-null inputs
    # in pyarrow 26, hence the explicit prefix and fill_null.)
    return pc.binary_join_element_wise(", " + json.dumps(key, ensure_ascii=False) + ": ", encoded, "")


def _wrap(joined: pa.Array) -> pa.Array:
    """``{...}`` around joined pieces; null where no field had a value."""
    joined = pc.fill_null(joined, "")
    body = pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(joined, 2), "}", "")
    return _array(pc.if_else(pc.greater(pc.utf8_length(joined), 0), body, pa.scalar(None, pa.string())))


def _per_distinct(values: pa.ChunkedArray, fn: Any) -> pa.Array:
    """``fn`` applied to the distinct values of a column, spread back to its rows (nulls stay null)."""
    encoded = pc.dictionary_encode(_array(values))
    return fn(encoded.dictionary).take(encoded.indices)
