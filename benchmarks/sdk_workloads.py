"""The SDK's hot paths through the whole local stack against the SDK's local mode, in one run.

    .venv/bin/python -m benchmarks.sdk_workloads [--traces 50] [--children 50] [--latency-children 20]
                                                  [--plain-too]

The workloads are ``benchmarks/sdk_tasks.py``, run unchanged both ways by the real ``flyte`` SDK:

- a task whose loop awaits a ``@flyte.trace`` function N times: the overhead per traced call;
- a fan-out of N children with ``asyncio.gather``: the overhead per child;
- a parent that awaits N children one after another and notes when each ``await`` returns: the
  latency from a child's terminal status write in the table (its item's ``updated_at``) to the
  SDK in the parent seeing the child's end (its informer), p50 and p99.

Every workload runs at N and at 0 (the same task, nothing in its loop), both ways: the per-call
overhead is ``((stack(N) - stack(0)) - (local(N) - local(0))) / N``, so the run's own fixed cost
(creating it, starting its parent, seeing it end) is not spread over the calls. Through the stack
the local executor runs every task as a process of its own, forked from its fork server;
``--plain-too`` runs the fan-out a second time on a stack whose executor starts every process the
plain way (``LOCAL_EXECUTOR_FORK_SERVER=0``), for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT, DOMAIN = "flytesnacks", "development"
RESULT_PREFIX = "fan-out seconds: "  # the line --fan-out-only's process reports on


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def run_local(task: Any, **inputs: Any) -> tuple[float, Any]:
    import flyte

    return timed(lambda: flyte.with_runcontext(mode="local").run(task, **inputs).outputs())


def run_remote(task: Any, **inputs: Any) -> tuple[float, Any]:
    import flyte

    def call() -> Any:
        run = flyte.with_runcontext(mode="remote").run(task, **inputs)
        run.wait(quiet=True)
        assert run.phase == "succeeded", (run.name, run.phase)
        return run

    return timed(call)


def start_stack(state: Path) -> Any:
    import flyte

    from local_stack.stack import LocalStack, StackConfig

    stack = LocalStack(StackConfig(state_dir=state, api_port=0, mirror_idle_grace_seconds=5)).start()
    flyte.init(endpoint=stack.endpoint, insecure=True, org="bench", project=PROJECT, domain=DOMAIN)
    return stack


def children_ends_in_table(stack: Any, run_name: str) -> list[float]:
    """The epoch seconds of each child's last write (its terminal status), in creation order."""
    import boto3

    from local_stack.aws import aws_environment

    settings = aws_environment(stack.aws.endpoint)
    client = boto3.client(
        "dynamodb",
        endpoint_url=stack.aws.endpoint,
        region_name=settings["AWS_REGION"],
        aws_access_key_id=settings["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=settings["AWS_SECRET_ACCESS_KEY"],
    )
    items = client.query(
        TableName=stack.aws.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :actions)",
        ExpressionAttributeValues={":pk": {"S": f"{PROJECT}#{DOMAIN}#{run_name}"}, ":actions": {"S": "A#"}},
        ConsistentRead=True,
    )["Items"]
    children = sorted((item for item in items if item["sk"]["S"] != "A#a0"), key=lambda item: item["created_at"]["S"])
    return [datetime.fromisoformat(item["updated_at"]["S"].replace("Z", "+00:00")).timestamp() for item in children]


def fan_out_only(children: int) -> int:
    """The fan-out alone through a stack of this process (--plain-too runs it with plain starts)."""
    from benchmarks.sdk_tasks import fan_out

    state = Path(tempfile.mkdtemp(prefix="bench-sdk-fan-out-"))
    stack = start_stack(state)
    try:
        run_remote(fan_out, n=0)
        seconds = (run_remote(fan_out, n=0)[0], run_remote(fan_out, n=children)[0])
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(RESULT_PREFIX + json.dumps(seconds), flush=True)
    return 0


