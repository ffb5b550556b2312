"""The scheduler of one base: mixed-adapter batches answer what each request answers alone, requests
join a running batch and leave it as they end, and stacked LoRA equals PEFT's own mixed batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.serve.factory import answer_alone, lora_adapter

from imts.inference.generate import Sampling, load, render_prompt
from imts.serve.batcher import BaseModel, Finished, Job
from imts.serve.lora import StackedLoRA, stackable


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("adapters")
    return {
        "alpha": lora_adapter(tiny_model, tmp / "alpha", seed=1),
        # another rank and other layers: the stacked columns differ from layer to layer
        "beta": lora_adapter(
            tiny_model,
            tmp / "beta",
            seed=2,
            r=4,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "gate_proj"],
        ),
        "gamma": lora_adapter(tiny_model, tmp / "gamma", seed=3, use_rslora=True),
    }


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _text(job: Job) -> tuple[str, Finished]:
    events = []
    while not events or not isinstance(events[-1], Finished):
        event = job.events.get(timeout=120)
        assert not isinstance(event, BaseException), event
        events.append(event)
    return "".join(e for e in events if isinstance(e, str)).strip(), events[-1]


@pytest.mark.parametrize("stack_lora", [True, False])
def test_requests_joining_and_leaving_a_running_batch_answer_as_alone(
    tiny_model: Path, adapters: dict[str, Path], stack_lora: bool
) -> None:
    first = [("alpha", "What is 2 + 3?", 12), (None, "What is 7 + 1?", 5), ("beta", "Add 4 and 9.", 12)]
    # join the running batch after its first step: prompts shorter than its cache, leaving at other steps
    shorter = [("alpha", "Hi", 9), (None, "What is 11 - 4?", 12), ("beta", "What is 2 + 3?", 3)]
    # and after the next: a prompt longer than its cache
    longer = [("gamma", "Subtract 3 from the sum of 10 and 12, then double it.", 6)]
    waves = [shorter, longer]
    requests = first + shorter + longer
    sizes: list[int] = []

    def admitted(size: int) -> None:  # in the scheduler, before the batch's next step
        sizes.append(size)
        if len(sizes) <= len(waves):
            start = len(first) + sum(len(w) for w in waves[: len(sizes) - 1])
            for job in jobs[start : start + len(waves[len(sizes) - 1])]:
                base.submit(job)

    base = BaseModel(tiny_model, window_s=0.2, max_batch=8, on_batch=admitted, stack_lora=stack_lora)
    for name, folder in adapters.items():
        base.ensure_adapter(name, folder)
    jobs = [Job(base.encode(_chat(p)), a, n, Sampling(), []) for a, p, n in requests]
    for job in jobs[: len(first)]:
        base.submit(job)
    got = [_text(j) for j in jobs]
    base.close()
    expected = [answer_alone(tiny_model, adapters[a] if a else None, _chat(p), n) for a, p, n in requests]
    assert [text for text, _ in got] == expected
    assert len(set(expected)) > 4  # the adapters really change the answers
    # one batch, joined twice while it ran
    assert len(sizes) == 3 and sizes[0] == 3 and 5 <= sizes[1] <= 6 and 5 <= sizes[2] <= 7, sizes
    for (_, done), (_, _, n) in zip(got, requests, strict=True):
        assert done.finish_reason in ("stop", "length") and 0 < done.completion_tokens <= n


def test_stacked_lora_equals_peft_mixed_batch(tiny_model: Path, adapters: dict[str, Path]) -> None:
    from peft import PeftModel

    tok, model = load(tiny_model)
    model = PeftModel.from_pretrained(model, str(adapters["alpha"]), adapter_name="alpha")
    for name in ("beta", "gamma"):
        model.load_adapter(str(adapters[name]), adapter_name=name)
    model.eval()
    assert stackable(model)
    prompts = [render_prompt(tok, _chat(t)) for t in ("What is 2 + 3?", "Add 4 and 9 now.", "Hi", "7 - 2?")]
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
    with torch.inference_mode():
        for names in (
            ["alpha", "__base__", "beta", "gamma"],
            ["beta", "beta", "beta", "beta"],
            ["__base__"] * 4,
        ):
            want = model(input_ids=ids, attention_mask=mask, adapter_names=names).logits
            stacked = StackedLoRA(model)
            stacked.route(names)
            got = model(input_ids=ids, attention_mask=mask).logits
            stacked.close()
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # closed, the layers are PEFT's again: the active adapter applies to every row
        model.set_adapter("gamma")
        alone = model(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(
            alone, model(input_ids=ids, attention_mask=mask, adapter_names=["gamma"] * 4).logits
        )


def test_adapters_stacked_lora_does_not_cover_go_through_peft(tiny_model: Path, tmp_path: Path) -> None:
    # LoRA on the embeddings too: PEFT's adapter_names mixes it, StackedLoRA leaves it to PEFT
    both = lora_adapter(tiny_model, tmp_path / "emb", seed=4, target_modules=["q_proj", "embed_tokens"])
    plain = lora_adapter(tiny_model, tmp_path / "plain", seed=5)
    base = BaseModel(tiny_model, window_s=0.2, max_batch=4)
    base.ensure_adapter("plain", plain)
    assert base._stacked is not None
    base.ensure_adapter("emb", both)
    assert base._stacked is None
    prompts = ["What is 2 + 3?", "Add 4 and 9."]
    jobs = [
        Job(base.encode(_chat(p)), a, 6, Sampling(), [])
        for a, p in zip(["emb", "plain"], prompts, strict=True)
    ]
    for job in jobs:
        base.submit(job)
    got = [_text(j)[0] for j in jobs]
    base.close()
    assert got == [
        answer_alone(tiny_model, f, _chat(p), 6) for f, p in zip([both, plain], prompts, strict=True)
    ]
