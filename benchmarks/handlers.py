"""Handler benchmarks: cold starts; warm CreateRun and UpdateActionStatus against the raw calls
each cannot avoid; the write units an action's life costs. Side by side with a baseline (a git
ref, HEAD by default) where the figure is absolute.

    .venv/bin/python -m benchmarks.handlers [--cold-runs 7] [--warm-calls 300] [--baseline HEAD]

Cold start (``benchmarks.cold_start``): for every function, a fresh interpreter imports the
handler and does its first request's set-up (``COLD_START_PROBES``), laid out as Lambda runs it
(artifact, layer, runtime packages: ``benchmarks.layout``), precompiled as the Makefile ships it.
Median and spread of the interleaved runs, wall and CPU, inside the process (Lambda's INIT phase
and the first call's set-up); the same for the baseline's code, and the ratio.

Warm CreateRun: the create_run handler, fed API Gateway events exactly as the SDK's requests
arrive (gzip binary proto), on the SDK's path (inputs offloaded) against one raw conditional
PutItem of the same item, and with inline inputs against a raw S3 PutObject plus that PutItem.
Warm UpdateActionStatus: against the very guarded UpdateItem the handler sends, issued raw (and,
for continuity, against the simpler conditional UpdateItem this benchmark used before). moto in
a process of its own; calls interleaved so every path sees the same machine load.

Write units (``benchmarks.write_units``): a root's and a child's life end to end (CreateRun or
Enqueue, the status mirror's writes as Flyte's executor drives the TaskAction, the executor's
events, the run index), and the earlier, shorter life, billed from the stored item sizes; on the
baseline's code too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent

# What each function's first request sets up, after its import (benchmarks.cold_start): the
# clients that request uses, nothing it does not. create_run's SDK path (inputs offloaded) writes
# one item; with inline inputs it also writes to S3.
COLD_START_PROBES = {
    "create_run": ("functions.create_run.handler", "m.create_run_service()._store.client"),
    "create_run (inline inputs)": (
        "functions.create_run.handler",
        "svc = m.create_run_service(); svc._store.client; svc._blobs.client",
    ),
    "update_action": ("functions.update_action.handler", "m.lifecycle()._store.client"),
    "read_runs": ("functions.read_runs.handler", "m.reader()._store.client"),
    "task_registry": ("functions.task_registry.handler", "m.registry()._tasks._store.client"),
    "data_proxy": ("functions.data_proxy.handler", "m.data_proxy()._blobs.client"),
    "auth_metadata": ("functions.auth_metadata.handler", "m.auth_metadata()"),
    "console": ("functions.console.handler", "m.site()"),  # reads and hashes the static files
    # The Kubernetes client through EKS authentication, the table client, the batch processor.
    "reconcile": ("functions.reconcile.handler", "m.reconciler()._store.client; m.processor()"),
    # The first call takes the shard's lease, then reads and writes the table.
    "mirror_status": ("functions.mirror_status.handler", "c = m.components(); c[3].client; c[2]._store.client"),
    # What an API function pays before any code of its own: protobuf with RunService's messages,
    # Powertools' Logger, and what its table client stands on (http.client and ssl, since
    # runplane.aws.http replaced botocore on the functions' hot paths). The floor the code sits on.
    "libraries alone": (
        "flyteidl2.workflow.run_service_pb2",
        "import http.client, ssl; ssl.create_default_context()\n"
        "from aws_lambda_powertools import Logger; Logger(service='probe')",
    ),
    # What the functions' table client cost while it was botocore's (its loader told the service,
    # as runplane.aws.clients does): what runplane.aws.http takes off every API cold start.
    "botocore DynamoDB client alone": (
        "botocore.session",
        "import botocore.loaders\n"
        "class Known(botocore.loaders.Loader):\n"
        "    def list_available_services(self, type_name): return ['dynamodb']\n"
        "s = m.Session(); s.register_component('data_loader', Known()); s.create_client('dynamodb')",
    ),
}


def cold_starts(runs: int, *, baseline_ref: str | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Every function's cold start as shipped (``benchmarks.cold_start``), and the baseline's."""
    from benchmarks import cold_start

    return cold_start.measure(COLD_START_PROBES, runs=runs, baseline_ref=baseline_ref)


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


