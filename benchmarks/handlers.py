"""Handler benchmarks: cold starts, and warm CreateRun against a raw conditional PutItem.

    .venv/bin/python -m benchmarks.handlers [--cold-runs 7] [--warm-calls 300]

Cold start: for each Lambda handler, a fresh interpreter imports the handler and does its
first-call set-up (settings, clients; for reconcile the Kubernetes ApiClient), with the function
code laid out and precompiled as the Makefile ships it (unchecked-hash .pyc). Reported: median
and spread of at least 5 runs, wall and CPU, measured inside the process (Lambda's INIT phase),
plus a bare interpreter for reference.

Warm CreateRun: the create_run handler, fed API Gateway events exactly as the SDK's requests
arrive (gzip binary proto), against a raw boto3 conditional PutItem of a same-sized item on the
same moto server. Calls are interleaved so both sides see the same machine load; the ratio is
the figure to watch.
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
    "update_action": ("functions.update_action.handler", ""),
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
    shutil.copytree(REPO / "shared" / "runplane", target / "python" / "runplane", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(target)], check=True
    )
    return target


def cold_starts(runs: int) -> dict[str, dict[str, float]]:
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        code = deployment_layout(Path(scratch))
        kubeconfig = Path(scratch) / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        }))
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": f"{code}:{code / 'python'}",
            "PYTHONNOUSERSITE": "1",
            "ACTIONS_TABLE": "bench-table",
            "DATA_BUCKET": "bench-bucket",
            "KUBECONFIG": str(kubeconfig),
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
                    env=env, capture_output=True, text=True, check=True, cwd=scratch,
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


def warm_create_run(calls: int) -> dict[str, float]:
    from local_stack.aws import MotoServer, aws_environment, provision

    moto = MotoServer().start()
    try:
        os.environ.update(aws_environment(moto.endpoint))
        resources = provision(endpoint=moto.endpoint, table_name="bench-actions", bucket="bench-data")
        os.environ.update({"ACTIONS_TABLE": resources.table_name, "DATA_BUCKET": resources.bucket})

        import boto3

        from functions.create_run import handler as create_run
        from local_stack.lambda_runtime import LambdaContext
        from runplane.identifiers import ActionKey
        from runplane.store import ActionStore
        from tests.builders import DOMAIN, PROJECT, create_run_request

        context = LambdaContext(function_name="CreateRunFunction")
        raw = boto3.client("dynamodb")

        def handler_call(run_name: str | None = None) -> float:
            body = gzip.compress(create_run_request(run_name or f"b{uuid.uuid4().hex[:16]}").SerializeToString())
            event = {
                "version": "2.0",
                "rawPath": create_run.CREATE_RUN,
                "headers": {"content-type": "application/proto", "content-encoding": "gzip"},
                "requestContext": {"http": {"method": "POST", "path": create_run.CREATE_RUN}, "stage": "$default"},
                "body": base64.b64encode(body).decode(),
                "isBase64Encoded": True,
            }
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

        def raw_put() -> float:
            key = ActionKey(project=PROJECT, domain=DOMAIN, run=f"raw{uuid.uuid4().hex[:16]}", name="a0")
            item = sample.with_changes(key=key).to_item()
            start = time.perf_counter()
            raw.put_item(TableName=resources.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
            return time.perf_counter() - start

        for _ in range(20):  # warm both paths: connections, caches
            handler_call()
            raw_put()
        handler_times, raw_times = [], []
        for _ in range(calls):
            handler_times.append(handler_call())
            raw_times.append(raw_put())
        handler_ms = statistics.median(handler_times) * 1000
        raw_ms = statistics.median(raw_times) * 1000
        return {
            "calls": calls,
            "handler_median_ms": handler_ms,
            "handler_p90_ms": statistics.quantiles(handler_times, n=10)[-1] * 1000,
            "raw_put_median_ms": raw_ms,
            "raw_put_p90_ms": statistics.quantiles(raw_times, n=10)[-1] * 1000,
            "ratio_handler_to_raw_put": handler_ms / raw_ms,
        }
    finally:
        moto.stop()


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
        print(f"  {name:<18}{r['median_wall_ms']:>10.1f}ms{r['min_wall_ms']:>6.0f}ms{r['max_wall_ms']:>6.0f}ms{r['median_cpu_ms']:>10.1f}ms")

    warm = warm_create_run(args.warm_calls)
    print(f"\nWarm CreateRun handler vs raw conditional PutItem, same moto server, {warm['calls']} interleaved calls")
    print(f"  handler  median {warm['handler_median_ms']:.2f} ms  p90 {warm['handler_p90_ms']:.2f} ms")
    print(f"  raw put  median {warm['raw_put_median_ms']:.2f} ms  p90 {warm['raw_put_p90_ms']:.2f} ms")
    print(f"  ratio    {warm['ratio_handler_to_raw_put']:.2f}x  (the handler does GetItem + S3 PutObject + PutItem)")

    results_dir = REPO / "benchmarks" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "handlers.json").write_text(json.dumps({"cold_start": cold, "warm_create_run": warm}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
