"""Reading a server-sent event stream from the real app (the wire format, parsed by hand)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient


def events(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every event of the stream at ``url`` until the server ends it: ``{"event", "id", "data"}``."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if "data" in current:
                    out.append(current)
                current = {}
            elif line.startswith(":"):
                continue  # keep-alive comment
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                current[field] = json.loads(value) if field == "data" else value
    if "data" in current:
        out.append(current)
    return out
