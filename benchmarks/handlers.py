"""Handler benchmarks: cold starts; warm CreateRun and UpdateActionStatus against the raw
conditional DynamoDB write each is built on; the write units one action's life costs.

    .venv/bin/python -m benchmarks.handlers [--cold-runs 7] [--warm-calls 300]

Cold start: for each Lambda handler, a fresh interpreter imports the handler and does its
first-call set-up (settings, clients; for reconcile the Kubernetes ApiClient), with the function
code laid out and precompiled as the Makefile ships it (unchecked-hash .pyc). Reported: median
and spread of at least 5 runs, wall and CPU, measured inside the process (Lambda's INIT phase),
plus a bare interpreter for reference.

Warm CreateRun: the create_run handler, fed API Gateway events exactly as the SDK's requests
arrive (gzip binary proto), against a raw boto3 conditional PutItem of a same-sized item on the
same moto server. Warm UpdateActionStatus likewise against a raw conditional UpdateItem. Calls
are interleaved so both sides see the same machine load; the ratios are the figures to watch.

Write units: one root action's life (CreateRun, three status updates, the terminal update, five
events), in DynamoDB write request units computed from the stored item sizes (1 per started KB
of the larger of the old and new item; moto's ConsumedCapacity is a constant), for the table and
for the run index, which projects the root item.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

COLD_START_PROBES = {
    "create_run": (
        "functions.create_run.handler",
        "svc = m.create_run_service(); svc._store.client; svc._blobs.client",
    ),
    "update_action": ("functions.update_action.handler", "m.lifecycle()._store.client"),
    "read_runs": ("functions.read_runs.handler", "m.reader()._store.client"),
    "task_registry": ("functions.task_registry.handler", "m.registry()"),
    "data_proxy": ("functions.data_proxy.handler", "m.data_proxy()._blobs.client"),
    "reconcile": (
        "functions.reconcile.handler",
        "r = m.reconciler()",
    ),
}

PROBE = """
import time, os
t0, c0 = time.perf_counter(), time.process_time()
import importlib
m = importlib.import_module({module!r})
{setup}
print(f"{{(time.perf_counter() - t0) * 1000:.1f}} {{(time.process_time() - c0) * 1000:.1f}}")
"""


def deployment_layout(target: Path) -> Path:
    """functions/ and the layer's runplane as `sam build` + the Makefile ship them, precompiled."""
    shutil.copytree(REPO / "functions", target / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        REPO / "shared" / "runplane", target / "python" / "runplane", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(target)], check=True
    )
    return target


def cold_starts(runs: int) -> dict[str, dict[str, float]]:
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        code = deployment_layout(Path(scratch))
        kubeconfig = Path(scratch) / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "c",
                    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                }
            )
        )
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": f"{code}:{code / 'python'}",
            "PYTHONNOUSERSITE": "1",
            "ACTIONS_TABLE": "bench-table",
            "DATA_BUCKET": "bench-bucket",
            "KUBECONFIG": str(kubeconfig),
            "PAGE_TOKEN_SECRET": "benchmark-page-token-key-of-32-chars",  # read_runs, task_registry
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
        }
        probes = {"bare interpreter": ("", "")} | COLD_START_PROBES
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in probes}
        for _ in range(runs):  # interleaved rounds: every handler sees the same load
            for name, (module, setup) in probes.items():
                script = PROBE.format(module=module or "sys", setup=setup)
                # PYTHONPATH puts the shipped layout ahead of the repo checkout the venv also sees.
                output = subprocess.run(
                    [sys.executable, "-c", script],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=scratch,
                ).stdout.split()
                samples[name].append((float(output[0]), float(output[1])))
        for name, values in samples.items():
            walls = [v[0] for v in values]
            results[name] = {
                "median_wall_ms": statistics.median(walls),
                "min_wall_ms": min(walls),
                "max_wall_ms": max(walls),
                "median_cpu_ms": statistics.median(v[1] for v in values),
                "runs": len(values),
            }
    return results


def http_event(path: str, message) -> dict:
    """An API Gateway payload-v2 event carrying a request as the flyte SDK sends it."""
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": {"content-type": "application/proto", "content-encoding": "gzip"},
        "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"},
        "body": base64.b64encode(gzip.compress(message.SerializeToString())).decode(),
        "isBase64Encoded": True,
    }


