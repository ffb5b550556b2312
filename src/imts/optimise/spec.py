"""The typed spec of a data fix, what it reports, and how analysis findings become a spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imts.analysis.findings import Action, Finding
from imts.core.errors import InputError


class FixSpec(BaseModel):
    """What ``imts data fix`` does to a dataset version (every operation off unless asked for)."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="Dataset version to fix (NAME[@N]).")
    pii: bool = Field(False, description="Replace personal data with consistent, format-valid surrogates.")
    cot: bool = Field(False, description="Rewrite answer-only rows as question -> rationale -> answer.")
    cot_categories: list[str] = Field(default_factory=list, description="Only these categories (all: []).")
    cot_row_ids: list[str] = Field(default_factory=list, description="Only these rows (all: []).")
    augment: dict[str, float] = Field(
        default_factory=dict, description="Category -> target share of the training rows, e.g. division=0.15."
    )
    augment_lang: dict[str, float] = Field(
        default_factory=dict,
        description="Language -> target share of the training rows, e.g. zh=0.45: verified items from that "
        "language's rows, every category in its own proportion.",
    )
    findings: list[Finding] = Field(default_factory=list, description="Analysis findings to act on.")
    reinforce: list[str] = Field(
        default_factory=list,
        description="Training rows whose neighbourhood to reinforce: verified variants of each are added.",
    )
    reinforce_per_seed: int = Field(2, ge=1, le=20, description="Variants added per reinforced row.")
    replay: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Rows to mix in from other dataset versions (version -> row ids), e.g. general data "
        "against forgetting.",
    )
    seed: int = 0
    review_share: float = Field(
        0.0, ge=0, le=1, description="Share of generated / rewritten rows held for review (0.1-0.2 typical)."
    )
    teacher: Literal["embedded", "openai", "local"] = Field(
        "embedded", description="Who writes rationales and re-words generated questions."
    )
    teacher_url: str | None = Field(None, description="OpenAI-compatible endpoint of the teacher.")
    teacher_model: str | None = Field(None, description="Model name at the endpoint, or a registry ref.")
    mapping_public_key: str | None = Field(
        None, description="PEM public key (RSA): the PII mapping is kept, encrypted to it (reversible)."
    )
    into: str | None = Field(None, description="Write into this (new) dataset instead.")

    def resolved(self) -> FixSpec:
        """The spec with its findings turned into operations (explicit arguments win)."""
        spec = self.model_copy(deep=True)
        for f in self.findings:
            if f.action == Action.PII_REPLACE:
                spec.pii = True
            elif f.action == Action.COT_REWRITE:
                spec.cot = True
                spec.cot_row_ids = sorted(set(spec.cot_row_ids) | set(f.row_ids))
            elif f.action == Action.AUGMENT:
                cat, share = f.params.get("category"), f.params.get("target_share")
                if not cat or share is None:
                    raise InputError(
                        "an augment finding needs params.category and params.target_share",
                        field="findings.params",
                    )
                spec.augment.setdefault(str(cat), float(share))
        for name, shares in (("augment", spec.augment), ("augment_lang", spec.augment_lang)):
            for key, share in shares.items():
                if not 0 < share < 1:
                    raise InputError(
                        f"target share of '{key}' must be between 0 and 1, not {share}", field=name
                    )
        if not (spec.pii or spec.cot or spec.augment or spec.augment_lang or spec.reinforce or spec.replay):
            raise InputError(
                "nothing to do: ask for --pii, --cot, --augment CATEGORY=SHARE or --augment-lang LANG=SHARE, "
                "or give findings / 没有要做的操作：请指定 --pii、--cot、--augment 类别=占比或 "
                "--augment-lang 语言=占比，或提供分析结论"
            )
        return spec


def read_findings(path: Path) -> list[Finding]:
    """Findings from a JSON file (a list, or an object with ``findings``); errors name the entry."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"cannot read findings: {exc}", file=str(path), line=line) from None
    items = data.get("findings", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError("expected a list of findings", file=str(path), field="findings")
    out = []
    for n, item in enumerate(items):
        try:
            out.append(Finding.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{first['msg']}", file=str(path), field=f"findings[{n}].{where}") from None
    return out


class CategoryCot(BaseModel):
    answer_only: int = 0
    rewritten: int = 0
    share: float = 0.0


class CategoryAugment(BaseModel):
    target: float
    before: float
    after: float = 0.0
    wanted: int = 0
    accepted: int = 0
    tried: int = 0
    accept_rate: float = 0.0
    chained: int = 0  # of the accepted, items chained from one-step rows (a multi-step category)
    rejected: dict[str, int] = Field(default_factory=dict)


class Change(BaseModel):
    row_id: str
    change: Literal["added", "rewritten", "replaced", "replayed"]
    why: str


class FixReport(BaseModel):
    """What a fix did (``--apply``) or would do (``--plan``)."""

    source: str
    version: str | None = None
    version_id: str | None = None
    planned: bool = False
    pii: dict[str, int] = Field(default_factory=dict)  # entity -> spans replaced
    pii_rows: int = 0
    cot: dict[str, CategoryCot] = Field(default_factory=dict)
    not_rewritten: list[dict[str, str]] = Field(default_factory=list)  # row_id, reason
    augment: dict[str, CategoryAugment] = Field(default_factory=dict)
    reinforced: int = 0  # verified variants added around reinforced rows
    replayed: int = 0  # rows mixed in from other versions
    review: dict[str, int] = Field(default_factory=dict)  # pending / accepted / rejected
    changes: int = 0
    examples: list[dict[str, str]] = Field(default_factory=list)
    mapping: str | None = None  # artifact key of the encrypted PII mapping
