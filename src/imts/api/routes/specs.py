"""The typed specs as JSON schemas (the console builds its launch forms and its form to start a loop
from them) and the memory plan of a run before it is submitted."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from imts.api.deps import project_ctx, user_ctx
from imts.core.permissions import Permission
from imts.evals.suite import SuiteSpec
from imts.flywheel.spec import LoopSpec
from imts.store.context import Context
from imts.train.plan.service import make_plan, plan_dict, resolve_arch
from imts.train.spec import RunSpec

router = APIRouter(tags=["specs"])
UserCtx = Annotated[Context, Depends(user_ctx)]


class PlanRequest(BaseModel):
    """What the memory plan of a run depends on: the run spec's fields, and the hardware."""

    base_model: str = Field(..., min_length=1, max_length=200, description="Base model name.")
    method: Literal["sft_lora", "sft_full", "dpo"] = "sft_lora"
    quantization: Literal["none", "nf4"] = "none"
    batch_size: int = Field(8, ge=1, le=65536)
    grad_accum: int = Field(1, ge=1, le=65536)
    max_seq_len: int = Field(512, ge=16, le=1_048_576)
    lora_rank: int = Field(16, ge=1, le=4096)
    gpus: str = Field("cpu", min_length=1, max_length=100, description="`cpu`, or e.g. `8xh100`.")


class PlanOption(BaseModel):
    method: str
    strategy: str
    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    overhead: float
    total: float
    cpu_offloaded: float
    fits: bool
    rel_time: float
    launchable: bool


class PlanView(BaseModel):
    """Memory per device of every way to run it (GiB), and the one recommended, with why."""

    model: str
    params: int
    hardware: str
    usable_gib_per_device: float
    micro_batch: int
    seq_len: int
    precision: str
    options: list[PlanOption]
    chosen: dict[str, str] | None
    why: str


@router.get("/specs/run", response_model=dict[str, Any])
def run_schema(ctx: UserCtx) -> dict[str, Any]:
    """The JSON schema of a training run's spec (fields, types, defaults, help)."""
    return RunSpec.model_json_schema()


@router.get("/specs/eval", response_model=dict[str, Any])
def eval_schema(ctx: UserCtx) -> dict[str, Any]:
    """The JSON schema of an evaluation suite's spec."""
    return SuiteSpec.model_json_schema()


@router.get("/specs/loop", response_model=dict[str, Any])
def loop_schema(ctx: UserCtx) -> dict[str, Any]:
    """The JSON schema of a closed loop's spec (help in English and Chinese: ``description_zh``)."""
    return LoopSpec.model_json_schema()


@router.post("/tenants/{tenant}/projects/{project}/plan", response_model=PlanView)
def plan(
    body: PlanRequest, ctx: Annotated[Context, Depends(project_ctx(Permission.METRICS_VIEW))]
) -> PlanView:
    """The memory plan of a run (``imts plan``): every method and strategy, and the recommended one."""
    method = {"sft_full": "full", "sft_lora": "lora", "dpo": "lora"}[body.method]
    if body.quantization == "nf4":
        method = "qlora"
    micro = max(1, body.batch_size // body.grad_accum)
    arch = resolve_arch(body.base_model, ctx)
    result = make_plan(arch, body.gpus, method, micro, body.max_seq_len, "bf16", 1, body.lora_rank)  # type: ignore[arg-type]
    return PlanView.model_validate(plan_dict(result))
