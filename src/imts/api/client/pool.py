"""The API client's pool: allocation, costs and quotas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imts.api.client.base import ApiBase

if TYPE_CHECKING:  # imported where used: a remote command loads only what it needs
    from imts.jobs.service import CostSummary
    from imts.services.pool import PoolState, QuotaUpdate, QuotaView


class ApiPool(ApiBase):
    """The server's pool as the caller may see it."""

    def pool_state(self, tenant: str) -> PoolState:
        """The whole pool when the caller is a platform administrator, else as ``tenant`` sees it (its
        own jobs; the other tenants as totals)."""
        from imts.services.pool import PoolState

        path = "/pool" if self.me().user.is_platform_admin else f"/tenants/{tenant}/pool"
        return self._get(PoolState, path)  # type: ignore[no-any-return]

    def tenant_costs(self, tenant: str) -> CostSummary:
        from imts.jobs.service import CostSummary

        return self._get(CostSummary, f"/tenants/{tenant}/costs")  # type: ignore[no-any-return]

    def quota(self, tenant: str) -> QuotaView:
        from imts.services.pool import QuotaView

        return self._get(QuotaView, f"/tenants/{tenant}/quota")  # type: ignore[no-any-return]

    def set_quota(self, tenant: str, change: QuotaUpdate) -> QuotaView:
        """Change the tenant's quotas (manage_resources; weight and CPU/GPU-hours: platform
        administrators): only the fields ``change`` sets are sent, the others keep their value."""
        from imts.services.pool import QuotaView

        body = change.model_dump(mode="json", exclude_unset=True)
        return self._call(QuotaView, "PUT", f"/tenants/{tenant}/quota", json=body)  # type: ignore[no-any-return]
