"""Read models of the registry: what leaves ``registry/`` instead of ORM rows (the API's response models)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from imts.store.models import BaseModelRecord, ModelVersion


class BaseModelView(BaseModel):
    """A recorded base model: a model that can be fine-tuned."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    name: str
    path: str
    architecture: str
    num_params: int
    context_length: int | None = None
    license: str | None = None
    source: str
    checksum: str
    info: dict[str, Any] = {}
    created_at: datetime | None = None

    @classmethod
    def of(cls, rec: BaseModelRecord) -> BaseModelView:
        return cls.model_validate(rec)


class ModelVersionView(BaseModel):
    """A trained model version of a project: adapter and/or merged weights, with its lineage."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    name: str
    version: int
    project_id: str
    base_model_id: str
    train_run_id: str
    dataset_version_id: str
    adapter_path: str | None = None
    merged_path: str | None = None
    stage: str = "none"
    spec: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    created_at: datetime | None = None

    @classmethod
    def of(cls, mv: ModelVersion) -> ModelVersionView:
        return cls.model_validate(mv)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


class ResolvedModel(BaseModel):
    """Any model reference turned into a loadable folder (merged weights for trained versions)."""

    model_config = ConfigDict(frozen=True)

    ref: str
    label: str
    path: Path
    base_model_id: str | None = None
    model_version_id: str | None = None
    adapter: Path | None = None  # a LoRA adapter applied over ``path`` (a version kept without merged/)
