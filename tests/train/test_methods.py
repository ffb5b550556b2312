"""The other recipes on a tiny model: full fine-tuning, DPO, data parallelism, QLoRA's refusal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from imts.core.errors import InputError
from imts.data.ingest import import_file
from imts.registry import base_models
from imts.store.workspace import Workspace
from imts.train import distributed
from imts.train.distributed import RankFailed
from imts.train.recipes import dpo, sft_full
from imts.train.service import train
from imts.train.spec import RunSpec, check_runnable

BASE = ["batch_size=4", "warmup_steps=1", "precision=fp32", "merge=false", "eval_every=100", "save_every=100"]


class ListSink:
    def __init__(self) -> None:
        self.metrics_by_step: dict[int, dict[str, float]] = {}
        self.events: list[tuple[str, str, int | None]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.metrics_by_step.setdefault(step, {}).update(values)

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.events.append((kind, message, step))


def _spec(*over: str) -> RunSpec:
    return RunSpec.from_sources(overrides=[*BASE, *over], base_model="t", data="d")


def _sft_rows(mathgen: Any, n: int = 48) -> list[dict[str, Any]]:
    rows, _ = mathgen.generate(n=n, seed=5)
    return [
        {
            "id": r["id"],
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ],
        }
        for r in rows
    ]


def _pairs(mathgen: Any, n: int = 32) -> list[dict[str, Any]]:
    """The worked answer preferred over a refusal: a preference even a random tiny model can learn."""
    rows, _ = mathgen.generate(n=n, seed=5)
    return [
        {"id": r["id"], "prompt": r["prompt"], "chosen": r["response"], "rejected": "I do not know."}
        for r in rows
    ]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_sft_full_trains_every_weight_and_saves_a_model(
    tiny_model: Path, mathgen: Any, tmp_path: Path
) -> None:
    sink = ListSink()
    result = sft_full.run(
        _spec("method=sft_full", "max_steps=4", "lr=0.002", "save_every=2"),
        tiny_model,
        _sft_rows(mathgen),
        [],
        tmp_path / "full",
        sink,
    )
    assert result.adapter_dir is None and result.merged_dir == tmp_path / "full" / "model"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "run_config.yaml"):
        assert (result.merged_dir / name).exists(), name
    before, after = _weights(tiny_model), _weights(result.merged_dir)
    assert before.keys() == after.keys()  # the tied head is stored once, as the base stores it
    assert all(not torch.equal(before[k], after[k]) for k in before if "norm" not in k)
    # Checkpoints hold every weight, not an adapter.
    assert (tmp_path / "full" / "checkpoints" / "step-000004" / "model.safetensors").exists()
    m = sink.metrics_by_step[4]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_mb"} <= m.keys()
    assert 0 < m["mfu"] < 1.5 and m["peak_mem_mb"] > 50


def test_dpo_raises_the_chosen_over_rejected_margin(tiny_model: Path, mathgen: Any, tmp_path: Path) -> None:
    pairs = _pairs(mathgen)
    sink = ListSink()
    spec = _spec("method=dpo", "max_steps=8", "lr=0.01", "lora.r=8", "eval_every=8", "dpo.beta=0.5")
    result = dpo.run(spec, tiny_model, pairs, pairs[:16], tmp_path / "dpo", sink)
    first, last = sink.metrics_by_step[1], sink.metrics_by_step[8]
    # Step 1 runs the starting weights (LoRA B = 0): policy == reference, so no margin, loss log 2.
    assert first["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    assert first["loss"] == pytest.approx(math.log(2), rel=1e-4)
    assert last["val_reward_accuracy"] >= 0.75 and last["val_reward_margin"] > 0.5
    assert last["val_loss"] < math.log(2)
    assert {"reward_accuracy", "rewards_chosen", "rewards_rejected"} <= last.keys()
    assert result.adapter_dir is not None and (result.adapter_dir / "adapter_model.safetensors").exists()

    # Going on from those adapters (init_from), the reference is the model it starts from, not the base:
    # its first step again has no margin, where the base as reference would show the margin just learnt.
    again = ListSink()
    more = _spec("method=dpo", "max_steps=1", "lr=0.01", "lora.r=8", "dpo.beta=0.5")
    more = more.model_copy(update={"init_from": str(result.adapter_dir)})
    dpo.run(more, tiny_model, pairs, [], tmp_path / "more", again)
    assert again.metrics_by_step[1]["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    assert again.metrics_by_step[1]["loss"] == pytest.approx(math.log(2), rel=1e-4)


def test_rpo_adds_the_chosen_answers_likelihood(tiny_model: Path, mathgen: Any, tmp_path: Path) -> None:
    """``dpo.rpo_alpha``: each pair's loss also holds the chosen answer's NLL per token, so the chosen
    answers end likelier than when only the margin is trained."""
    policy = torch.tensor([-20.0, -6.0, -30.0, -9.0])  # two chosen, then two rejected
    ref = torch.tensor([[-20.0, -30.0], [-6.0, -9.0]])  # policy == reference: DPO's part is log 2
    tokens = torch.tensor([10, 3, 12, 4])
    plain, _, _ = dpo.dpo_terms(policy, ref, _spec("method=dpo"), tokens)
    rpo, _, _ = dpo.dpo_terms(policy, ref, _spec("method=dpo", "dpo.rpo_alpha=0.5"), tokens)
    assert plain.tolist() == pytest.approx([math.log(2)] * 2)
    assert rpo.tolist() == pytest.approx([math.log(2) + 0.5 * 2.0, math.log(2) + 0.5 * 2.0])

    pairs = _pairs(mathgen)
    chosen = {}
    for alpha in ("0", "1"):
        sink = ListSink()
        over = ("method=dpo", "max_steps=8", "lr=0.01", "lora.r=8", "eval_every=8", "dpo.beta=0.5")
        dpo.run(_spec(*over, f"dpo.rpo_alpha={alpha}"), tiny_model, pairs, [], tmp_path / alpha, sink)
        chosen[alpha] = sink.metrics_by_step[8]["rewards_chosen"]
    assert chosen["1"] > chosen["0"]


def test_dpo_refuses_a_dataset_without_pairs(ws: Workspace, tiny_model: Path, math_file: Path) -> None:
    base_models.add(ws, tiny_model, name="tiny")
    ref = import_file(ws, math_file, name="math").ref
    spec = RunSpec.from_sources(overrides=["method=dpo", "train_split=null"], base_model="tiny", data=ref)
    with pytest.raises(InputError, match=rf"{ref} holds sft rows, without the 'chosen' and 'rejected'") as e:
        train(ws, spec)
    assert e.value.field == "chosen"
    with pytest.raises(InputError, match="row 7 has no 'rejected' text"):
        dpo.encode_pair(None, {"id": 7, "prompt": "p", "chosen": "c"}, 64)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_qlora_is_refused_without_cuda() -> None:
    spec = RunSpec.from_sources(overrides=["quantization=nf4"], base_model="b", data="d")
    with pytest.raises(InputError, match="needs a CUDA GPU and this machine has none") as e:
        check_runnable(spec)
    assert e.value.field == "quantization"
    with pytest.raises(InputError, match=r"QLoRA\) trains adapters"):
        RunSpec.from_sources(overrides=["quantization=nf4", "method=sft_full"], base_model="b", data="d")


@pytest.mark.parametrize("method", ["sft_full", "dpo"])
def test_two_processes_match_one(tiny_model: Path, mathgen: Any, tmp_path: Path, method: str) -> None:
    """Same global batch on 2 gloo processes and on 1: the same losses per step and the same weights."""
    rows = _sft_rows(mathgen) if method == "sft_full" else _pairs(mathgen)
    recipe = sft_full.run if method == "sft_full" else dpo.run
    over = [f"method={method}", "dpo.full=true", "max_steps=4", "lr=0.002", "grad_accum=2", "batching=random"]
    one, two = ListSink(), ListSink()
    a = distributed.launch(recipe, _spec(*over), tiny_model, rows, rows[:6], tmp_path / "one", one)
    b = distributed.launch(recipe, _spec(*over, "nproc=2"), tiny_model, rows, rows[:6], tmp_path / "two", two)
    for step in range(1, 5):
        assert two.metrics_by_step[step]["loss"] == pytest.approx(one.metrics_by_step[step]["loss"], rel=1e-4)
    assert two.metrics_by_step[4]["val_loss"] == pytest.approx(one.metrics_by_step[4]["val_loss"], rel=1e-4)
    assert a.tokens == b.tokens
    wa, wb = _weights(a.merged_dir), _weights(b.merged_dir)
    # Summation order differs between 1 and 2 processes: ~1e-6 apart after 4 steps that move weights ~1e-2.
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-5) for k in wa)
    assert any(k == "started" and "2 process(es)" in msg for k, msg, _ in two.events)


def _fails_on_rank_1(spec: RunSpec, *args: Any) -> None:
    dist = distributed.current()
    if dist.rank == 1:
        raise ValueError("rank one broke")
    dist.sum([1.0])  # rank 0 waits for a rank that is gone


def test_a_failing_rank_fails_the_run(tmp_path: Path) -> None:
    spec = RunSpec.from_sources(overrides=["nproc=2", "dist_timeout_s=30"], base_model="b", data="d")
    with pytest.raises(RankFailed, match="rank 1 failed: ValueError: rank one broke"):
        distributed.launch(_fails_on_rank_1, spec, tmp_path, [], [], tmp_path, None)


def test_flop_accounting(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    from imts.train.mfu import FlopModel, flop_model

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    total = sum(p.numel() for p in model.parameters())  # the tied head/embedding counted once
    embed = model.get_input_embeddings().weight.numel()
    full = flop_model(model, full=True)
    assert (full.body, full.head, full.layers, full.hidden, full.factor) == (total - embed, embed, 2, 64, 6)
    assert flop_model(model, full=False).factor == 4
    # 6N per token on the body, 6N per loss position on the head, 12·L·h·s² for attention.
    assert FlopModel(100, 10, 2, 8, 6).step_flops(tokens=5, head_positions=2, sq_len_sum=25) == (
        6 * (100 * 5 + 10 * 2) + 12 * 2 * 8 * 25
    )


def test_stop_request_stops_every_rank_after_a_checkpoint(
    tiny_model: Path, mathgen: Any, tmp_path: Path
) -> None:
    """Rank 0's should_stop (a job's SIGTERM) is every rank's: one checkpoint, then Interrupted."""
    from imts.core.errors import Interrupted

    rows = _sft_rows(mathgen)
    spec = _spec("method=sft_full", "max_steps=6", "nproc=2")
    sink, asked = ListSink(), iter([False, True])
    with pytest.raises(Interrupted):
        distributed.launch(
            sft_full.run, spec, tiny_model, rows, [], tmp_path / "r", sink, None, lambda: next(asked)
        )
    assert [k for k, _, _ in sink.events][-2:] == ["checkpoint", "stopped"]
    assert (tmp_path / "r" / "checkpoints" / "step-000002" / "model.safetensors").exists()


