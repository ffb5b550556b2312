"""The API client's registry: base models, model versions, aliases, tags, archive, delete, export,
compare, card, and deployments."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imts.api.client.base import ApiBase
from imts.api.client.transport import API, _checked
from imts.registry.views import (
    AliasProtectionView,
    AliasState,
    AliasView,
    BaseModelView,
    ModelVersionView,
)

if TYPE_CHECKING:  # imported where used: a remote command loads only what it needs
    from imts.evals.card import ModelCardView
    from imts.evals.versions import VersionComparison
    from imts.registry.deployments import DeploymentView
    from imts.registry.export import ExportResult as ModelExport


class ApiRegistry(ApiBase):
    """The server's model registry and deployments."""

    def list_base_models(self) -> list[BaseModelView]:
        return self._get(list[BaseModelView], "/base-models")  # type: ignore[no-any-return]

    def list_model_versions(self, tenant: str, project: str, archived: bool) -> list[ModelVersionView]:
        path = f"{self._project(tenant, project)}/models"
        return self._get(list[ModelVersionView], path, archived=archived)  # type: ignore[no-any-return]

    def show_model(self, tenant: str, project: str, ref: str) -> ModelVersionView:
        return self._get(ModelVersionView, f"{self._project(tenant, project)}/models/{ref}")  # type: ignore[no-any-return]

    def pull_base_model(self, name: str, progress: Any = None) -> BaseModelView:
        """The server obtains the catalogued model into its own cache (platform administrators)."""
        return self._call(BaseModelView, "POST", "/base-models/pull", json={"name": name}, timeout=None)  # type: ignore[no-any-return]

    def set_alias(self, tenant: str, project: str, version: str, alias: str) -> AliasView:
        return self._call(AliasView, "PUT", f"{self._model(tenant, project, version)}/aliases/{alias}")  # type: ignore[no-any-return]

    def remove_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasView:
        return self._call(AliasView, "DELETE", f"{self._model(tenant, project, model)}/aliases/{alias}")  # type: ignore[no-any-return]

    def alias_history(
        self, tenant: str, project: str, model: str, alias: str | None, at: datetime | None
    ) -> list[AliasView]:
        path = f"{self._model(tenant, project, model)}/aliases"
        return self._get(list[AliasView], path, alias=alias, at=at)  # type: ignore[no-any-return]

    def alias_state(self, tenant: str, project: str) -> AliasState:
        return self._get(AliasState, f"{self._project(tenant, project)}/aliases")  # type: ignore[no-any-return]

    def protect_alias(
        self, tenant: str, project: str, model: str, alias: str, min_role: str
    ) -> AliasProtectionView:
        path = f"{self._model(tenant, project, model)}/aliases/{alias}/protection"
        return self._call(AliasProtectionView, "PUT", path, json={"min_role": min_role})  # type: ignore[no-any-return]

    def unprotect_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasProtectionView:
        path = f"{self._model(tenant, project, model)}/aliases/{alias}/protection"
        return self._call(AliasProtectionView, "DELETE", path)  # type: ignore[no-any-return]

    def tag_model(
        self, tenant: str, project: str, version: str, add: list[str], remove: list[str]
    ) -> ModelVersionView:
        path = f"{self._model(tenant, project, version)}/tags"
        return self._call(ModelVersionView, "PATCH", path, json={"add": add, "remove": remove})  # type: ignore[no-any-return]

    def archive_model(self, tenant: str, project: str, version: str, archived: bool) -> ModelVersionView:
        path = f"{self._model(tenant, project, version)}/{'archive' if archived else 'unarchive'}"
        return self._call(ModelVersionView, "POST", path)  # type: ignore[no-any-return]

    def delete_model(self, tenant: str, project: str, version: str) -> ModelVersionView:
        return self._call(ModelVersionView, "DELETE", self._model(tenant, project, version))  # type: ignore[no-any-return]

    def export_model(
        self, tenant: str, project: str, version: str, fmt: str, out: Path | None, gguf_type: str
    ) -> ModelExport:
        """Exported and checked on the server (into its ``exports/NAME-N/FORMAT``); with ``out``, its
        files are then downloaded into that folder of this machine (a tar, unpacked)."""
        from imts.registry.export import ExportResult as ModelExport

        base = self._model(tenant, project, version)
        body = {"format": fmt, "gguf_type": gguf_type}
        done: ModelExport = self._call(ModelExport, "POST", f"{base}/exports", json=body, timeout=None)
        if out is None:
            return done
        import tarfile
        import tempfile

        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as tmp:
            with self.http.stream("GET", f"{API}{base}/exports/{fmt}", timeout=None) as r:
                if not r.is_success:
                    r.read()
                    _checked(r)
                for block in r.iter_bytes():
                    tmp.write(block)
            tmp.seek(0)
            with tarfile.open(fileobj=tmp) as tar:
                members = tar.getmembers()
                for m in members:  # NAME-N-FORMAT/file -> out/file: the folder holds the files, as locally
                    m.name = m.name.split("/", 1)[1] if "/" in m.name else m.name
                tar.extractall(out, members=members, filter="data")
        return done.model_copy(update={"path": out})

    def compare_models(self, tenant: str, project: str, a: str, b: str, lang: str) -> VersionComparison:
        from imts.evals.versions import VersionComparison

        path = f"{self._model(tenant, project, a)}/compare"
        return self._get(VersionComparison, path, other=b, lang=lang)  # type: ignore[no-any-return]

    def model_card(self, tenant: str, project: str, version: str) -> ModelCardView:
        from imts.evals.card import ModelCardView

        return self._get(ModelCardView, f"{self._model(tenant, project, version)}/card")  # type: ignore[no-any-return]

    def list_deployments(self, tenant: str, project: str) -> list[DeploymentView]:
        from imts.registry.deployments import DeploymentView

        return self._get(list[DeploymentView], f"{self._project(tenant, project)}/deployments")  # type: ignore[no-any-return]

    def add_deployment(
        self, tenant: str, project: str, model: str, alias: str | None, name: str | None
    ) -> DeploymentView:
        from imts.registry.deployments import DeploymentView

        body = {"model": model, "alias": alias, "name": name}
        return self._call(DeploymentView, "POST", f"{self._project(tenant, project)}/deployments", json=body)  # type: ignore[no-any-return]

    def remove_deployment(self, tenant: str, project: str, name: str) -> DeploymentView:
        from imts.registry.deployments import DeploymentView

        return self._call(DeploymentView, "DELETE", f"{self._project(tenant, project)}/deployments/{name}")  # type: ignore[no-any-return]
