"""DynamoDB write units of an action's life, end to end, computed from the items as stored.

    .venv/bin/python -m benchmarks.write_units [--json]

Every DynamoDB write the code makes goes through a counting client that reads the item before
and after (consistent reads, not counted) and bills it as DynamoDB does: one write unit per
started KB of the larger of the two; a refused conditional write the size of the item it found
(at least one); a transaction's writes and condition checks twice that; and, for a run's root,
one more write of its run-index entry (the projected attributes, ``RUN_INDEX_PROJECTION``) when
the write creates the entry or changes a projected attribute; and, for a child, its family-index
entry (``ChangesByFamily``: a put, or a delete and a put when ``updated_at`` moves). moto's ConsumedCapacity is a
constant, hence the reads.

The lives, driven through the real code on moto:

- **root, end to end**: CreateRun; the status mirror (``StatusMirror.apply``) seeing the
  TaskAction as Flyte's executor writes it (added, finalizer, Queued, Initializing, Executing,
  Succeeded, its terminal labels; the local executor's sequence); the executor's events, one
  EventsProxyService/Record per transition (Queued, Initializing, Running, Succeeded), shaped
  as it sends them (times, output references, a cluster event).
- **child, end to end**: the same for a child enqueued under a running root (ActionsService/
  Enqueue: one transaction with the parent's check), including the parent promotion its first
  sighting may make.
- **the earlier life** (the figure before this benchmark counted end to end): CreateRun, three
  UpdateActionStatus (waiting, initializing, running), the terminal one, and five events in one
  RecordActionEvents.

It runs on whatever ``functions`` and ``runplane`` are first on the path, so the handlers
benchmark runs it on a baseline's code too (``--json``, in a subprocess), side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

KB = 1024
INDEX_KEYS = ("pk", "sk", "run_index_pk", "run_index_sk")


def units_of(item: Mapping[str, Any] | None) -> int:
    from runplane.table.actions import write_units

    return write_units(item) if item else 0


class CountingClient:
    """A DynamoDB client that bills every write as DynamoDB would (see the module docstring)."""

    def __init__(self, client: Any, *, table: str) -> None:
        self._client = client
        self._table = table
        self.table_units = 0
        self.index_units = 0
        self.family_units = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def take(self) -> tuple[int, int, int]:
        """The units billed since the last call: (table, run index, family index)."""
        units = (self.table_units, self.index_units, self.family_units)
        self.table_units = self.index_units = self.family_units = 0
        return units

    def _item(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._table, Key=dict(key), ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def _bill(self, key: Mapping[str, Any], write: Callable[[], Any], *, factor: int = 1) -> Any:
        from runplane.table.records import RUN_INDEX_PROJECTION

        before = self._item(key)
        try:
            result = write()
        except self._client.exceptions.ConditionalCheckFailedException:
            self.table_units += factor * max(1, units_of(before))
            raise
        after = self._item(key)
        self.table_units += factor * max(1, units_of(before), units_of(after))

        def projected(item: dict[str, Any] | None) -> dict[str, Any] | None:
            if not item or "run_index_pk" not in item:
                return None
            return {k: v for k, v in item.items() if k in INDEX_KEYS or k in RUN_INDEX_PROJECTION}

        old, new = projected(before), projected(after)
        if old != new:
            self.index_units += max(units_of(old), units_of(new))
        self.family_units += family_index_units(before, after)
        return result

    def put_item(self, **kwargs: Any) -> Any:
        item = kwargs["Item"]
        return self._bill({"pk": item["pk"], "sk": item["sk"]}, lambda: self._client.put_item(**kwargs))

    def update_item(self, **kwargs: Any) -> Any:
        return self._bill(kwargs["Key"], lambda: self._client.update_item(**kwargs))

    def delete_item(self, **kwargs: Any) -> Any:
        return self._bill(kwargs["Key"], lambda: self._client.delete_item(**kwargs))

    def transact_write_items(self, **kwargs: Any) -> Any:
        items = kwargs["TransactItems"]
        keys = []
        for entry in items:
            ((kind, operation),) = entry.items()
            key = operation["Key"] if "Key" in operation else {k: operation["Item"][k] for k in ("pk", "sk")}
            keys.append((kind, key, self._item(key)))
        try:
            result = self._client.transact_write_items(**kwargs)
        except self._client.exceptions.TransactionCanceledException:
            raise  # a cancelled transaction: not part of a life measured here
        for kind, key, before in keys:
            after = before if kind == "ConditionCheck" else self._item(key)
            self.table_units += 2 * max(1, units_of(before), units_of(after))
            self.family_units += family_index_units(before, after)
        return result


def family_index_units(before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """The family index's writes (``ChangesByFamily``, where the code has it): its entry is put,
    rewritten, or, when its sort key ``updated_at`` changes, deleted and put again."""
    from runplane.table import records

    projection = getattr(records, "FAMILY_INDEX_PROJECTION", None)
    if projection is None:
        return 0
    keys = ("pk", "sk", records.FAMILY_KEY, "updated_at")

    def projected(item: dict[str, Any] | None) -> dict[str, Any] | None:
        if not item or records.FAMILY_KEY not in item:
            return None
        return {k: v for k, v in item.items() if k in keys or k in projection}

    old, new = projected(before), projected(after)
    if old == new:
        return 0
    if old and new and old.get("updated_at") != new.get("updated_at"):
        return units_of(old) + units_of(new)  # the entry moves: a delete and a put
    return max(units_of(old), units_of(new))


class NoCluster:
    """The mirror's cluster client: only the terminal label is written, and it costs no unit."""

    namespace = "flyte"

    def label(self, name: str, labels: dict[str, str]) -> bool:
        return True


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def executor_states(resource: dict[str, Any], *, start: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The watch events of one TaskAction as Flyte's executor drives it (the local executor's
    sequence): added, finalizer, Queued, Initializing, Executing, Succeeded, terminal labels."""
    resource = json.loads(json.dumps(resource))
    metadata = resource["metadata"]
    metadata.update(uid=str(uuid.uuid4()), creationTimestamp=_time(start), resourceVersion="1")
    events = [("ADDED", json.loads(json.dumps(resource)))]
    metadata["finalizers"] = ["flyte.org/finalizer"]
    events.append(("MODIFIED", json.loads(json.dumps(resource))))
    progress = [("Queued", 1), ("Initializing", 2), ("Executing", 3)]
    for reason, second in progress:
        resource["status"] = {
            "attempts": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": reason,
                    "message": f"{reason.lower()} on the local executor",
                    "lastTransitionTime": _time(start + timedelta(seconds=second)),
                }
            ],
        }
        events.append(("MODIFIED", json.loads(json.dumps(resource))))
    ended = _time(start + timedelta(seconds=10))
    resource["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "Completed",
            "message": "done",
            "lastTransitionTime": ended,
        },
        {"type": "Succeeded", "status": "True", "reason": "Completed", "message": "done", "lastTransitionTime": ended},
    ]
    events.append(("MODIFIED", json.loads(json.dumps(resource))))
    metadata["labels"]["flyte.org/termination-status"] = "terminated"  # the executor's, before the mirror's
    events.append(("MODIFIED", json.loads(json.dumps(resource))))
    return events


def executor_events(resource: dict[str, Any], *, start: datetime) -> list[Any]:
    """The ActionEvents Flyte's executor sends for the same life, one per transition."""
    from flyteidl2.common import identifier_pb2
    from flyteidl2.task import common_pb2 as task_common
    from flyteidl2.workflow import run_definition_pb2 as wf

    from local_stack.executor import AttemptPaths
    from runplane.flyte import phases

    spec = resource["spec"]
    paths = AttemptPaths.of(namespace="flyte", spec=spec, attempt=1)
    events = []
    for version, phase in enumerate((phases.QUEUED, phases.INITIALIZING, phases.RUNNING, phases.SUCCEEDED)):
        event = wf.ActionEvent(
            id=identifier_pb2.ActionIdentifier(
                run=identifier_pb2.RunIdentifier(project=spec["project"], domain=spec["domain"], name=spec["runName"]),
                name=spec["actionName"],
            ),
            attempt=1,
            phase=phase,
            version=version,
            outputs=task_common.OutputReferences(
                output_uri=f"{paths.output_prefix}/outputs.pb", report_uri=f"{paths.output_prefix}/report.html"
            ),
        )
        now = start + timedelta(seconds=version * 3)
        event.start_time.FromDatetime(start)
        event.updated_time.FromDatetime(now)
        event.reported_time.FromDatetime(now)
        if phases.is_terminal(phase):
            event.end_time.FromDatetime(now)
        event.cluster_events.add(
            message=f"{phases.phase_name(phase).lower()} on the local executor"
        ).occurred_at.FromDatetime(now)
        events.append(event)
    return events


