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
    spec: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    tags: list[str] = []
    archived_at: datetime | None = None
    aliases: list[str] = []
    created_at: datetime | None = None

    @classmethod
    def of(cls, mv: ModelVersion, aliases: list[str] | None = None) -> ModelVersionView:
        view = cls.model_validate(mv)
        return view.model_copy(update={"aliases": sorted(aliases or [])}) if aliases else view

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


class AliasView(BaseModel):
    """One span of an alias on a version (``unset_at`` None: it points there now).

    ``set_seq`` / ``unset_seq`` are values of the project's alias-change sequence number
    (``AliasState.seq``) when the span began and ended.
    """

    model_config = ConfigDict(frozen=True, from_attributes=True)

    model: str
    alias: str
    version_id: str
    version: int
    set_at: datetime
    set_by: str
    set_seq: int
    unset_at: datetime | None = None
    unset_by: str | None = None
    unset_seq: int | None = None
    protected: bool = False

    @property
    def label(self) -> str:
        return f"{self.model}:{self.version}"


class AliasProtectionView(BaseModel):
    """A protected alias: moved only by a role at least ``min_role`` that may deploy."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    model: str
    alias: str
    min_role: str
    created_by: str
    created_at: datetime


class AliasState(BaseModel):
    """The project's aliases now, and the alias-change sequence number they are current as of.

    A server polls ``seq`` (one row read, ``registry.service.alias_seq``) and re-reads the aliases only
    when it grew.
    """

    seq: int
    aliases: list[AliasView]