def test_bf16_lora_keeps_the_base_in_bf16_and_merges_in_fp32(
    tiny_model: Path, mathgen: Any, tmp_path: Path
) -> None:
    from imts.train import loop
    from imts.train.recipes import sft_lora

    spec = _spec("precision=bf16", "max_steps=2", "merge=true", "lr=0.01")
    model, _, _ = loop.load_model(spec, tiny_model, torch.device("cpu"))
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.float32}  # trained: fp32 masters
    assert {d for n, d in dtypes.items() if "lora_" not in n} == {torch.bfloat16}  # frozen: half the bytes

    result = sft_lora.run(spec, tiny_model, _sft_rows(mathgen), [], tmp_path / "lora", ListSink())
    assert result.merged_dir is not None
    base, merged = _weights(tiny_model), _weights(result.merged_dir)
    assert {t.dtype for t in merged.values()} == {torch.float32}
    # The merge is base + B·A·(alpha/r) computed in fp32, not rounded to bf16's step around each weight.
    from safetensors.torch import load_file

    adapter = load_file(result.adapter_dir / "adapter_model.safetensors")  # type: ignore[operator]
    key = next(k for k in base if k.endswith("layers.0.self_attn.q_proj.weight"))
    a = next(v for k, v in adapter.items() if "layers.0.self_attn.q_proj.lora_A" in k)
    b = next(v for k, v in adapter.items() if "layers.0.self_attn.q_proj.lora_B" in k)
    expected = base[key].float() + (b.float() @ a.float()) * (spec.lora.alpha / spec.lora.r)
    assert (b != 0).any()
    torch.testing.assert_close(merged[key], expected, rtol=1e-6, atol=1e-7)


