"""Token-bucket rate limiting per API key, and of failed authentications per key id and client address
(in process: each API replica limits independently)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service.errors import RateLimited


class RateLimiter:
    """``rate_per_minute`` sustained, ``burst`` at once; ``rate_per_minute == 0`` disables it."""

    def __init__(self, rate_per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise :class:`RateLimited` with the wait until the next one."""
        if self._rate <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise RateLimited((1.0 - tokens) / self._rate)
            if len(self._buckets) >= self._max_keys and key not in self._buckets:
                self._buckets.clear()  # bounded memory; a reset only ever lets requests through
            self._buckets[key] = (tokens - 1.0, now)

    def blocked(self, key: str) -> float | None:
        """Seconds until ``key`` has a token again when it has none now, else None (takes nothing)."""
        if self._rate <= 0:
            return None
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / self._rate