def interleaved(calls: int, **paths: Callable[[], float]) -> dict[str, dict[str, float]]:
    """Each path (a callable returning the seconds it measured) called ``calls`` times, the paths
    taking turns, so they all see the same machine load; medians and p90s in ms."""
    for _ in range(20):  # warm every path: connections, caches
        for path in paths.values():
            path()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(calls):
        for name, path in paths.items():
            times[name].append(path())
    return {
        name: {
            "median_ms": statistics.median(values) * 1000,
            "p90_ms": statistics.quantiles(values, n=10)[-1] * 1000,
        }
        for name, values in times.items()
    }


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def warm_handlers(calls: int) -> dict[str, Any]:
    from benchmarks.fixtures import OutOfProcessMoto
    from local_stack.aws import aws_environment, provision

    moto = OutOfProcessMoto()  # its own interpreter: the handler and the raw calls share none of its work
    try:
        os.environ.update(aws_environment(moto.endpoint))
        resources = provision(endpoint=moto.endpoint, table_name="bench-actions", bucket="bench-data")
        os.environ.update({"ACTIONS_TABLE": resources.table_name, "DATA_BUCKET": resources.bucket})
        return {
            "create_run": warm_create_run(resources, calls),
            "update_action_status": warm_update_action_status(resources, calls),
        }
    finally:
        moto.stop()


