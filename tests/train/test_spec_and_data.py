from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from imts.core.errors import InputError
from imts.train.data import IGNORE, batch_order, collate, encode, example_stream
from imts.train.spec import RunSpec


def test_spec_sources_layer(tmp_path: Path) -> None:
    y = tmp_path / "spec.yaml"
    y.write_text("max_steps: 7\nlora:\n  r: 4\nlr: 0.01\n")
    spec = RunSpec.from_sources(y, ["lora.alpha=8", "lr=0.002", "val_split=null"], base_model="b", data="d")
    assert (spec.max_steps, spec.lora.r, spec.lora.alpha, spec.lr, spec.val_split) == (7, 4, 8, 0.002, None)
    assert RunSpec.model_validate_json(spec.model_dump_json()) == spec
    assert "max_steps: 7" in spec.to_yaml()


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="field 'max_steps'"):
        RunSpec.from_sources(overrides=["max_steps=0"], base_model="b", data="d")
    with pytest.raises(InputError, match=r"field 'lora\.rank'"):
        RunSpec.from_sources(overrides=["lora.rank=3"], base_model="b", data="d")
    with pytest.raises(InputError, match="not KEY=VALUE"):
        RunSpec.from_sources(overrides=["oops"], base_model="b", data="d")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(InputError, match=r"bad\.yaml: a run spec must be a YAML mapping"):
        RunSpec.from_sources(bad, base_model="b", data="d")


def test_encode_labels_only_assistant_tokens(tiny_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model)
    messages = [
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5. The answer is 5."},
    ]
    ex = encode(tok, messages, max_len=512)
    prompt_len = len(
        tok.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=True)["input_ids"]
    )
    assert ex.labels[:prompt_len] == [IGNORE] * prompt_len
    learned = [t for t in ex.labels if t != IGNORE]
    assert tok.decode(learned).startswith("2 + 3 = 5. The answer is 5.")
    assert learned[-2] == tok.eos_token_id or learned[-1] == tok.eos_token_id  # learns to stop
    assert len(encode(tok, messages, max_len=10).input_ids) == 10


def test_length_grouped_batches_are_deterministic_and_tight() -> None:
    lengths = [(i * 37) % 200 + 10 for i in range(1024)]
    a = batch_order(lengths, 8, seed=1, epoch=0, grouped=True)
    assert a == batch_order(lengths, 8, seed=1, epoch=0, grouped=True)
    assert a != batch_order(lengths, 8, seed=1, epoch=1, grouped=True)
    assert sorted(i for b in a for i in b) == list(range(1024))

    def waste(batches: list[list[int]]) -> float:
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert waste(a) < 0.1 * waste(batch_order(lengths, 8, seed=1, epoch=0, grouped=False))


def test_batch_stream_resumes_at_the_same_batch() -> None:
    from imts.train.data import Example

    examples = [Example(list(range(n)), list(range(n))) for n in range(3, 40)]
    s1 = example_stream(examples, 4, seed=0, grouped=True, pad_id=0)
    it = iter(s1)
    for _ in range(12):  # crosses an epoch boundary (37 examples / 4 = 9 batches)
        next(it)
    state = s1.state()
    expected = next(it)
    s2 = example_stream(examples, 4, seed=0, grouped=True, pad_id=0)
    s2.load_state(state)
    got = next(iter(s2))
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_collate_pads_right_and_masks() -> None:
    from imts.train.data import Example

    b = collate([Example([5, 6, 7], [IGNORE, 6, 7]), Example([8], [8])], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
