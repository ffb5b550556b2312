"""The typed HTTP client of the REST API, for the remote CLI (``imts --server URL``) and scripts.

    with ApiClient("http://127.0.0.1:8000", key) as api:
        for job in api.list_jobs("acme", "nlp"):
            print(job.id, job.state)

``ApiClient`` speaks the same method names as the CLI's local backend (``imts.cli.backend``) and returns
the same typed models the services return, so a command renders either. A refused request raises
``ApiError`` (an ``ImtsError``: the CLI prints its message, e.g. the file and line of a bad row).

Chunked uploads (``upload_file``) resume a broken connection: the client asks the server which chunks
it holds and sends only the missing ones; an upload interrupted for good is resumed by passing its id
(``upload_id=``) again.

One module per resource (``identity``, ``data``, ``jobs``, ``registry``, ``pool``), each a part of
``ApiClient`` over ``base.ApiBase`` (the HTTP client, typed calls, following a job); ``transport``
holds what needs no client object: errors, ``connect``, the chunked upload, server-sent events.
"""

from __future__ import annotations

from imts.api.client.data import ApiData
from imts.api.client.identity import ApiIdentity
from imts.api.client.jobs import ApiJobs
from imts.api.client.pool import ApiPool
from imts.api.client.registry import ApiRegistry
from imts.api.client.transport import API, CHUNK, ApiError, connect, file_sha256, start_upload, upload_file


class ApiClient(ApiIdentity, ApiData, ApiJobs, ApiRegistry, ApiPool):
    """The API's resources as typed methods over one ``httpx.Client`` (see the module's docstring)."""


__all__ = ["API", "CHUNK", "ApiClient", "ApiError", "connect", "file_sha256", "start_upload", "upload_file"]