def warm_create_run(resources: Any, calls: int) -> dict[str, Any]:
    """The SDK's CreateRun (inputs offloaded: one conditional PutItem is all it needs) and one with
    inline inputs (one S3 PutObject before it), each against exactly those raw calls, with an item
    and an object of the same size as the handler's, sent by the same clients the handler uses
    (``runplane.aws.http``: the cheapest way this process has to make those calls)."""
    from functions.create_run import handler as create_run
    from local_stack.lambda_runtime import LambdaContext
    from runplane.aws import http as aws_http
    from runplane.flyte.identifiers import ActionKey
    from runplane.table.actions import ActionStore
    from tests.builders import DOMAIN, PROJECT, create_run_request

    context = LambdaContext(function_name="CreateRunFunction")
    dynamodb, s3 = aws_http.dynamodb_client(), aws_http.s3_client()
    store = ActionStore(table_name=resources.table_name)

    def request(name: str, *, offloaded: bool) -> Any:
        message = create_run_request(name)
        if offloaded:  # where the SDK uploads them (DataProxyService/CreateUploadLocation), then names them
            message.offloaded_input_data.uri = f"s3://{resources.bucket}/{PROJECT}/{DOMAIN}/{uuid.uuid4().hex}"
        return message

    def handler_call(*, offloaded: bool, name: str | None = None) -> float:
        event = http_event(create_run.CREATE_RUN, request(name or f"b{uuid.uuid4().hex[:16]}", offloaded=offloaded))
        start = time.perf_counter()
        response = create_run.handler(event, context)
        elapsed = time.perf_counter() - start
        assert response["statusCode"] == 200, response
        return elapsed

    samples = {}
    for offloaded in (True, False):
        name = f"sample-{'sdk' if offloaded else 'inline'}"
        handler_call(offloaded=offloaded, name=name)
        sample = store.get_action(ActionKey(project=PROJECT, domain=DOMAIN, run=name, name="a0"))
        assert sample is not None
        samples[offloaded] = sample
    inputs = create_run_request("x").inputs.SerializeToString(deterministic=True)

    def raw_put(*, offloaded: bool) -> float:
        key = ActionKey(project=PROJECT, domain=DOMAIN, run=f"raw{uuid.uuid4().hex[:16]}", name="a0")
        item = samples[offloaded].with_changes(key=key).to_item()
        start = time.perf_counter()
        if not offloaded:
            s3.put_object(Bucket=resources.bucket, Key=f"raw/{key.run}/inputs.pb", Body=inputs)
        dynamodb.put_item(
            TableName=resources.table_name,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return time.perf_counter() - start

    result = interleaved(
        calls,
        sdk_handler=lambda: handler_call(offloaded=True),
        sdk_raw=lambda: raw_put(offloaded=True),
        inline_handler=lambda: handler_call(offloaded=False),
        inline_raw=lambda: raw_put(offloaded=False),
    )
    return {
        "calls": calls,
        **result,
        "ratio": result["sdk_handler"]["median_ms"] / result["sdk_raw"]["median_ms"],
        "inline_ratio": result["inline_handler"]["median_ms"] / result["inline_raw"]["median_ms"],
    }


def warm_update_action_status(resources: Any, calls: int) -> dict[str, Any]:
    """The handler against the very guarded UpdateItem it sends (captured from it), issued raw,
    and against the simpler conditional UpdateItem this benchmark used before (continuity), both
    sent by the handler's own client (``runplane.aws.http``)."""
    from flyteidl2.workflow import internal_run_service_pb2 as internal
    from flyteidl2.workflow import run_definition_pb2 as wf

    from functions.create_run.handler import create_run_service
    from functions.update_action import handler as update_action
    from local_stack.lambda_runtime import LambdaContext
    from runplane.aws import http as aws_http
    from runplane.flyte import phases
    from runplane.flyte.identifiers import ActionKey
    from runplane.table.records import item_key
    from tests.builders import DOMAIN, PROJECT, action_id, create_run_request

    context = LambdaContext(function_name="UpdateActionFunction")
    raw = aws_http.dynamodb_client()
    create_run_service().create_run(create_run_request("bench-status"))
    event = http_event(
        f"{update_action.INTERNAL}/UpdateActionStatus",
        internal.UpdateActionStatusRequest(
            action_id=action_id("bench-status", "a0"), status=wf.ActionStatus(phase=phases.RUNNING, attempts=1)
        ),
    )
    key = item_key(ActionKey(project=PROJECT, domain=DOMAIN, run="bench-status", name="a0"))

    client = update_action.lifecycle()._store.client
    sent: dict[str, Any] = {}
    original = client.update_item

    def capture(**kwargs: Any) -> Any:
        sent.update(kwargs)
        return original(**kwargs)

    cast(Any, client).update_item = capture  # the request the handler makes, to replay it raw
    try:
        handler_call_seconds = timed(lambda: update_action.handler(event, context))
    finally:
        cast(Any, client).update_item = original
    assert sent and handler_call_seconds > 0

    def handler_call() -> None:
        response = update_action.handler(event, context)
        assert response["statusCode"] == 200, response

    def raw_simple() -> None:
        raw.update_item(
            TableName=resources.table_name,
            Key=key,
            UpdateExpression="SET phase = :p, updated_at = :now",
            ConditionExpression="attribute_exists(pk) AND phase <= :p",
            ExpressionAttributeValues={":p": {"N": str(phases.RUNNING)}, ":now": {"S": "2026-01-01T00:00:00.000000Z"}},
        )

    result = interleaved(
        calls,
        handler=lambda: timed(handler_call),
        raw_guarded=lambda: timed(lambda: raw.update_item(**sent)),
        raw_simple=lambda: timed(raw_simple),
    )
    return {
        "calls": calls,
        **result,
        "ratio": result["handler"]["median_ms"] / result["raw_guarded"]["median_ms"],
        "ratio_to_simple": result["handler"]["median_ms"] / result["raw_simple"]["median_ms"],
        "condition": sent["ConditionExpression"],
        "update": sent["UpdateExpression"],
    }


def write_units(*, baseline_ref: str | None) -> dict[str, Any]:
    """The lives of ``benchmarks.write_units``, on this code and on the baseline's, each in a
    process of its own (the baseline's ``functions`` and ``runplane`` first on its path)."""
    results = {"current": _write_units_in(None)}
    if baseline_ref:
        from benchmarks import layout

        with tempfile.TemporaryDirectory(prefix="bench-units-") as scratch:
            source = layout.checkout(baseline_ref, Path(scratch) / "source")
            results["baseline"] = _write_units_in(source)
    return results


def _write_units_in(source: Path | None) -> dict[str, Any]:
    from benchmarks.fixtures import figures_of

    with tempfile.TemporaryDirectory() as cwd:  # not the repository: its functions/ would come first
        return figures_of(
            "benchmarks.write_units", ["--json"], source=source, cwd=Path(cwd) if source is not None else REPO
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--warm-calls", type=int, default=300)
    parser.add_argument(
        "--baseline", default="HEAD", help="git ref measured side by side (cold starts, write units); '' for none"
    )
    args = parser.parse_args(argv)
    if args.cold_runs < 5:
        parser.error("--cold-runs must be at least 5")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    cold = cold_starts(args.cold_runs, baseline_ref=args.baseline or None)
    print(f"Cold start (import + first-call set-up, as shipped, {args.cold_runs} interleaved runs)")
    print(f"  {'function':<28}{'median wall':>12}{'min':>8}{'max':>8}{'median CPU':>12}{'baseline':>10}{'ratio':>7}")
    baseline = cold.get("baseline", {})
    for name, r in cold["current"].items():
        before = baseline.get(name)
        line = f"  {name:<28}{r['median_wall_ms']:>10.1f}ms{r['min_wall_ms']:>6.0f}ms{r['max_wall_ms']:>6.0f}ms"
        line += f"{r['median_cpu_ms']:>10.1f}ms"
        if before:
            line += f"{before['median_wall_ms']:>8.1f}ms{r['median_wall_ms'] / before['median_wall_ms']:>7.2f}"
        print(line)

    with contextlib.redirect_stdout(io.StringIO()):  # the handlers' EMF metric lines
        warm = warm_handlers(args.warm_calls)
    w = warm["create_run"]
    print(
        f"\nWarm CreateRun handler vs the raw calls it cannot avoid, same moto server, {w['calls']} interleaved calls"
    )
    print(
        f"  SDK path (inputs offloaded)  {w['sdk_handler']['median_ms']:.2f} ms vs PutItem {w['sdk_raw']['median_ms']:.2f} ms"
    )
    print(f"    ratio {w['ratio']:.2f}x")
    print(
        f"  inline inputs                {w['inline_handler']['median_ms']:.2f} ms vs PutObject + PutItem "
        f"{w['inline_raw']['median_ms']:.2f} ms"
    )
    print(f"    ratio {w['inline_ratio']:.2f}x")
    w = warm["update_action_status"]
    print(f"\nWarm UpdateActionStatus handler vs raw UpdateItems, same moto server, {w['calls']} interleaved calls")
    print(f"  handler                      {w['handler']['median_ms']:.2f} ms")
    print(f"  raw, the same guarded update {w['raw_guarded']['median_ms']:.2f} ms   ratio {w['ratio']:.2f}x")
    print(f"  raw, the simpler update      {w['raw_simple']['median_ms']:.2f} ms   ratio {w['ratio_to_simple']:.2f}x")

    units = write_units(baseline_ref=args.baseline or None)
    print("\nWrite request units of an action's life (computed from stored item sizes)")
    for life in ("root", "child", "earlier_life"):
        now, before = units["current"][life], units.get("baseline", {}).get(life, {})
        steps = ", ".join(f"{name} {value}" for name, value in now.items() if name != "total")
        was = f" (baseline {before['total']})" if before else ""
        print(f"  {life:<13}{now['total']:>4}{was}: {steps}")

    from benchmarks.fixtures import save_figures

    save_figures("handlers", {"cold_start": cold, "warm": warm, "write_units": units})
    return 0


if __name__ == "__main__":
    sys.exit(main())
