"""Launcher configs for GPU runs from the recommender's choice: accelerate (DDP / FSDP) YAML and
DeepSpeed ZeRO-2/3 JSON (with optimizer offload when chosen).

The accelerate YAML uses the keys ``accelerate config`` writes (``accelerate launch --config_file``);
the DeepSpeed JSON uses the keys of DeepSpeed's configuration reference
(https://www.deepspeed.ai/docs/config-json/). Batch sizes and gradient accumulation are left to
``"auto"`` so the training script's values apply (accelerate fills them in).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from imts.core.errors import InputError
from imts.train.plan.recommend import Option, Plan

DECODER_LAYER = {"llama": "LlamaDecoderLayer", "qwen": "Qwen2DecoderLayer", "mistral": "MistralDecoderLayer"}


def layer_class(model_name: str) -> str:
    """The decoder layer class FSDP wraps one unit at a time (LlamaDecoderLayer for SmolLM2 too)."""
    name = model_name.lower()
    return next((cls for key, cls in DECODER_LAYER.items() if key in name), "LlamaDecoderLayer")


def deepspeed_config(option: Option, precision: str = "bf16") -> dict[str, Any]:
    """DeepSpeed JSON for a ZeRO-2 / ZeRO-3 option (offload of the optimizer when chosen)."""
    s = option.strategy
    if not s.shard_grads_optim:
        raise InputError(f"{option.label} is not a ZeRO strategy: no DeepSpeed config for it")
    zero: dict[str, Any] = {
        "stage": 3 if s.shard_weights else 2,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if s.shard_weights:
        zero |= {
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,
        }
    else:
        zero |= {"allgather_partitions": True, "allgather_bucket_size": 200_000_000, "reduce_scatter": True}
    if s.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": precision == "bf16"},
        "zero_optimization": zero,
        "steps_per_print": 100,
        "wall_clock_breakdown": False,
    }


def accelerate_config(option: Option, plan: Plan, deepspeed_file: Path | None = None) -> dict[str, Any]:
    """accelerate YAML: MULTI_GPU (DDP), FSDP (FULL_SHARD) or DEEPSPEED (pointing at the JSON)."""
    hw, s = plan.hardware, option.strategy
    precision = plan.workloads[0].precision
    base: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "bf16" if precision == "bf16" else "no",
        "num_machines": hw.nodes,
        "num_processes": hw.world,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if deepspeed_file is not None:
        return base | {
            "distributed_type": "DEEPSPEED",
            "deepspeed_config": {
                "deepspeed_config_file": str(deepspeed_file),
                "zero3_init_flag": s.shard_weights,
            },
        }
    if s.shard_weights:
        return base | {
            "distributed_type": "FSDP",
            "fsdp_config": {
                "fsdp_version": 1,
                "fsdp_sharding_strategy": "FULL_SHARD",
                "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "fsdp_transformer_layer_cls_to_wrap": layer_class(plan.workloads[0].arch.name),
                "fsdp_backward_prefetch": "BACKWARD_PRE",
                "fsdp_forward_prefetch": False,
                "fsdp_offload_params": False,
                "fsdp_state_dict_type": "SHARDED_STATE_DICT",
                "fsdp_cpu_ram_efficient_loading": True,
                "fsdp_sync_module_states": True,
                "fsdp_use_orig_params": True,  # LoRA: frozen and trainable parameters in one flat unit
                "fsdp_activation_checkpointing": s.checkpointing,
            },
        }
    return base | {"distributed_type": "MULTI_GPU" if hw.world > 1 else "NO"}


def write_configs(plan: Plan, folder: Path) -> list[Path]:
    """Write the chosen option's launcher configs into ``folder``; returns the files written.

    DDP / single GPU: ``accelerate.yaml``. FSDP/ZeRO-3: ``accelerate_fsdp.yaml`` and, as the DeepSpeed
    alternative, ``deepspeed_zero3.json`` + ``accelerate_deepspeed.yaml``. ZeRO-2 and offload: the
    DeepSpeed JSON and its accelerate YAML.
    """
    option = plan.chosen
    if option is None:
        raise InputError("nothing fits: no config to write")
    if option.strategy.tp > 1:
        raise InputError("tensor parallelism needs a Megatron-style trainer: no accelerate/DeepSpeed config")
    if plan.hardware.device.kind != "gpu":
        raise InputError("launcher configs are for GPU runs; CPU runs need none")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def dump_yaml(name: str, data: dict[str, Any]) -> None:
        path = folder / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        written.append(path)

    s = option.strategy
    if s.shard_grads_optim:
        stage = 3 if s.shard_weights else 2
        ds = folder / f"deepspeed_zero{stage}{'_offload' if s.offload_optimizer else ''}.json"
        ds.write_text(
            json.dumps(deepspeed_config(option, plan.workloads[0].precision), indent=2) + "\n",
            encoding="utf-8",
        )
        written.append(ds)
        dump_yaml("accelerate_deepspeed.yaml", accelerate_config(option, plan, ds))
        if s.shard_weights and not s.offload_optimizer:
            dump_yaml("accelerate_fsdp.yaml", accelerate_config(option, plan))
    else:
        dump_yaml("accelerate.yaml", accelerate_config(option, plan))
    return written
