"""Per-key usage (requests, prompt and completion tokens) and limits, and the Prometheus metrics of
``imts serve``. Counted in this process (a restart starts from zero; ``/metrics`` is scraped)."""

from __future__ import annotations

import threading
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel


class KeyUsage(BaseModel):
    """What one key used since the server started."""

    key: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Meter:
    """Usage per key, sliding one-minute limits, and the metrics registry ``/metrics`` renders."""

    def __init__(self, requests_per_minute: int = 0, tokens_per_minute: int = 0) -> None:
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self.usage: dict[str, KeyUsage] = {}
        self._requests: dict[str, deque[float]] = {}  # admission times in the last minute
        self._tokens: dict[str, deque[tuple[float, int]]] = {}  # (time, tokens) of finished requests
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.requests = Counter("imts_serve_requests", "Chat completion requests", ["model", "key", "status"],
                                registry=self.registry)  # fmt: skip
        self.tokens = Counter("imts_serve_tokens", "Tokens processed", ["model", "key", "kind"],
                              registry=self.registry)  # fmt: skip
        self.latency = Histogram("imts_serve_request_seconds", "Request latency (whole response)", ["model"],
                                 registry=self.registry)  # fmt: skip
        self.batch = Histogram("imts_serve_batch_size", "Generations decoding together, at each admission "
                               "(a new batch, or requests joining a running one)", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64))  # fmt: skip

    def admit(self, key: str) -> str | None:
        """None if ``key`` may make a request now, else why not (its limit)."""
        now = time.monotonic()
        with self._lock:
            reqs, toks = self._requests.setdefault(key, deque()), self._tokens.setdefault(key, deque())
            while reqs and now - reqs[0] > 60:
                reqs.popleft()
            while toks and now - toks[0][0] > 60:
                toks.popleft()
            if self.rpm and len(reqs) >= self.rpm:
                return f"this key made {len(reqs)} requests in the last minute (limit {self.rpm})"
            used = sum(t for _, t in toks)
            if self.tpm and used >= self.tpm:
                return f"this key used {used} tokens in the last minute (limit {self.tpm})"
            reqs.append(now)
        return None

    def record(self, key: str, model: str, prompt: int, completion: int, seconds: float) -> None:
        with self._lock:
            u = self.usage.setdefault(key, KeyUsage(key=key))
            u.requests += 1
            u.prompt_tokens += prompt
            u.completion_tokens += completion
            self._tokens.setdefault(key, deque()).append((time.monotonic(), prompt + completion))
        self.requests.labels(model, key, "ok").inc()
        self.tokens.labels(model, key, "prompt").inc(prompt)
        self.tokens.labels(model, key, "completion").inc(completion)
        self.latency.labels(model).observe(seconds)

    def of(self, key: str) -> KeyUsage:
        with self._lock:
            return self.usage.get(key, KeyUsage(key=key)).model_copy()
