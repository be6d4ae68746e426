"""The events path with Flyte's real executor's shape: the relay's cost, and status latency.

    .venv/bin/python -m benchmarks.events_relay [--calls 100] [--batch 20] [--samples 30]

One local stack (moto, the real Kubernetes control plane, the front enforcing its authorizers, the
events relay), measured in one run:

Throughput: ``--calls`` Record calls of ``--batch`` RUNNING events each (of 10 runs created
first, a distinct version an event so each is a write), sent one call at a time on a kept-alive
connection, alternately in blocks straight to the front with a data-plane token and to the relay
without one (what Flyte's executor does). Events per second for each, and the ratio relay/direct.

Latency: ``--samples`` runs of a task that exits at once, one at a time, with the faithful local
executor (status written only once its event is recorded through the relay) and the status mirror;
for each phase seen both in a TaskAction's status and in the table, the time from the status write
(its watch event) to the table showing it (polled every 5 ms); p50 and p99.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

RECORD = "/flyteidl2.workflow.EventsProxyService/Record"
RUNS = 10
BLOCK = 10  # calls per block, direct and relayed blocks alternating
POLL_SECONDS = 0.005


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args(argv)
    # The status mirror's invocation outlives the stack's Kubernetes control plane at the end and
    # logs its failed watches (to stdout, where the figures go): only what is critical is kept.
    os.environ["POWERTOOLS_LOG_LEVEL"] = "CRITICAL"

    from local_stack.stack import LocalStack, StackConfig

    state = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    stack = LocalStack(
        StackConfig(
            state_dir=state,
            api_port=0,
            data_plane=False,
            auth=True,
            tick_seconds=5,
            mirror_timeout_seconds=120,
            mirror_idle_grace_seconds=30,
        )
    )
    try:
        stack.start()
        direct, relayed = throughput(stack, calls=args.calls, batch=args.batch)
        print(f"Record, direct (data-plane token): {direct:8.0f} events/s")
        print(f"Record, through the relay:         {relayed:8.0f} events/s")
        print(f"ratio relay/direct:                {relayed / direct:8.2f}")
        latencies = status_latency(stack, samples=args.samples)
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 2 else latencies[0]
        print(f"status write -> table, faithful executor: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              f"({len(latencies)} transitions of {args.samples} runs)")  # fmt: skip
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)
    return 0


def _post(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> int:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def _connection(endpoint: str) -> http.client.HTTPConnection:
    parsed = urllib.parse.urlsplit(endpoint)
    return http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)


def throughput(stack: Any, *, calls: int, batch: int) -> tuple[float, float]:
    from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2

    from runplane.flyte import phases
    from tests.builders import action_id, create_run_request

    user = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1", **stack.user_headers()}
    front = _connection(stack.endpoint)
    runs = [f"r{uuid.uuid4().hex[:12]}" for _ in range(RUNS)]
    for run in runs:
        status = _post(
            front, "/flyteidl2.workflow.RunService/CreateRun", create_run_request(run).SerializeToString(), user
        )
        assert status == 200, status

    counter = iter(range(10**9))

    def body() -> bytes:
        events = []
        for _ in range(batch):
            n = next(counter)
            event = run_definition_pb2.ActionEvent(
                id=action_id(runs[n % RUNS], "a0"), attempt=1, phase=phases.RUNNING, version=n
            )
            event.updated_time.GetCurrentTime()
            events.append(event)
        return events_proxy_service_pb2.RecordRequest(events=events).SerializeToString()

    proto = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
    targets = {
        "direct": (front, {**proto, "Authorization": stack.data_plane_authorization()}),
        "relay": (_connection(stack.events_endpoint), proto),
    }
    for connection, headers in targets.values():  # warm: the relay's token, the connections
        assert _post(connection, RECORD, body(), headers) == 200
    elapsed = {"direct": 0.0, "relay": 0.0}
    sent = {"direct": 0, "relay": 0}
    while min(sent.values()) < calls:
        for name, (connection, headers) in targets.items():
            bodies = [body() for _ in range(BLOCK)]
            started = time.perf_counter()
            for payload in bodies:
                status = _post(connection, RECORD, payload, headers)
                assert status == 200, (name, status)
            elapsed[name] += time.perf_counter() - started
            sent[name] += BLOCK
    return sent["direct"] * batch / elapsed["direct"], sent["relay"] * batch / elapsed["relay"]


def status_latency(stack: Any, *, samples: int) -> list[float]:
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.watch import Watch

    from runplane.flyte import phases
    from runplane.flyte.identifiers import ActionKey, taskaction_name
    from runplane.table.actions import ActionStore
    from tests.builders import DOMAIN, PROJECT, create_run_request, task_spec

    stack.start_data_plane()
    store = ActionStore(table_name=stack.aws.table_name)
    objects = k8s.CustomObjectsApi(config.new_client_from_config(config_file=str(stack.kube.kubeconfig)))
    written: dict[tuple[str, int], float] = {}  # (resource, phase) -> when its status said so
    stop = threading.Event()
    reasons = {"Queued": phases.QUEUED, "Initializing": phases.INITIALIZING, "Executing": phases.RUNNING}

    def phase_of(status: dict[str, Any]) -> int | None:
        for condition in status.get("conditions") or []:
            if condition["status"] != "True":
                continue
            if condition["type"] == "Succeeded":
                return phases.SUCCEEDED
            if condition["type"] == "Failed":
                return phases.FAILED
            if condition["type"] == "Progressing":
                return reasons.get(condition["reason"])
        return None

    def watch() -> None:
        while not stop.is_set():
            for event in Watch().stream(
                objects.list_namespaced_custom_object, "flyte.org", "v1", stack.namespace, "taskactions",
                timeout_seconds=5,
            ):  # fmt: skip
                resource = event["raw_object"]
                phase = phase_of(resource.get("status") or {})
                if phase is not None:
                    written.setdefault((resource["metadata"]["name"], phase), time.monotonic())
                if stop.is_set():
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(1.0)
    front = _connection(stack.endpoint)
    headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1", **stack.user_headers()}
    spec = task_spec(args=("python", "-c", "pass"))
    latencies: list[float] = []
    try:
        for _ in range(samples):
            run = f"l{uuid.uuid4().hex[:12]}"
            request = create_run_request(run, spec=spec).SerializeToString()
            assert _post(front, "/flyteidl2.workflow.RunService/CreateRun", request, headers) == 200
            seen: dict[int, float] = {}
            deadline = time.monotonic() + 60
            key = ActionKey(PROJECT, DOMAIN, run, "a0")
            while time.monotonic() < deadline:
                record = store.get_action(key, resolve_specs=False)
                if record is not None:
                    seen.setdefault(record.phase, time.monotonic())
                    if phases.is_terminal(record.phase):
                        break
                time.sleep(POLL_SECONDS)
            for phase, in_table in seen.items():
                at = written.get((taskaction_name(ActionKey(PROJECT, DOMAIN, run, "a0")), phase))
                if at is not None:
                    latencies.append(max(0.0, in_table - at))
    finally:
        stop.set()
        stack.stop_data_plane()
    return latencies


if __name__ == "__main__":
    raise SystemExit(main())