def side_by_side(measured, raw, calls: int) -> dict[str, float]:
    for _ in range(20):  # warm both paths: connections, caches
        measured()
        raw()
    measured_times, raw_times = [], []
    for _ in range(calls):
        measured_times.append(measured())
        raw_times.append(raw())
    measured_ms = statistics.median(measured_times) * 1000
    raw_ms = statistics.median(raw_times) * 1000
    return {
        "calls": calls,
        "handler_median_ms": measured_ms,
        "handler_p90_ms": statistics.quantiles(measured_times, n=10)[-1] * 1000,
        "raw_median_ms": raw_ms,
        "raw_p90_ms": statistics.quantiles(raw_times, n=10)[-1] * 1000,
        "ratio": measured_ms / raw_ms,
    }


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def warm_handlers(calls: int) -> dict[str, dict]:
    from local_stack.aws import MotoServer, aws_environment, provision

    moto = MotoServer().start()
    try:
        os.environ.update(aws_environment(moto.endpoint))
        resources = provision(endpoint=moto.endpoint, table_name="bench-actions", bucket="bench-data")
        os.environ.update({"ACTIONS_TABLE": resources.table_name, "DATA_BUCKET": resources.bucket})
        return {
            "create_run": warm_create_run(resources, calls),
            "update_action_status": warm_update_action_status(resources, calls),
            "write_units": write_units_of_an_action_life(resources),
        }
    finally:
        moto.stop()


