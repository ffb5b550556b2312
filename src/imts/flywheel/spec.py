"""The typed spec of a closed loop (``imts loop start``): what to learn, from which data, when to stop."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from imts.core.errors import InputError

BASE_MODEL = "smollm2-135m-instruct"
# The general-ability probe shipped with IMTS (``flywheel/data/general_probe.jsonl``), imported into a
# project under this name the first time a loop there needs it.
PROBE_DATASET = "imts-general-probe"


def zh(text: str) -> dict[str, Any]:
    """A field's help in Chinese, beside its ``description`` in the JSON schema (the console shows it)."""
    return {"description_zh": text}


class Budget(BaseModel):
    """What the loop may spend in all (None: no limit). Counted from its jobs' records, never added up
    as it goes, so a resumed loop never counts anything twice."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"title_zh": "预算"})

    cpu_hours: float | None = Field(
        None, gt=0, description="Worker CPU-hours over all the loop's jobs.",
        json_schema_extra=zh("闭环所有任务合计的 CPU 小时数。"),
    )  # fmt: skip
    gpu_hours: float | None = Field(
        None, gt=0, description="Worker GPU-hours over all the loop's jobs.",
        json_schema_extra=zh("闭环所有任务合计的 GPU 小时数。"),
    )  # fmt: skip
    tokens: int | None = Field(
        None, gt=0, description="Training tokens over all iterations.",
        json_schema_extra=zh("所有迭代合计的训练 token 数。"),
    )  # fmt: skip
    generated_items: int | None = Field(
        None, gt=0, description="Rows generated or rewritten by repairs.",
        json_schema_extra=zh("数据修复生成或改写的行数。"),
    )  # fmt: skip


class LoopSpec(BaseModel):
    """One closed loop: analyse -> repair -> split -> baseline -> train -> evaluate -> feedback -> ..."""

    model_config = ConfigDict(extra="forbid")

    # Every field's help is in English (description) and Chinese (description_zh): the console's form to
    # start a loop is built from this schema (GET /api/v1/specs/loop).
    intent: str = Field(
        min_length=1, max_length=2000, description="What the model should learn.",
        json_schema_extra=zh("模型要学会什么。"),
    )  # fmt: skip
    data: str = Field(
        description="Dataset to start from (NAME[@N]).", json_schema_extra=zh("起始数据集（NAME[@N]）。")
    )
    name: str = Field(
        "", max_length=80, description="The loop's name (default: the dataset's).",
        json_schema_extra=zh("闭环名称（默认取数据集名）。"),
    )  # fmt: skip
    base_model: str = Field(
        BASE_MODEL, min_length=1, description="Base model every iteration is trained from.",
        json_schema_extra=zh("每轮训练所用的基座模型。"),
    )  # fmt: skip
    target: float | None = Field(
        None, gt=0, le=1, description="Stop once the test accuracy reaches it.",
        json_schema_extra=zh("测试准确率达到该值即停止（0–1，可选）。"),
    )  # fmt: skip
    target_on: Literal["test", "heldout"] = Field(
        "test", description="Which score the target is on: the test split, or the first held-out set.",
        json_schema_extra=zh("目标针对哪个分数：测试集，或第一个外部评测集。"),
    )  # fmt: skip
    max_iterations: int = Field(
        3, ge=1, le=50, description="Training iterations at most.", json_schema_extra=zh("最多训练迭代次数。")
    )
    patience: int = Field(
        2, ge=1, description="Stop after this many iterations without a significant gain.",
        json_schema_extra=zh("连续这么多轮没有显著提升即停止。"),
    )  # fmt: skip
    alpha: float = Field(
        0.05, gt=0, lt=1, description="Significance level of the paired test (McNemar).",
        json_schema_extra=zh("配对检验（McNemar）的显著性水平。"),
    )  # fmt: skip
    forgetting_tolerance: float = Field(
        0.02, ge=0, le=1, description="Largest drop of the general probe's accuracy against the base model.",
        json_schema_extra=zh("通用能力探针准确率相对基座模型允许的最大下降。"),
    )  # fmt: skip
    budget: Budget = Field(default_factory=Budget)
    policy: Literal["auto", "approve"] = Field(
        "auto", description="auto: apply data actions at once; approve: wait for `imts loop approve`.",
        json_schema_extra=zh("auto：立即执行数据操作；approve：等待批准（`imts loop approve` 或控制台）。"),
    )  # fmt: skip
    heldout: list[str] = Field(
        default_factory=list, description="Extra evaluation sets (NAME[@N]) reported every iteration.",
        json_schema_extra=zh("每轮都报告的外部评测集（NAME[@N]）。"),
    )  # fmt: skip
    probe: str | None = Field(
        PROBE_DATASET, description="General-ability probe (preference rows); '' for none.",
        json_schema_extra=zh("通用能力探针（偏好数据行）；'' 表示不使用。"),
    )  # fmt: skip
    replay: list[str] = Field(
        default_factory=list,
        description="Datasets to draw replay rows from when forgetting shows (default: every other "
        "dataset of the project that is not an evaluation set).",
        json_schema_extra=zh("出现遗忘时从中抽取回放行的数据集（默认：项目中除评测集外的所有其他数据集）。"),
    )
    # A plain default, not a factory, so the JSON schema shows it (pydantic copies it per instance).
    train: list[str] = Field(
        ["max_steps=80", "save_every=40", "eval_every=40"],
        description="Training overrides (`imts train --keys`), the same every iteration.",
        json_schema_extra=zh("训练参数覆盖（`imts train --keys`），每轮相同。"),
    )
    continue_training: bool = Field(
        True, description="Each iteration after the first goes on from the best model so far (its LoRA "
        "adapters) on the new data version; false: every iteration trains from the base model.",
        json_schema_extra=zh(
            "第一轮之后，每轮在新数据版本上从目前最好的模型（其 LoRA 适配器）继续训练；"
            "false：每轮都从基座模型训练。"
        ),
    )  # fmt: skip
    eval_items: int | None = Field(
        None, ge=1, description="Evaluate at most this many items of the validation and test splits and "
        "the probe (default: all).",
        json_schema_extra=zh("验证集、测试集和探针各最多评测这么多题（默认全部）。"),
    )  # fmt: skip
    heldout_items: int | None = Field(
        None, ge=1, description="Evaluate at most this many items of each held-out set (default: all: the "
        "set that shows whether a gain generalises is scored on every item).",
        json_schema_extra=zh("每个外部评测集最多评测这么多题（默认全部：检验提升能否泛化的评测集逐题评分）。"),
    )  # fmt: skip
    tools: list[str] = Field(
        ["calculator"], description="Decoding tools every evaluation runs with, the base model's too: "
        "calculator (the exact value after each arithmetic expression a model ends with '='); [] for none.",
        json_schema_extra=zh("每次评测（包括基座模型）解码时使用的工具：calculator（模型写出以“=”结尾的算式后，"
                             "由计算器填入精确结果）；[] 表示不用。"),
    )  # fmt: skip
    augment_share: float = Field(
        0.15, gt=0, lt=1, description="Target share a weak category is augmented to.",
        json_schema_extra=zh("薄弱类别扩充到的目标占比。"),
    )  # fmt: skip
    teacher: Literal["embedded", "openai", "local"] = Field(
        "embedded", description="Who writes the repairs' chains of thought and re-words generated questions: "
        "embedded (rules, no model), openai (an OpenAI-compatible endpoint, key from IMTS_CHAT_API_KEY), "
        "local (a model of the registry). A model's output is kept only when the verifier confirms it.",
        json_schema_extra=zh("由谁为数据修复写思维链、改写生成的题目：embedded（规则，无需模型）、"
                             "openai（兼容 OpenAI 的接口，密钥取自 IMTS_CHAT_API_KEY）、"
                             "local（注册表中的模型）。模型的输出须经校验器确认才保留。"),
    )  # fmt: skip
    teacher_url: str | None = Field(
        None, description="The openai teacher's endpoint (http://HOST:PORT/v1).",
        json_schema_extra=zh("openai 教师模型的接口地址（http://HOST:PORT/v1）。"),
    )  # fmt: skip
    teacher_model: str | None = Field(
        None, description="The teacher's model: its name at the endpoint (openai) or a registry ref (local).",
        json_schema_extra=zh("教师模型：接口上的模型名（openai）或注册表引用（local）。"),
    )  # fmt: skip
    seed: int = Field(0, description="Random seed of splits, sampling and training.",
                      json_schema_extra=zh("划分、抽样和训练的随机种子。"))  # fmt: skip

    @field_validator("intent")
    @classmethod
    def _intent(cls, v: str) -> str:
        if not v.strip():
            raise InputError("the intent is empty: say what the model should learn", field="intent")
        return v.strip()

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list[str]) -> list[str]:
        from imts.inference.tools import check

        return check(v)

    @model_validator(mode="after")
    def _teacher(self) -> LoopSpec:
        if self.teacher == "openai" and not self.teacher_url:
            raise InputError("the openai teacher needs its endpoint (teacher_url)", field="teacher_url")
        if self.teacher == "local" and not self.teacher_model:
            raise InputError("the local teacher needs a model (a registry ref)", field="teacher_model")
        return self

    def loop_name(self) -> str:
        return self.name or self.data.split("@")[0].split(":")[0]
