"""The local backend's registry: base models, model versions, aliases, tags, archive, delete,
export, compare, card, and deployments."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imts.cli.backend.base import LocalScopes

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from imts.evals.card import ModelCardView
    from imts.evals.versions import VersionComparison
    from imts.registry import export as model_export
    from imts.registry.deployments import DeploymentView
    from imts.registry.views import (
        AliasProtectionView,
        AliasState,
        AliasView,
        BaseModelView,
        ModelVersionView,
    )


class LocalRegistry(LocalScopes):
    """The model registry and deployments of this machine's workspace."""

    def list_base_models(self) -> list[BaseModelView]:
        from imts.registry import service

        return service.list_base_models(self.ctx)

    def list_model_versions(self, tenant: str, project: str, archived: bool) -> list[ModelVersionView]:
        from imts.registry import service

        return service.list_model_versions(self._project(tenant, project), include_archived=archived)

    def show_model(self, tenant: str, project: str, ref: str) -> ModelVersionView:
        from imts.registry import service

        return service.get_model_version(self._project(tenant, project), ref)

    def pull_base_model(self, name: str, progress: Any = None) -> BaseModelView:
        from imts.registry import service

        return service.pull_base_model(self.ctx, name, progress)

    def set_alias(self, tenant: str, project: str, version: str, alias: str) -> AliasView:
        from imts.registry import service

        return service.set_alias(self._project(tenant, project), version, alias)

    def remove_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasView:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.remove_alias(ctx, service.get_model_version(ctx, model).name, alias)

    def alias_history(
        self, tenant: str, project: str, model: str, alias: str | None, at: datetime | None
    ) -> list[AliasView]:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.alias_history(ctx, service.get_model_version(ctx, model).name, alias, at)

    def alias_state(self, tenant: str, project: str) -> AliasState:
        from imts.registry import service

        return service.alias_state(self._project(tenant, project))

    def protect_alias(
        self, tenant: str, project: str, model: str, alias: str, min_role: str
    ) -> AliasProtectionView:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.protect_alias(ctx, service.get_model_version(ctx, model).name, alias, min_role)

    def unprotect_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasProtectionView:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.unprotect_alias(ctx, service.get_model_version(ctx, model).name, alias)

    def tag_model(
        self, tenant: str, project: str, version: str, add: list[str], remove: list[str]
    ) -> ModelVersionView:
        from imts.registry import service

        return service.tag_model_version(self._project(tenant, project), version, add, remove)

    def archive_model(self, tenant: str, project: str, version: str, archived: bool) -> ModelVersionView:
        from imts.registry import service

        return service.archive_model_version(self._project(tenant, project), version, archived=archived)

    def delete_model(self, tenant: str, project: str, version: str) -> ModelVersionView:
        from imts.registry import service

        return service.delete_model_version(self._project(tenant, project), version)

    def export_model(
        self, tenant: str, project: str, version: str, fmt: str, out: Path | None, gguf_type: str
    ) -> model_export.ExportResult:
        from imts.registry import service

        return service.export_model_version(self._project(tenant, project), version, fmt, out, gguf_type)

    def compare_models(self, tenant: str, project: str, a: str, b: str, lang: str) -> VersionComparison:
        from imts.evals.report.i18n import check_lang
        from imts.evals.versions import compare_versions

        return compare_versions(self._project(tenant, project), a, b, check_lang(lang))

    def model_card(self, tenant: str, project: str, version: str) -> ModelCardView:
        from imts.evals.card import model_card

        return model_card(self._project(tenant, project), version)

    def list_deployments(self, tenant: str, project: str) -> list[DeploymentView]:
        from imts.registry import service

        return service.list_deployments(self._project(tenant, project))

    def add_deployment(
        self, tenant: str, project: str, model: str, alias: str | None, name: str | None
    ) -> DeploymentView:
        from imts.registry import service

        return service.add_deployment(self._project(tenant, project), model, alias, name)

    def remove_deployment(self, tenant: str, project: str, name: str) -> DeploymentView:
        from imts.registry import service

        return service.remove_deployment(self._project(tenant, project), name)
