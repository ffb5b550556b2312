"""Launcher configs from the recommender's choice, read back the way accelerate reads them.

DeepSpeed itself cannot be installed on this machine (its wheel builds CUDA ops), so its JSON is checked
against the keys of DeepSpeed's configuration reference and read by accelerate's ``HfDeepSpeedConfig``
(what ``transformers``/``accelerate`` use to drive ZeRO).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils.deepspeed import HfDeepSpeedConfig
from accelerate.utils.launch import prepare_multi_gpu_env

from imts.core.errors import InputError
from imts.train.plan import make_plan
from imts.train.plan.arch import KNOWN
from imts.train.plan.configs import write_configs

# https://www.deepspeed.ai/docs/config-json/ (top level and zero_optimization sections).
DS_TOP = {
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "optimizer",
    "scheduler", "fp16", "bf16", "gradient_clipping", "zero_optimization", "steps_per_print",
    "wall_clock_breakdown", "activation_checkpointing", "communication_data_type", "prescale_gradients",
}  # fmt: skip
DS_ZERO = {
    "stage", "allgather_partitions", "allgather_bucket_size", "overlap_comm", "reduce_scatter",
    "reduce_bucket_size", "contiguous_gradients", "offload_param", "offload_optimizer",
    "stage3_max_live_parameters", "stage3_max_reuse_distance", "stage3_prefetch_bucket_size",
    "stage3_param_persistence_threshold", "stage3_gather_16bit_weights_on_model_save", "sub_group_size",
    "round_robin_gradients", "zero_hpz_partition_size", "zero_quantized_weights", "zero_quantized_gradients",
}  # fmt: skip
DS_OFFLOAD = {"device", "nvme_path", "pin_memory", "buffer_count", "fast_init", "ratio"}


def launch_args(path: Path) -> Any:
    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    return _validate_launch_command(args)[0]


def check_deepspeed(path: Path) -> dict[str, Any]:
    cfg = json.loads(path.read_text())
    assert set(cfg) <= DS_TOP
    assert set(cfg["zero_optimization"]) <= DS_ZERO
    assert cfg["zero_optimization"]["stage"] in (2, 3)
    for key in ("offload_optimizer", "offload_param"):
        if key in cfg["zero_optimization"]:
            assert set(cfg["zero_optimization"][key]) <= DS_OFFLOAD
            assert cfg["zero_optimization"][key]["device"] in ("cpu", "nvme", "none")
    return cfg


def test_fsdp_choice_writes_fsdp_and_zero3_configs_accelerate_accepts(tmp_path: Path) -> None:
    plan = make_plan(KNOWN["llama-3-70b"], "8xA100-80GB", "lora", batch=1, seq=4096)
    files = {p.name: p for p in write_configs(plan, tmp_path)}
    assert set(files) == {"accelerate_fsdp.yaml", "accelerate_deepspeed.yaml", "deepspeed_zero3.json"}

    args = launch_args(files["accelerate_fsdp.yaml"])
    assert args.use_fsdp and args.num_processes == 8 and args.mixed_precision == "bf16"
    env = prepare_multi_gpu_env(args)  # what `accelerate launch` hands to each process
    assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
    assert env["FSDP_ACTIVATION_CHECKPOINTING"] == "true"  # the plan chose checkpointing
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "LlamaDecoderLayer"
    assert env["FSDP_OFFLOAD_PARAMS"] == "false"

    ds_args = launch_args(files["accelerate_deepspeed.yaml"])
    assert ds_args.use_deepspeed and ds_args.deepspeed_config_file == str(files["deepspeed_zero3.json"])
    cfg = check_deepspeed(files["deepspeed_zero3.json"])
    hf = HfDeepSpeedConfig(cfg)
    assert hf.is_zero3() and not hf.is_offload()


def test_offload_choice_writes_zero3_with_cpu_optimizer_offload(tmp_path: Path) -> None:
    plan = make_plan(KNOWN["llama-3-70b"], "8xA100-80GB", "full", batch=1, seq=4096)
    assert plan.chosen is not None and plan.chosen.strategy.offload_optimizer
    files = {p.name: p for p in write_configs(plan, tmp_path)}
    assert set(files) == {"accelerate_deepspeed.yaml", "deepspeed_zero3_offload.json"}
    cfg = check_deepspeed(files["deepspeed_zero3_offload.json"])
    assert cfg["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert HfDeepSpeedConfig(cfg).is_offload()
    assert launch_args(files["accelerate_deepspeed.yaml"]).zero3_init_flag


def test_zero2_and_ddp_choices(tmp_path: Path) -> None:
    # 1.7B full fine-tune, 4 x 24 GB: DDP needs 16 bytes/param everywhere; ZeRO-2 shards the states.
    plan = make_plan(KNOWN["smollm2-1.7b"], "4xRTX4090-24GB", "full", batch=1, seq=1024)
    assert plan.chosen is not None and plan.chosen.strategy.name == "ZeRO-2"
    files = {p.name: p for p in write_configs(plan, tmp_path / "z2")}
    cfg = check_deepspeed(files["deepspeed_zero2.json"])
    assert cfg["zero_optimization"]["stage"] == 2 and not HfDeepSpeedConfig(cfg).is_zero3()

    ddp = make_plan(KNOWN["smollm2-135m"], "4xH100", "lora", batch=8, seq=1024)
    files = {p.name: p for p in write_configs(ddp, tmp_path / "ddp")}
    args = launch_args(files["accelerate.yaml"])
    assert args.multi_gpu and args.num_processes == 4


def test_no_config_for_cpu_or_when_nothing_fits(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="GPU runs"):
        write_configs(make_plan(KNOWN["smollm2-135m"], "cpu", "lora", batch=1, seq=128), tmp_path)
    with pytest.raises(InputError, match="nothing fits"):
        write_configs(make_plan(KNOWN["llama-3.1-405b"], "1xL4", "full"), tmp_path)
