"""Lambda entry point of mirror_status: how the cluster's status comes back into the table.

Invoked two ways, both asynchronous:

- **every minute by an EventBridge Scheduler schedule** with ``{"shards": "all"}``: this
  invocation wakes the watchers of shards 1..N-1 that have none (an invoke each) and watches
  shard 0 itself;
- **by reconcile** with ``{"shard": k}`` when it created a TaskAction in shard k and nobody
  watched it, and by the scheduled invocation above.

Each invocation watches its shard (``watcher``) until shortly before its own timeout, then hands
over to the next through the lease and the checkpoint. Thin by design: parsing and the clients
here, the watch in ``watcher``, each event's writes in ``mirror``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict
from functools import cache
from typing import Any

from functions.mirror_status.mirror import StatusMirror
from functions.mirror_status.watcher import ShardWatcher
from runplane.aws.wake import MirrorWaker
from runplane.kube.client import TaskActionClient
from runplane.ops.logs import function_logger
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import MirrorSettings, mirror_settings
from runplane.table.actions import ActionStore
from runplane.table.leases import MirrorLeases

logger = function_logger("mirror_status")
metrics = function_metrics("mirror_status")  # EMF lines, written as each invocation ends

ALL_SHARDS = "all"


class BadInvocation(ValueError):
    """The event names no shard this stack has; logged, and the invocation fails."""


@cache
def components() -> tuple[MirrorSettings, TaskActionClient, StatusMirror, MirrorLeases]:
    """The Kubernetes client and its credentials are built once per container."""
    settings = mirror_settings()
    cluster = TaskActionClient.from_settings(settings)
    store = ActionStore(table_name=settings.actions_table)  # its DynamoDB client serves the leases too
    return (
        settings,
        cluster,
        StatusMirror(store=store, cluster=cluster),
        MirrorLeases(table_name=settings.actions_table, client=store.client),
    )


def shard_of(event: dict[str, Any], *, shards: int) -> tuple[int, bool]:
    """The shard this invocation watches, and whether it is the scheduled tick (which also wakes
    the other shards)."""
    if event.get("shards") == ALL_SHARDS:
        return 0, True
    shard = event.get("shard")
    if not isinstance(shard, int) or isinstance(shard, bool) or not 0 <= shard < shards:
        raise BadInvocation(f"expected {{'shard': 0..{shards - 1}}} or {{'shards': 'all'}}, got {event!r}")
    return shard, False


def watch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, cluster, mirror, leases = components()
    shard, tick = shard_of(event, shards=settings.shards)
    if tick and settings.shards > 1:
        MirrorWaker(function_name=context.function_name, leases=leases).wake(range(1, settings.shards))
    budget = context.get_remaining_time_in_millis() / 1000 - settings.stop_margin_seconds
    watcher = ShardWatcher(
        shard=shard,
        holder=getattr(context, "aws_request_id", "") or secrets.token_hex(16),  # not uuid: ~14 ms to import
        cluster=cluster,
        mirror=mirror,
        leases=leases,
        idle_grace_seconds=settings.idle_grace_seconds,
        checkpoint_interval_seconds=settings.checkpoint_interval_seconds,
    )
    report = watcher.run(deadline=time.monotonic() + max(0.0, budget))
    logger.info("watch ended", extra=asdict(report))
    return asdict(report)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return watch(event, context)
