"""Waking the status mirror of a shard: an asynchronous invoke of the mirror function.

Reconcile calls this after it creates TaskActions, for their shards. A shard whose watcher holds
its lease needs nothing; an idle one (its watcher stopped when nothing was left to mirror) gets
an invocation at once, so the first status after an idle spell is not up to a minute late. The
lease read is a hint: a watcher that is just stopping may miss the new resource, and then the
scheduled invocation picks it up within the minute. Nothing is lost either way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from functools import cached_property
from typing import Any, Protocol


class ShardLeases(Protocol):
    """Whether a shard's watcher holds its lease (runplane.table.leases.MirrorLeases)."""

    def active(self, shard: int) -> bool: ...


logger = logging.getLogger(__name__)

# One container wakes a shard at most this often: a burst of batches costs one invoke, not one
# per batch, and a woken watcher needs a moment to take its lease.
MIN_WAKE_INTERVAL_SECONDS = 5.0


class MirrorWaker:
    def __init__(self, *, function_name: str, leases: ShardLeases, client: Any = None) -> None:
        self._function_name = function_name
        self._leases = leases
        self._client = client
        self._woken_at: dict[int, float] = {}
        self._lock = threading.Lock()

    @cached_property
    def client(self) -> Any:
        if self._client is not None:
            return self._client
        from runplane.aws.clients import client

        return client("lambda")

    def wake(self, shards: Iterable[int]) -> list[int]:
        """Invoke the mirror for each shard that has no active watcher; returns those woken.
        Failures are logged, never raised: the schedule is the safety net."""
        woken = []
        for shard in sorted(set(shards)):
            now = time.monotonic()
            with self._lock:
                if now - self._woken_at.get(shard, -MIN_WAKE_INTERVAL_SECONDS) < MIN_WAKE_INTERVAL_SECONDS:
                    continue
                self._woken_at[shard] = now
            try:
                if self._leases.active(shard):
                    continue
                self.client.invoke(
                    FunctionName=self._function_name,
                    InvocationType="Event",
                    Payload=json.dumps({"shard": shard}).encode(),
                )
                woken.append(shard)
            except Exception:
                logger.exception("could not wake the status mirror", extra={"shard": shard})
        return woken