def lives(table: str, bucket: str) -> dict[str, dict[str, int]]:
    import boto3
    from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
    from flyteidl2.workflow import internal_run_service_pb2 as internal
    from flyteidl2.workflow import run_definition_pb2 as wf

    from functions.create_run.service import CreateRunService
    from functions.mirror_status.mirror import StatusMirror
    from functions.reconcile.taskaction import build_taskaction
    from functions.update_action.service import ActionLifecycleService
    from runplane.aws.blobs import BlobStore
    from runplane.flyte import phases
    from runplane.flyte.identifiers import ActionKey
    from runplane.table.actions import ActionStore
    from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, create_run_request

    client = CountingClient(boto3.client("dynamodb"), table=table)
    store = ActionStore(table_name=table, client=cast(Any, client), blobs=BlobStore(), spec_prefix=f"s3://{bucket}")
    create = CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{bucket}")
    lifecycle = ActionLifecycleService(store=store)
    mirror = StatusMirror(store=store, cluster=NoCluster())  # the label is all it writes
    start = datetime.now(UTC).replace(microsecond=0)

    def step(results: dict[str, int], name: str) -> None:
        table_units, index_units, family_units = client.take()
        results[name] = results.get(name, 0) + table_units
        results["run_index"] = results.get("run_index", 0) + index_units
        results["family_index"] = results.get("family_index", 0) + family_units

    def record_of(run: str, name: str) -> Any:
        record = store.get_action(ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name))
        assert record is not None, (run, name)
        return record

    def mirror_and_events(results: dict[str, int], resource: dict[str, Any]) -> None:
        for event_type, state in executor_states(resource, start=start):
            mirror.apply(event_type, state)
            step(results, "mirror_status_updates")
        for event in executor_events(resource, start=start):
            lifecycle.record_events(events_proxy.RecordRequest(events=[event]))
            step(results, "events")

    # --- a root, end to end ---
    root: dict[str, int] = {}
    run = f"wcu{uuid.uuid4().hex[:12]}"
    create.create_run(create_run_request(run))
    step(root, "create")
    root_resource = build_taskaction(record_of(run, "a0"), namespace="flyte")
    mirror_and_events(root, root_resource)

    # --- a child of a running root, end to end ---
    child: dict[str, int] = {}
    parent_run = f"wcu{uuid.uuid4().hex[:12]}"
    create.create_run(create_run_request(parent_run))
    parent_resource = build_taskaction(record_of(parent_run, "a0"), namespace="flyte")
    for event_type, state in executor_states(parent_resource, start=start)[:5]:  # up to Executing
        mirror.apply(event_type, state)
    client.take()
    lifecycle.enqueue(child_task_action(parent_run, "c1"))
    step(child, "create")
    parent_state = executor_states(parent_resource, start=start)[4][1]
    child_resource = build_taskaction(record_of(parent_run, "c1"), namespace="flyte", parent=parent_state)
    mirror_and_events(child, child_resource)

    # --- the earlier life: create, 3 status updates, terminal update, 5 events in one request ---
    earlier: dict[str, int] = {}
    old_run = f"wcu{uuid.uuid4().hex[:12]}"
    create.create_run(create_run_request(old_run))
    step(earlier, "create")
    for phase, name in (
        (phases.WAITING_FOR_RESOURCES, "status_updates"),
        (phases.INITIALIZING, "status_updates"),
        (phases.RUNNING, "status_updates"),
        (phases.SUCCEEDED, "terminal_update"),
    ):
        lifecycle.update_action_status(
            internal.UpdateActionStatusRequest(
                action_id=action_id(old_run, "a0"), status=wf.ActionStatus(phase=phase, attempts=1)
            )
        )
        step(earlier, name)
    events = [
        wf.ActionEvent(id=action_id(old_run, "a0"), attempt=1, phase=phase, version=0)
        for phase in (
            phases.QUEUED,
            phases.WAITING_FOR_RESOURCES,
            phases.INITIALIZING,
            phases.RUNNING,
            phases.SUCCEEDED,
        )
    ]
    for event in events:
        event.updated_time.GetCurrentTime()
        event.reported_time.GetCurrentTime()
    lifecycle.record_action_events(internal.RecordActionEventsRequest(events=events))
    step(earlier, "events")

    for results in (root, child, earlier):
        results["total"] = sum(results.values())
    item = store.client.get_item(
        TableName=table, Key={"pk": {"S": f"{PROJECT}#{DOMAIN}#{run}"}, "sk": {"S": "A#a0"}}, ConsistentRead=True
    )["Item"]
    from runplane.table.actions import item_size

    return {
        "root": root,
        "child": child,
        "earlier_life": earlier,
        "root_item_bytes": {"bytes": item_size(item)},
    }


def measure() -> dict[str, dict[str, int]]:
    """The lives on a moto server of their own."""
    from benchmarks.fixtures import OutOfProcessMoto
    from local_stack.aws import aws_environment, provision

    moto = OutOfProcessMoto()
    try:
        os.environ.update(aws_environment(moto.endpoint))
        resources = provision(endpoint=moto.endpoint, table_name="bench-units", bucket="bench-units")
        return lives(resources.table_name, resources.bucket)
    finally:
        moto.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the metrics' EMF lines
        results = measure()
    if args.json:
        print(json.dumps(results))
        return 0
    for life, steps in results.items():
        print(life)
        for name, units in steps.items():
            print(f"  {name:<24}{units:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
