"""Decoding tools (the calculator) in evaluation, reports and serving, on a model built to write one line.

The "arithmetic model" is the tiny model's tokenizer over a Llama whose attention and MLP outputs are
zero, so each next token depends on the last one only (a bigram table in the output layer). It always
answers ``17 * 3 = 41`` (wrong), and after a calculator-filled `` 51`` it stops: plain decoding and
decoding with the calculator give different, known answers through the real generation paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from tests.conftest import make_ws, write_jsonl
from tests.serve.factory import serving

from imts.core.errors import InputError
from imts.data.ingest import import_file
from imts.evals import compare
from imts.evals.service import EvalSettings, evaluate, load_result
from imts.evals.suite import SuiteSpec
from imts.inference.tools import RowTools, check, compute
from imts.registry import base_models
from imts.serve.app import create_app
from imts.serve.router import LocalAccess

LINE, WRONG, RIGHT = "17 * 3 =", " 41", " 51"
QUESTION = [{"role": "user", "content": "What is 17 times 3?"}]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("so 17 * 3 =", "51"),
        ("Step 2: 12 × 4 =", "48"),
        ("所以总价是 120 ÷ 8 =", "15"),
        ("全部：（3＋4）× 2 ＝", "14"),
        ("Total: 1,200 + 35 =", "1235"),
        ("(7 - 2) * 3 - 20 =", "-5"),
        ("10 / 4 =", "2.5"),
        ("2 / 3 =", "0.67"),
        ("3.5 * 2 =", "7"),
    ],
)
def test_the_calculator_computes_the_expression_a_text_ends_with(text: str, value: str) -> None:
    assert compute(text) == value


@pytest.mark.parametrize(
    "text",
    ["x = 5 =", "The answer is 12 =", "5 / 0 =", "1 + 2 = 3", "no numbers =", "2 ** 3 =", "1, 2 + 3 ="],
)
def test_the_calculator_leaves_what_is_no_arithmetic_to_the_model(text: str) -> None:
    assert compute(text) is None


def test_unknown_tools_are_refused_by_name() -> None:
    assert check(["calculator", "calculator"]) == ["calculator"]
    known = r"unknown decoding tool\(s\) \['abacus'\]; choose from \['calculator'\]"
    with pytest.raises(ValueError, match=known):
        check(["abacus"])
    with pytest.raises(InputError) as err:
        SuiteSpec.parse({"datasets": ["x"], "tools": ["abacus"]}, "suite.yaml")
    assert err.value.field == "tools.0" or err.value.field == "tools"


@pytest.fixture(scope="module")
def arithmetic_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tokenizer over a bigram Llama that answers ``17 * 3 = 41`` and stops after `` 51``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from imts.inference.generate import render_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model)
    chain = [render_prompt(tok, QUESTION)[-1], *tok.encode(LINE + WRONG, add_special_tokens=False)]
    right = tok.encode(RIGHT, add_special_tokens=False)
    pairs = [*pairwise(chain), (chain[-1], tok.eos_token_id), (right[-1], tok.eos_token_id)]
    pairs += list(pairwise(right))
    assert len({a for a, _ in pairs}) == len(pairs), f"the line's tokens repeat: {pairs}"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:  # the residual stream stays the current token's embedding
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        head = torch.zeros_like(model.lm_head.weight)
        for a, b in pairs:
            head[b] += 20 * emb[a] / emb[a].norm()
        model.lm_head.weight.copy_(head)
    out = tmp_path_factory.mktemp("arithmetic-model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_generation_fills_in_the_value_only_with_the_calculator(arithmetic_model: Path) -> None:
    from imts.inference.generate import generate, load

    tok, model = load(arithmetic_model)
    prompts = [QUESTION, [{"role": "system", "content": "Be brief."}, *QUESTION]]
    plain, figures = generate(tok, model, prompts, max_new_tokens=16)
    assert plain == [LINE + WRONG] * 2 and "tool_calls" not in figures
    tooled, figures = generate(tok, model, prompts, max_new_tokens=16, tools=["calculator"])
    assert tooled == [LINE + RIGHT] * 2 and figures["tool_calls"] == 2
    # One row's tools on their own: nothing forced until a token ends the expression with "=".
    row = RowTools(tok, ["calculator"])
    line = tok.encode(LINE, add_special_tokens=False)
    assert all(row.forced(line[:n]) is None for n in range(len(line)))
    forced = [row.forced(line)] + [row.forced(line) for _ in tok.encode(RIGHT, add_special_tokens=False)[1:]]
    assert tok.decode(forced) == RIGHT and row.calls == 1 and row.forced(line + forced) is None


def test_evaluations_record_their_tools_and_reports_compare_only_alike(
    arithmetic_model: Path, tmp_path: Path
) -> None:
    # SQLite only: the tools touch no SQL, and test_suite_cache counts the PostgreSQL database's cache rows
    ws = make_ws(tmp_path)
    base_models.add(ws, arithmetic_model, name="arith")
    rows = [
        {"id": f"q{i}", "messages": [*QUESTION, {"role": "assistant", "content": "17 * 3 = 51"}],
         "answer": "51", "category": "multiplication", "lang": "en"}
        for i in range(3)
    ]  # fmt: skip
    version = import_file(ws, write_jsonl(tmp_path / "q.jsonl", rows), name="times")
    data, calc = f"{version.ref}:all", EvalSettings(max_new_tokens=16, tools=("calculator",))
    plain = evaluate(ws, "arith", data, EvalSettings(max_new_tokens=16))
    tooled, again = evaluate(ws, "arith", data, calc), evaluate(ws, "arith", data, calc)
    from imts.store import runs

    p, t, a = (runs.get(ws, r) for r in (plain, tooled, again))
    assert p.summary["accuracy"] == 0.0 and p.summary["tools"] == [] and p.spec["tools"] == []
    assert t.summary["accuracy"] == 1.0 and t.summary["tools"] == ["calculator"]
    assert t.summary["gen_tool_calls"] == 3 and t.summary["cache_hits"] == 0  # not the plain texts
    assert a.summary["cache_hits"] == 3 and a.summary["accuracy"] == 1.0  # its own cached texts
    assert [i.prediction for i in load_result(ws, tooled).items] == [LINE + RIGHT] * 3

    differ = r"\(decoding tools: none\) and .* \(calculator\) decoded differently"
    with pytest.raises(InputError, match=differ):
        compare.build_models(ws, [plain, tooled], cluster=False)
    report = compare.build_models(ws, [tooled, again], cluster=False)
    assert report.facts["decoding tools"] == "calculator"


@pytest.fixture(scope="module")
def server(arithmetic_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    access = LocalAccess(make_ws(tmp_path_factory.mktemp("serve")), None)
    with serving(create_app(access, {"arith": (arithmetic_model, None)}, tools=("calculator",))) as url:
        yield f"{url}/v1"


def _chat(server: str, **more: object) -> httpx.Response:
    body = {"model": "arith", "messages": QUESTION, "max_tokens": 16, **more}
    return httpx.post(f"{server}/chat/completions", json=body, timeout=60)


def test_served_models_decode_with_the_servers_tools_unless_a_request_names_its_own(server: str) -> None:
    assert _chat(server).json()["choices"][0]["message"]["content"] == LINE + RIGHT
    assert _chat(server, decoding_tools=[]).json()["choices"][0]["message"]["content"] == LINE + WRONG
    with httpx.stream(
        "POST", f"{server}/chat/completions", timeout=60,
        json={"model": "arith", "messages": QUESTION, "max_tokens": 16, "stream": True},
    ) as resp:  # fmt: skip
        import json

        pieces = [
            json.loads(line[6:])["choices"][0]["delta"].get("content", "")
            for line in resp.iter_lines()
            if line.startswith("data: {")
        ]
    assert "".join(pieces).strip() == LINE + RIGHT
    bad = _chat(server, decoding_tools=["abacus"])
    assert bad.status_code == 400 and "abacus" in bad.json()["error"]["message"]


def test_greedy_decoding_drops_ended_rows_and_writes_what_generate_writes(tiny_model: Path) -> None:
    """The evaluation's greedy loop against transformers' ``generate`` on a left-padded batch whose rows
    end at different steps (an EOS chosen among the tokens the random model writes early)."""
    import torch

    from imts.inference.generate import greedy, load, render_prompt

    tok, model = load(tiny_model)
    torch.manual_seed(3)
    with torch.no_grad():  # the random tiny model repeats one token; noise makes its rows differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    prompts = [[{"role": "user", "content": "What is " + "7 plus 5 and " * k + "3?"}] for k in range(6)]
    encoded = [render_prompt(tok, p) for p in prompts]
    width = max(map(len, encoded))
    ids = torch.full((len(encoded), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for r, e in enumerate(encoded):
        ids[r, width - len(e) :], mask[r, width - len(e) :] = torch.tensor(e), 1

    def hf(eos: int) -> list[list[int]]:
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=eos)  # fmt: skip
        rows = [out[r, width:].tolist() for r in range(len(encoded))]
        return [row[: row.index(eos) + 1] if eos in row else row for row in rows]

    free = hf(tok.eos_token_id)
    eos = free[0][2]  # row 0 ends at its 3rd token, the others where (if) they write it
    expected = hf(eos)
    with torch.inference_mode():
        got = greedy(model, ids, mask, 12, eos)
    assert got == expected
    assert len({len(row) for row in got}) > 2, "the rows should end at different steps"


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--model", "smollm2-135m-instruct", "--data", "math", "--tools", "calculator,abacus"],
        ["serve", "--model", "smollm2-135m-instruct", "--tools", "abacus"],
        ["demo", "--tools", "abacus"],
        ["loop", "start", "--intent", "maths", "--data", "math", "--tools", "abacus", "--detach"],
    ],
)
def test_commands_refuse_unknown_tools_in_one_line(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from imts.cli.main import app
    from imts.core.settings import get_settings

    monkeypatch.setenv("IMTS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("IMTS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, argv)
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 2 and "Traceback" not in out.output  # 2: bad input
    assert "unknown decoding tool(s) ['abacus']" in " ".join(out.output.split()), out.output