def test_a_run_goes_on_from_another_runs_adapters(ws: Workspace, tiny_model: Path, math_file: Path) -> None:
    """``init_from``: the second run starts where the first ended (its first loss near the first run's last,
    far under a run from zero), records the reference it was given, and refuses adapters of another shape."""
    from imts.data.service import split_version
    from imts.store import runs

    base_models.add(ws, tiny_model, name="tiny")
    ref = split_version(ws, import_file(ws, math_file, name="math").ref, seed=0).ref
    over = [*BASE, "max_steps=30", "lr=5e-3", "eval_every=30", "save_every=30", "val_split=null"]

    def losses(run_id: str) -> list[float]:
        return [v for _, v in runs.history(ws, run_id, ["loss"])["loss"]]

    first = train(ws, RunSpec.from_sources(overrides=over, base_model="tiny", data=ref))
    fresh = train(ws, RunSpec.from_sources(overrides=[*over, "max_steps=2"], base_model="tiny", data=ref))
    more = train(ws, RunSpec.from_sources(overrides=[*over, "max_steps=2"], base_model="tiny", data=ref,
                                          init_from=first))  # fmt: skip
    # the tiny random model learns slowly: 30 steps take its loss from ~6.65 to ~6.3
    assert losses(more)[0] < losses(fresh)[0] - 0.2
    assert abs(losses(more)[0] - sum(losses(first)[-5:]) / 5) < 0.1
    assert runs.get(ws, more).spec["init_from"] == first

    other = RunSpec.from_sources(overrides=[*over, "lora.r=4"], base_model="tiny", data=ref, init_from=first)
    with pytest.raises(InputError, match=r"rank 16 on .*this run's lora has rank 4") as e:
        train(ws, other)
    assert e.value.field == "init_from"
    with pytest.raises(InputError, match="init_from continues LoRA adapters"):
        RunSpec.from_sources(overrides=["method=sft_full"], base_model="tiny", data=ref, init_from=first)