def warm_create_run(resources, calls: int) -> dict[str, float]:
    import boto3

    from functions.create_run import handler as create_run
    from local_stack.lambda_runtime import LambdaContext
    from runplane.identifiers import ActionKey
    from runplane.store import ActionStore
    from tests.builders import DOMAIN, PROJECT, create_run_request

    context = LambdaContext(function_name="CreateRunFunction")
    raw = boto3.client("dynamodb")

    def handler_call(run_name: str | None = None) -> float:
        event = http_event(create_run.CREATE_RUN, create_run_request(run_name or f"b{uuid.uuid4().hex[:16]}"))
        start = time.perf_counter()
        response = create_run.handler(event, context)
        elapsed = time.perf_counter() - start
        assert response["statusCode"] == 200, response
        return elapsed

    # The raw side writes an item of the same size and shape as the one CreateRun stores.
    handler_call("bench-sample")
    sample = ActionStore(table_name=resources.table_name).get_action(
        ActionKey(project=PROJECT, domain=DOMAIN, run="bench-sample", name="a0")
    )
    assert sample is not None

    def raw_put() -> float:
        key = ActionKey(project=PROJECT, domain=DOMAIN, run=f"raw{uuid.uuid4().hex[:16]}", name="a0")
        item = sample.with_changes(key=key).to_item()
        start = time.perf_counter()
        raw.put_item(TableName=resources.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        return time.perf_counter() - start

    return side_by_side(handler_call, raw_put, calls)


def warm_update_action_status(resources, calls: int) -> dict[str, float]:
    import boto3
    from flyteidl2.workflow import internal_run_service_pb2 as internal
    from flyteidl2.workflow import run_definition_pb2 as wf

    from functions.create_run.handler import create_run_service
    from functions.update_action import handler as update_action
    from local_stack.lambda_runtime import LambdaContext
    from runplane import phases
    from runplane.identifiers import ActionKey
    from runplane.records import item_key
    from tests.builders import DOMAIN, PROJECT, action_id, create_run_request

    context = LambdaContext(function_name="UpdateActionFunction")
    raw = boto3.client("dynamodb")
    create_run_service().create_run(create_run_request("bench-status"))
    event = http_event(
        f"{update_action.INTERNAL}/UpdateActionStatus",
        internal.UpdateActionStatusRequest(
            action_id=action_id("bench-status", "a0"), status=wf.ActionStatus(phase=phases.RUNNING, attempts=1)
        ),
    )
    key = item_key(ActionKey(project=PROJECT, domain=DOMAIN, run="bench-status", name="a0"))

    def handler_call() -> None:
        response = update_action.handler(event, context)
        assert response["statusCode"] == 200, response

    def raw_update() -> None:
        raw.update_item(
            TableName=resources.table_name,
            Key=key,
            UpdateExpression="SET phase = :p, updated_at = :now",
            ConditionExpression="attribute_exists(pk) AND phase <= :p",
            ExpressionAttributeValues={":p": {"N": str(phases.RUNNING)}, ":now": {"S": "2026-01-01T00:00:00.000000Z"}},
        )

    return side_by_side(lambda: timed(handler_call), lambda: timed(raw_update), calls)


def write_units_of_an_action_life(resources) -> dict[str, int]:
    from flyteidl2.common.phase_pb2 import ActionPhase
    from flyteidl2.workflow import internal_run_service_pb2 as internal
    from flyteidl2.workflow import run_definition_pb2 as wf

    from functions.create_run.handler import create_run_service
    from functions.update_action.handler import lifecycle
    from runplane import phases
    from runplane.identifiers import ActionKey
    from runplane.records import RUN_INDEX_PROJECTION, item_key
    from runplane.store import write_units
    from tests.builders import DOMAIN, PROJECT, action_id, create_run_request

    run = f"wcu{uuid.uuid4().hex[:12]}"
    key = ActionKey(project=PROJECT, domain=DOMAIN, run=run, name="a0")
    store = lifecycle()._store
    raw_item = lambda: store.client.get_item(TableName=resources.table_name, Key=item_key(key))["Item"]  # noqa: E731

    def index_units(item) -> int:
        """The run index holds a projection of root items; it is written whenever the item is."""
        keys = ("pk", "sk", "run_index_pk", "run_index_sk")
        return write_units({k: v for k, v in item.items() if k in keys or k in RUN_INDEX_PROJECTION})

    units = {"create": 0, "status_updates": 0, "terminal_update": 0, "events": 0, "run_index": 0}

    create_run_service().create_run(create_run_request(run))
    before = raw_item()
    units["create"] = write_units(before)
    units["run_index"] += index_units(before)

    def update(phase: ActionPhase, bucket: str) -> None:
        nonlocal before
        lifecycle().update_action_status(
            internal.UpdateActionStatusRequest(
                action_id=action_id(run, "a0"), status=wf.ActionStatus(phase=phase, attempts=1)
            )
        )
        after = raw_item()
        cost = max(write_units(before), write_units(after))
        units[bucket] += cost
        units["run_index"] += index_units(after)
        before = after

    for phase in (phases.WAITING_FOR_RESOURCES, phases.INITIALIZING, phases.RUNNING):
        update(phase, "status_updates")
    update(phases.SUCCEEDED, "terminal_update")

    events = [
        wf.ActionEvent(id=action_id(run, "a0"), attempt=1, phase=phase, version=0)
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
    lifecycle().record_action_events(internal.RecordActionEventsRequest(events=events))
    units["events"] = sum(write_units(e.to_item()) for e in store.list_events(key))
    units["item_bytes"] = len(json.dumps({k: str(v) for k, v in before.items()}))
    units["total"] = sum(v for k, v in units.items() if k != "item_bytes")
    return units


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--warm-calls", type=int, default=300)
    args = parser.parse_args(argv)
    if args.cold_runs < 5:
        parser.error("--cold-runs must be at least 5")

    cold = cold_starts(args.cold_runs)
    print(f"Cold start (import + first-call set-up, precompiled, {args.cold_runs} interleaved runs)")
    print(f"  {'handler':<18}{'median wall':>12}{'min':>8}{'max':>8}{'median CPU':>12}")
    for name, r in cold.items():
        print(
            f"  {name:<18}{r['median_wall_ms']:>10.1f}ms{r['min_wall_ms']:>6.0f}ms{r['max_wall_ms']:>6.0f}ms{r['median_cpu_ms']:>10.1f}ms"
        )

    warm = warm_handlers(args.warm_calls)
    for name, raw_name, note in (
        ("create_run", "conditional PutItem", "the handler does GetItem + S3 PutObject + PutItem"),
        ("update_action_status", "conditional UpdateItem", "one guarded UpdateItem with ALL_NEW"),
    ):
        w = warm[name]
        print(f"\nWarm {name} handler vs raw {raw_name}, same moto server, {w['calls']} interleaved calls")
        print(f"  handler  median {w['handler_median_ms']:.2f} ms  p90 {w['handler_p90_ms']:.2f} ms")
        print(f"  raw      median {w['raw_median_ms']:.2f} ms  p90 {w['raw_p90_ms']:.2f} ms")
        print(f"  ratio    {w['ratio']:.2f}x  ({note})")
    units = warm["write_units"]
    print("\nWrite request units of one root action's life (computed from stored item sizes)")
    for name in ("create", "status_updates", "terminal_update", "events", "run_index", "total"):
        print(f"  {name:<16}{units[name]:>4}")

    results_dir = REPO / "benchmarks" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "handlers.json").write_text(json.dumps({"cold_start": cold, "warm": warm}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