def plain_fan_out(children: int) -> tuple[float, float]:
    """The fan-out's (0, N) seconds on a stack whose executor starts every process the plain way."""
    import subprocess
    import sys

    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.sdk_workloads", "--fan-out-only", "--children", str(children)],
        env={**os.environ, "LOCAL_EXECUTOR_FORK_SERVER": "0"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith(RESULT_PREFIX))
    zero, many = json.loads(line[len(RESULT_PREFIX) :])
    return zero, many


def overhead(stack_n: float, stack_0: float, local_n: float, local_0: float, n: int) -> float:
    return ((stack_n - stack_0) - (local_n - local_0)) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=50)
    parser.add_argument("--children", type=int, default=50)
    parser.add_argument("--latency-children", type=int, default=20)
    parser.add_argument("--plain-too", action="store_true", help="the fan-out again with plain process starts")
    parser.add_argument("--fan-out-only", action="store_true", help=argparse.SUPPRESS)  # --plain-too's process
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    import flyte

    from benchmarks.sdk_tasks import fan_out, sequential_children, traced_loop

    if args.fan_out_only:
        return fan_out_only(args.children)

    flyte.init()
    for task in (traced_loop, fan_out):  # warm: the first local run imports and sets up what the rest reuse
        run_local(task, n=0)
    local = {
        "traces": (run_local(traced_loop, n=0)[0], run_local(traced_loop, n=args.traces)[0]),
        "fan_out": (run_local(fan_out, n=0)[0], run_local(fan_out, n=args.children)[0]),
    }

    results: dict[str, Any] = {"cores": os.cpu_count(), "local_seconds": local}
    state = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    stack = start_stack(state)
    try:
        run_remote(traced_loop, n=0)  # warm: the code bundle is built and uploaded once
        remote = {
            "traces": (run_remote(traced_loop, n=0)[0], run_remote(traced_loop, n=args.traces)[0]),
            "fan_out": (run_remote(fan_out, n=0)[0], run_remote(fan_out, n=args.children)[0]),
        }
        _, run = run_remote(sequential_children, n=args.latency_children)
        seen = [float(value) for value in run.outputs()[0]]
        ends = children_ends_in_table(stack, run.name)
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)
    results["stack_seconds"] = remote
    latencies = [(saw - end) * 1000 for saw, end in zip(seen, ends, strict=True)]

    per_trace = overhead(*remote["traces"][::-1], *local["traces"][::-1], args.traces)
    per_child = overhead(*remote["fan_out"][::-1], *local["fan_out"][::-1], args.children)
    results.update(
        per_trace_ms=per_trace * 1000,
        per_child_ms=per_child * 1000,
        informer_latency_ms={
            "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
            "samples": latencies,
        },
    )
    print(f"SDK workloads through the local stack vs the SDK's local mode, one run, {os.cpu_count()} cores")
    for name, count, label, value in (
        ("traces", args.traces, "traced calls", per_trace),
        ("fan_out", args.children, "children (asyncio.gather)", per_child),
    ):
        (s0, sn), (l0, ln) = remote[name], local[name]
        print(
            f"  {count} {label}: stack {sn:.1f} s (0 of them: {s0:.1f} s), local {ln:.2f} s (0: {l0:.2f} s): "
            f"overhead {value * 1000:.0f} ms each"
        )
    latency = results["informer_latency_ms"]
    print(
        f"  child's terminal write in the table -> the parent sees it, {len(latencies)} sequential children: "
        f"p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms (max {latency['max']:.0f} ms)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sdk_workloads.json").write_text(json.dumps(results, indent=2))
    if args.plain_too:  # a stack of its own in a process of its own: one stack per process
        results["plain_stack_fan_out_seconds"] = plain_fan_out(args.children)
    if "plain_stack_fan_out_seconds" in results:
        p0, pn = results["plain_stack_fan_out_seconds"]
        plain = overhead(pn, p0, *local["fan_out"][::-1], args.children)
        results["plain_per_child_ms"] = plain * 1000
        print(
            f"  the same fan-out, every process started the plain way: stack {pn:.1f} s (0: {p0:.1f} s): "
            f"overhead {plain * 1000:.0f} ms each; the fork server's is {per_child / plain:.2f}x that"
        )
    (RESULTS / "sdk_workloads.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