def test_lora_in_the_top_layers_only(ws: Workspace, tiny_model: Path, math_file: Path) -> None:
    """``lora.top_layers=1``: adapters in the last decoder layer only; a run goes on from them only with
    the same setting; more layers than the base model has is a clear error naming the field."""
    from safetensors.torch import load_file

    from imts.data.service import split_version
    from imts.registry import models

    base_models.add(ws, tiny_model, name="tiny")
    ref = split_version(ws, import_file(ws, math_file, name="math").ref, seed=0).ref
    over = [*BASE, "max_steps=2", "val_split=null", "lora.top_layers=1"]
    top = train(ws, RunSpec.from_sources(overrides=over, base_model="tiny", data=ref))
    adapter = Path(models.get_version(ws, top).adapter_path or "")
    keys = list(load_file(adapter / "adapter_model.safetensors"))
    assert keys and all(".layers.1." in k for k in keys)  # the tiny model has layers 0 and 1
    assert any("mlp.down_proj.lora_B" in k for k in keys)  # every target module of that layer

    again = train(ws, RunSpec.from_sources(overrides=over, base_model="tiny", data=ref, init_from=top))
    assert models.get_version(ws, again).adapter_path
    every = RunSpec.from_sources(overrides=over[:-1], base_model="tiny", data=ref, init_from=top)
    with pytest.raises(InputError, match=r"in its last 1 decoder layers; this run's lora.top_layers is None"):
        train(ws, every)
    with pytest.raises(InputError, match=r"lora.top_layers is 3, but tiny has 2 decoder layers") as e:
        train(ws, RunSpec.from_sources(overrides=[*over, "lora.top_layers=3"], base_model="tiny", data=ref))
    assert e.value.field == "lora.top_layers"
