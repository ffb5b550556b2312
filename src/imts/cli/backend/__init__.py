"""The one seam between a CLI command and where it acts: this machine's database (``LocalBackend``,
the services called directly, the local user acting as platform administrator) or an IMTS server
(``imts.api.client.ApiClient`` with ``--server`` / ``IMTS_SERVER`` and ``IMTS_API_KEY``). Both have
the same methods and return the same typed models; ``common.backend()`` picks one.

``protocol.py`` holds the ``Backend`` protocol; ``LocalBackend`` is put together from one part per
resource (``identity``, ``data``, ``jobs``, ``registry``, ``pool``), each over the contexts of
``base.LocalScopes``, as ``imts.api.client.ApiClient`` is on the server's side."""

from __future__ import annotations

from imts.cli.backend.data import LocalData
from imts.cli.backend.identity import LocalIdentity
from imts.cli.backend.jobs import LocalJobs
from imts.cli.backend.pool import LocalPool
from imts.cli.backend.protocol import Backend, OnQueued, OnRequeued
from imts.cli.backend.registry import LocalRegistry


class LocalBackend(LocalIdentity, LocalData, LocalJobs, LocalRegistry, LocalPool):
    """The services on this machine's database; the local user acts as platform administrator."""


__all__ = ["Backend", "LocalBackend", "OnQueued", "OnRequeued"]
