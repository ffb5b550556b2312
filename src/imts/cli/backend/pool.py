"""The local backend's pool: allocation, costs and quotas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imts.cli.backend.base import LocalScopes

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from imts.jobs.service import CostSummary
    from imts.services.pool import PoolState, QuotaUpdate, QuotaView


class LocalPool(LocalScopes):
    """This machine's pool, as its platform administrator sees it."""

    def pool_state(self, tenant: str) -> PoolState:
        """The whole pool: the local user is a platform administrator. One scheduling pass first (one
        command, one pass), so that what it shows is current."""
        from imts.jobs.service import settle
        from imts.services import pool

        settle(self.ctx, wait=True)
        return pool.pool_state(self._platform())

    def tenant_costs(self, tenant: str) -> CostSummary:
        from imts.jobs.service import costs

        return costs(self._tenant(tenant))

    def quota(self, tenant: str) -> QuotaView:
        from imts.services import pool

        return pool.quota(self._tenant(tenant))

    def set_quota(self, tenant: str, change: QuotaUpdate) -> QuotaView:
        """Change the tenant's quotas in the pool file (the local user may change every field)."""
        from imts.services import pool

        return pool.set_quota(self._tenant(tenant), change)
