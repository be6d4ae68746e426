"""DynamoDB read units per minute of a parent waiting on its children, in runs of 100 and 1,000
actions: the watch the SDK holds inside a parent (ActionsService/WatchForUpdates), streamed.

    .venv/bin/python -m benchmarks.watch_reads [--json]

Each run has its root, the watched parent (a child of the root) with 10 children, and the rest of
its actions under the root (other families: what a large fan-out beside the parent looks like).
For one simulated minute the watch runs through the real code (``RunReader``, streaming, polling
every 50 ms after each change, backing off to ``CHANGE_POLL_SECONDS`` while quiet) on moto, while every second one of the parent's children and one
action of another family change phase. Every read goes through a counting client that bills it as
DynamoDB does: a GetItem on the whole item (1 unit per 4 KB, half when eventually consistent); a
Query on the sum of what it reads (the whole items of the table; the projected entries of an
index, always eventually consistent), rounded up to 4 KB, at least half a unit. moto's
ConsumedCapacity is a constant, hence the sizes.

Side by side, the reads of the earlier watch, computed from the same run: a strongly consistent
Query of the whole run's actions every 0.5 s, and a new stream (the same Query) every 5 s (4 s
of watch and the SDK's 1 s backoff).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

FAMILY_SIZE = 10  # the watched parent's children
MINUTE = 60.0
POLL_SECONDS = 1.0  # template.yaml: CHANGE_POLL_SECONDS (the quiet poll; 50 ms after each change)
OLD_POLL_SECONDS = 0.5
OLD_STREAM_SECONDS = 5.0  # 4 s window + the SDK's 1 s backoff
READ_BLOCK = 4096


def _blocks(size: int) -> int:
    return max(1, -(-size // READ_BLOCK))


class ReadCountingClient:
    """A DynamoDB client that adds up the read units of GetItem and Query (see the module docstring)."""

    def __init__(self, client: Any, *, table: str) -> None:
        self._client = client
        self._table = table
        self.units = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_item(self, **kwargs: Any) -> Any:
        from runplane.table.outcomes import item_size

        response = self._client.get_item(**kwargs)
        whole = self._client.get_item(TableName=self._table, Key=kwargs["Key"], ConsistentRead=True).get("Item")
        factor = 1.0 if kwargs.get("ConsistentRead") else 0.5
        self.units += factor * _blocks(item_size(whole) if whole else 0)
        self.calls += 1
        return response

    def query(self, **kwargs: Any) -> Any:
        from runplane.table.outcomes import item_size
        from runplane.table.records import FAMILY_INDEX_NAME, FAMILY_INDEX_PROJECTION, FAMILY_KEY

        response = self._client.query(**kwargs)
        items = response.get("Items", [])
        if kwargs.get("IndexName") == FAMILY_INDEX_NAME:
            keep = {"pk", "sk", FAMILY_KEY, "updated_at", *FAMILY_INDEX_PROJECTION}
            size = sum(item_size({k: v for k, v in item.items() if k in keep}) for item in items)
            factor = 0.5
        else:
            size = sum(item_size(item) for item in self._whole(items))
            factor = 1.0 if kwargs.get("ConsistentRead") else 0.5
        self.units += factor * _blocks(size)
        self.calls += 1
        return response

    def _whole(self, items: list[Any]) -> list[Any]:
        """The whole items of a projected Query (DynamoDB bills them, not what it returns)."""
        found = []
        for item in items:
            key = {"pk": item["pk"], "sk": item["sk"]} if "pk" in item else None
            whole = self._client.get_item(TableName=self._table, Key=key).get("Item") if key else None
            found.append(whole or item)
        return found


def _run(store: Any, *, actions: int, start: datetime) -> tuple[str, list[str], list[str]]:
    """A running run of ``actions`` actions: the root, the parent ``w`` and its children, the rest."""
    from runplane.flyte import phases
    from runplane.flyte.identifiers import ActionKey
    from runplane.table.records import ActionRecord
    from tests.builders import DOMAIN, PROJECT

    run = f"wr{uuid.uuid4().hex[:12]}"
    base = f"s3://bench/{run}"

    def put(name: str, parent: str | None, phase: int) -> None:
        key = ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name)
        record = ActionRecord(
            key=key, parent=parent, phase=phase, run_output_base=base, created_at=start, task_name="bench.task"
        )
        store.client.put_item(TableName=store.table_name, Item=record.to_item())

    put("a0", None, phases.RUNNING)
    put("w", "a0", phases.RUNNING)
    family = [f"w{i:03d}" for i in range(FAMILY_SIZE)]
    others = [f"o{i:04d}" for i in range(actions - FAMILY_SIZE - 2)]
    for name in family:
        put(name, "w", phases.QUEUED)
    for name in others:
        put(name, "a0", phases.QUEUED)
    return run, family, others


def watch_minute(table: str, *, actions: int) -> dict[str, float]:
    import boto3
    from flyteidl2.actions import actions_service_pb2 as actions_pb

    from functions.read_runs.service import RunReader
    from runplane.connect.pages import PageTokens
    from runplane.flyte import phases
    from runplane.flyte.identifiers import ActionKey, RunKey
    from runplane.table.actions import ActionStore
    from runplane.table.outcomes import StatusUpdate
    from tests.builders import DOMAIN, PROJECT, action_id

    raw = boto3.client("dynamodb")
    writer = ActionStore(table_name=table, client=raw)
    start = datetime.now(UTC)
    run, family, others = _run(writer, actions=actions, start=start)
    counting = ReadCountingClient(raw, table=table)
    store = ActionStore(table_name=table, client=cast(Any, counting))
    elapsed = [0.0]
    changed = [0]

    def now() -> datetime:
        return start + timedelta(seconds=elapsed[0])

    def sleep(seconds: float) -> None:
        before = int(elapsed[0])
        elapsed[0] += seconds
        for second in range(before, int(elapsed[0])):  # a child and another family's action, each second
            for names in (family, others):
                name = names[second % len(names)]
                phase = (phases.INITIALIZING, phases.RUNNING)[(second // len(names)) % 2]
                key = ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name)
                writer.update_status(key, StatusUpdate(phase=phase), now=now())
            changed[0] += 1

    reader = RunReader(
        store=store,
        tokens=PageTokens(secret=b"bench"),
        watch_window_seconds=MINUTE,
        streaming=True,
        change_poll_seconds=POLL_SECONDS,
        sleep=sleep,
        monotonic=lambda: elapsed[0],
        clock=now,
    )
    request = actions_pb.WatchForUpdatesRequest(parent_action_id=action_id(run, "w"))
    updates = 0
    for response in reader.watch_for_updates(request):
        updates += response.HasField("action_update")
        if elapsed[0] >= MINUTE:  # a busy stream stays open past its window: the minute is what counts
            break
    watch_units, watch_calls = counting.units * MINUTE / elapsed[0], round(counting.calls * MINUTE / elapsed[0])

    # the earlier watch: a consistent Query of the whole run per poll and per new stream
    counting.units = 0.0
    ActionStore(table_name=table, client=cast(Any, counting)).list_action_states(
        RunKey(project=PROJECT, domain=DOMAIN, name=run)
    )
    per_query = counting.units
    old_queries = MINUTE / OLD_POLL_SECONDS + MINUTE / OLD_STREAM_SECONDS
    return {
        "actions": actions,
        "read_units_per_minute": round(watch_units, 1),
        "reads_per_minute": watch_calls,
        "updates_sent": updates,
        "changes_written": changed[0] * 2,
        "earlier_read_units_per_minute": round(per_query * old_queries, 1),
    }


def measure() -> dict[str, Any]:
    from benchmarks.reconcile import OutOfProcessMoto
    from local_stack.aws import aws_environment, provision

    moto = OutOfProcessMoto()
    try:
        os.environ.update(aws_environment(moto.endpoint))
        resources = provision(endpoint=moto.endpoint, table_name="bench-watch", bucket="bench-watch")
        small = watch_minute(resources.table_name, actions=100)
        large = watch_minute(resources.table_name, actions=1000)
    finally:
        moto.stop()
    return {
        "runs": [small, large],
        "ratio": round(large["read_units_per_minute"] / small["read_units_per_minute"], 3),
        "earlier_ratio": round(large["earlier_read_units_per_minute"] / small["earlier_read_units_per_minute"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    results = measure()
    if args.json:
        print(json.dumps(results))
        return 0
    for figures in results["runs"]:
        print(
            f"{figures['actions']:>5} actions: {figures['read_units_per_minute']:>7} read units a minute "
            f"({figures['updates_sent']} updates sent); before: {figures['earlier_read_units_per_minute']}"
        )
    print(f"ratio 1,000/100: {results['ratio']} (before: {results['earlier_ratio']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
