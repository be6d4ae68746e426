"""EventsProxyService/Record throughput: Flyte's executor's batches against one event a call.

    .venv/bin/python -m benchmarks.record_batches [--rounds 5] [--actions 100]

Flyte's executor coalesces the events of concurrent reconciles into Record calls of up to 400
events (``executor/pkg/controller/event_batcher.go``: ``eventBatchMaxSize``); without the batcher
it makes one call an event. Both on the same stack: moto in a process of its own, the local API
Gateway front (HTTP, payload-v2 events) and the update_action handler behind it, the Record route
as template.yaml declares it (no authorizer: the figure is the function's, not the JWT check's).

Each round sends 400 events (``--actions`` actions of two runs in two projects, four transitions
each: Queued, Initializing, Running, Succeeded), fresh ones every round so every event is a
write: once as one batch, then the same number of other events as 400 single-event calls, over
one keep-alive connection each way. The rounds interleave, so both paths see the same load.
Reported: events a second each way, and the ratio (batched over single); and, for scale, the
floor under both: the same number of raw conditional PutItems of event items, sent one after
another to the same moto by the handler's own client (moto handles one request at a time, so
the batch's concurrent puts cannot beat it there; on DynamoDB they overlap).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import statistics
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RECORD = "/flyteidl2.workflow.EventsProxyService/Record"
TRANSITIONS = 4  # Queued, Initializing, Running, Succeeded: one action's life in events
PROJECTS = ("flytesnacks", "benchother")


def events_of(actions: int) -> list[Any]:
    """``actions`` x 4 events as the executor's buildActionEvent makes them, across two projects."""
    from flyteidl2.common.identifier_pb2 import ActionIdentifier, RunIdentifier
    from flyteidl2.workflow import run_definition_pb2 as wf

    from runplane.flyte import phases

    runs = {project: f"b{uuid.uuid4().hex[:16]}" for project in PROJECTS}
    events = []
    for n in range(actions):
        project = PROJECTS[n % 2]
        identifier = ActionIdentifier(
            run=RunIdentifier(project=project, domain="development", name=runs[project]), name=f"c{n}"
        )
        for step, phase in enumerate((phases.QUEUED, phases.INITIALIZING, phases.RUNNING, phases.SUCCEEDED)):
            event = wf.ActionEvent(id=identifier, attempt=1, phase=phase, version=0, cluster="bench")
            event.updated_time.FromSeconds(1_800_000_000 + step)
            event.reported_time.FromSeconds(1_800_000_000 + step)
            if phase == phases.SUCCEEDED:
                event.outputs.output_uri = f"s3://bench/{runs[project]}/c{n}/1/outputs.pb"
            events.append(event)
    return events


class Client:
    """One keep-alive HTTP connection to the front, as the executor's http.DefaultClient keeps."""

    def __init__(self, endpoint: str) -> None:
        url = urllib.parse.urlsplit(endpoint)
        self._connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)

    def record(self, events: list[Any]) -> None:
        from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy

        body = events_proxy.RecordRequest(events=events).SerializeToString()
        self._connection.request(
            "POST", RECORD, body=body, headers={"content-type": "application/proto", "connect-protocol-version": "1"}
        )
        response = self._connection.getresponse()
        payload = response.read()
        if response.status != 200 or response.getheader("x-flyte-refused-events"):
            raise RuntimeError(f"Record answered {response.status}: {payload[:300]!r}")


def raw_puts(table_name: str, events: list[Any]) -> float:
    """The floor: each event's item, one conditional PutItem after another; the seconds taken."""
    from datetime import UTC, datetime

    from functions.update_action.events import event_record
    from runplane.aws import http as aws_http

    client = aws_http.dynamodb_client()
    now = datetime.now(UTC)
    items = [event_record(event, index=i, now=now).to_item() for i, event in enumerate(events)]
    start = time.perf_counter()
    for item in items:
        client.put_item(TableName=table_name, Item=item, ConditionExpression="attribute_not_exists(sk)")
    return time.perf_counter() - start


def measure(rounds: int, actions: int) -> dict[str, Any]:
    from benchmarks.reconcile import OutOfProcessMoto
    from local_stack.apigateway import ApiGatewayFront
    from local_stack.aws import aws_environment, provision
    from local_stack.kube import free_port
    from local_stack.template import http_routes

    moto = OutOfProcessMoto()
    try:
        os.environ.update(aws_environment(moto.endpoint))
        resources = provision(endpoint=moto.endpoint, table_name="bench-actions", bucket="bench-data")
        os.environ.update({"ACTIONS_TABLE": resources.table_name, "DATA_BUCKET": resources.bucket})
        routes = [route for route in http_routes() if route.path == RECORD]
        front = ApiGatewayFront(routes=routes, port=free_port()).start()
        try:
            batched, single = Client(front.endpoint), Client(front.endpoint)
            batched.record(events_of(actions))  # warm both paths: imports, connections, the table
            for event in events_of(10):
                single.record([event])
            batch_seconds: list[float] = []
            single_seconds: list[float] = []
            raw_seconds: list[float] = []
            for _ in range(rounds):
                events = events_of(actions)
                start = time.perf_counter()
                batched.record(events)
                batch_seconds.append(time.perf_counter() - start)
                events = events_of(actions)
                start = time.perf_counter()
                for event in events:
                    single.record([event])
                single_seconds.append(time.perf_counter() - start)
                raw_seconds.append(raw_puts(resources.table_name, events_of(actions)))
        finally:
            front.stop()
    finally:
        moto.stop()
    count = actions * TRANSITIONS
    batch_rate = count / statistics.median(batch_seconds)
    single_rate = count / statistics.median(single_seconds)
    raw_rate = count / statistics.median(raw_seconds)
    return {
        "raw_seconds": raw_seconds,
        "raw_events_per_second": raw_rate,
        "batch_to_raw": batch_rate / raw_rate,
        "rounds": rounds,
        "events_per_round": count,
        "batch_seconds": batch_seconds,
        "single_seconds": single_seconds,
        "batched_events_per_second": batch_rate,
        "single_events_per_second": single_rate,
        "ratio": batch_rate / single_rate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--actions", type=int, default=100, help="actions a round (4 events each; 100: a full batch)")
    args = parser.parse_args(argv)
    if not 1 <= args.actions * TRANSITIONS <= 400:
        parser.error("--actions must make 1..400 events (Flyte's eventBatchMaxSize)")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metric lines
        result = measure(args.rounds, args.actions)
    n = result["events_per_round"]
    print(f"EventsProxyService/Record through the local front, {args.rounds} interleaved rounds of {n} events")
    print(
        f"  one call of {n} mixed events  {statistics.median(result['batch_seconds']) * 1000:8.1f} ms a round"
        f"  {result['batched_events_per_second']:8.0f} events/s"
    )
    print(
        f"  {n} single-event calls       {statistics.median(result['single_seconds']) * 1000:8.1f} ms a round"
        f"  {result['single_events_per_second']:8.0f} events/s"
    )
    print(f"  ratio (batched / single)     {result['ratio']:.2f}x")
    print(
        f"  floor: {n} raw PutItems      {statistics.median(result['raw_seconds']) * 1000:8.1f} ms a round"
        f"  {result['raw_events_per_second']:8.0f} events/s (batched: {result['batch_to_raw']:.2f}x of it)"
    )
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "record_batches.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
