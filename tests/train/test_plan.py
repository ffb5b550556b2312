"""Memory estimator and strategy recommender: known values, and the configs it generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from imts.core.errors import InputError, NotFoundError
from imts.train.plan import make_plan, resolve_arch
from imts.train.plan.arch import KNOWN, from_config, lookup
from imts.train.plan.memory import (
    GiB,
    Strategy,
    Workload,
    activation_bytes_per_token_layer,
    estimate,
    parse_hardware,
    state_bytes,
)

# Parameter counts published with each model (safetensors metadata of the official repositories).
PUBLISHED = {
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
    "qwen2.5-7b": 7_615_616_512,
    "qwen2.5-14b": 14_770_033_664,
    "qwen2.5-72b": 72_706_203_648,
    "mistral-7b": 7_241_732_096,
    "smollm2-135m": 134_515_008,
    "smollm2-360m": 361_821_120,
    "smollm2-1.7b": 1_711_376_384,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_from_shapes_match_published(name: str) -> None:
    assert KNOWN[name].params() == PUBLISHED[name]


def test_config_json_of_a_real_model_gives_its_parameter_count(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    arch = from_config(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert arch.params() == sum(p.numel() for p in model.parameters())
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert arch.lora_params(4, ["q_proj", "v_proj", "down_proj"]) == trainable
    assert lookup(str(tiny_model)).params() == arch.params()
    with pytest.raises(NotFoundError, match="unknown model"):
        lookup("no-such-model")
    with pytest.raises(InputError, match="unknown LoRA target"):
        arch.lora_params(4, ["qkv"])


def test_full_fine_tune_states_are_16_bytes_per_param_and_zero3_divides_by_n() -> None:
    arch = KNOWN["llama-3-8b"]
    p = arch.params()
    w = Workload(arch, "full", 1, 1024)
    assert sum(state_bytes(w)) == 16 * p  # 2 bf16 weights + 2 grads + 4 master + 8 Adam
    assert state_bytes(Workload(arch, "full", 1, 1024, "fp32")) == (4 * p, 4 * p, 8 * p)
    hw = parse_hardware("8xA100-80GB")
    ddp = estimate(w, Strategy("DDP"), hw)
    z2 = estimate(w, Strategy("ZeRO-2", shard_grads_optim=True), hw)
    z3 = estimate(w, Strategy("FSDP/ZeRO-3", shard_grads_optim=True, shard_weights=True), hw)
    assert (ddp.weights, ddp.gradients, ddp.optimizer) == (2 * p, 2 * p, 12 * p)
    assert (z2.weights, z2.gradients, z2.optimizer) == (2 * p, 2 * p / 8, 12 * p / 8)
    assert (z3.weights, z3.gradients, z3.optimizer) == (2 * p / 8, 2 * p / 8, 12 * p / 8)
    assert z3.activations == ddp.activations  # sharding states does not shard activations


def test_activations_follow_checkpointing_and_the_16_bit_element_size() -> None:
    arch = KNOWN["llama-3-8b"]
    w = Workload(arch, "full", 2, 2048)
    hw = parse_hardware("1xA100-80GB")
    plain = estimate(w, Strategy("single"), hw)
    ckpt = estimate(w, Strategy("single", checkpointing=True), hw)
    per_layer = 2 * 2048 * activation_bytes_per_token_layer(w)
    assert plain.activations == 32 * per_layer
    assert ckpt.activations == 32 * 2 * 2048 * 4096 * 2 + per_layer  # layer inputs + one layer recomputed
    assert plain.logits == 2 * 2048 * 128256 * (2 + 4 + 4)
    fp32 = Workload(arch, "full", 2, 2048, "fp32")
    # fp32 doubles the compute-dtype tensors; bf16 autocast adds fp32 copies (norms, fp32 residual stream)
    ratio = activation_bytes_per_token_layer(fp32) / activation_bytes_per_token_layer(w)
    assert 1.3 < ratio < 2


# Bytes autograd saves per token per decoder layer of SmolLM2-135M, counted by
# benchmarks/saved_activations.py (8 x 491-token batch; benchmarks/RESULTS.md, issue 4).
COUNTED = {
    ("fp32", "lora"): 49_217,
    ("fp32", "full"): 53_385,
    ("bf16", "lora"): 31_543,
    ("bf16", "full"): 34_857,
}


@pytest.mark.parametrize(("precision", "method"), sorted(COUNTED))
def test_activation_bytes_match_the_counted_saved_tensors(precision: str, method: str) -> None:
    w = Workload(KNOWN["smollm2-135m"], method, 8, 491, precision)  # type: ignore[arg-type]
    assert activation_bytes_per_token_layer(w) == pytest.approx(COUNTED[(precision, method)], rel=0.02)


def test_7b_full_does_not_fit_one_24gb_gpu_but_lora_and_qlora_do() -> None:
    arch = KNOWN["mistral-7b"]
    full = make_plan(arch, "1xRTX4090-24GB", "full", batch=1, seq=2048)
    assert full.chosen is None and "nothing fits" in full.why
    lora = make_plan(arch, "1xRTX4090-24GB", "lora", batch=1, seq=2048)
    qlora = make_plan(arch, "1xRTX4090-24GB", "qlora", batch=1, seq=2048)
    assert lora.chosen is not None and lora.chosen.method == "lora"
    assert qlora.chosen is not None and qlora.chosen.estimate.weights < 0.3 * lora.chosen.estimate.weights
    both = make_plan(arch, "1xRTX4090-24GB", None, batch=1, seq=2048)
    assert both.chosen is not None and both.chosen.method == "lora"  # fastest that fits
    assert {o.method for o in both.options} == {"full", "lora", "qlora"}
    assert "no full fine-tune fits" in both.why


def test_70b_on_8xa100_needs_zero3_and_checkpointing() -> None:
    plan = make_plan(KNOWN["llama-3-70b"], "8xA100-80GB", "lora", batch=1, seq=4096)
    assert plan.chosen is not None
    s = plan.chosen.strategy
    assert s.name == "FSDP/ZeRO-3" and s.shard_weights and s.checkpointing
    assert not any(o.fits for o in plan.options if o.strategy.name in ("DDP", "ZeRO-2"))
    assert plan.chosen.estimate.total <= 0.9 * 80 * GiB
    full = make_plan(KNOWN["llama-3-70b"], "8xA100-80GB", "full", batch=1, seq=4096)
    assert full.chosen is not None and full.chosen.strategy.name == "ZeRO-3+offload"
    assert full.chosen.estimate.cpu_offloaded == pytest.approx(12 * KNOWN["llama-3-70b"].params() / 8)


def test_small_model_on_many_gpus_picks_plain_ddp_and_tp_respects_heads() -> None:
    plan = make_plan(KNOWN["smollm2-135m"], "8xA100-80GB", "full", batch=4, seq=1024)
    assert plan.chosen is not None and plan.chosen.label == "DDP"
    tps = {o.strategy.tp for o in plan.options}
    assert tps == {1}  # 9 heads, 3 KV heads: no even split over 2, 4 or 8 ranks


def test_cpu_mode_plans_in_this_cpus_precision_and_has_no_qlora() -> None:
    from imts.core.hardware import cpu_native_bf16

    plan = make_plan(KNOWN["smollm2-135m"], "cpu", None, batch=4, seq=256)
    assert {w.method for w in plan.workloads} == {"full", "lora"}
    native = cpu_native_bf16()  # what precision=auto trains in here
    assert all(w.precision == ("bf16" if native else "fp32") for w in plan.workloads)
    lora = next(w for w in plan.workloads if w.method == "lora")
    o = next(o for o in plan.options if o.method == "lora" and not o.strategy.checkpointing)
    p, t = lora.arch.params(), lora.trainable
    per_frozen = 2 if native else 4
    assert o.estimate.weights == per_frozen * p + per_frozen * t
    assert o.estimate.overhead == 0
    with pytest.raises(InputError, match="QLoRA needs a CUDA GPU"):
        make_plan(KNOWN["smollm2-135m"], "cpu", "qlora")


def test_hardware_parsing() -> None:
    hw = parse_hardware("2xRTX4090-24GB", nodes=2)
    assert (hw.world, hw.device.interconnect, hw.device.memory) == (4, "PCIe", 24 * GiB)
    assert parse_hardware("4xH100").device.interconnect == "NVLink"
    assert parse_hardware("1xL4").per_node == 1
    for bad in ("A100", "0xA100-80GB", "2xTPU"):
        with pytest.raises(InputError):
            parse_hardware(bad)


def test_registered_base_model_is_planned_from_its_config(ws, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    from imts.registry import base_models

    base_models.add(ws, tiny_model, name="tiny")
    arch = resolve_arch("tiny", ws)
    assert arch.name == "tiny" and arch.hidden == 64 and arch.layers == 2
    assert resolve_arch("Llama-3-8B", ws) is KNOWN["llama-3-8b"]
