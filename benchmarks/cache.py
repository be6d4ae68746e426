"""Task cache benchmarks: the CacheService handler's look-up and put against the raw DynamoDB calls
each makes (target: at most 1.3x), and a cached fan-out of 50 children through the local stack,
second run against the first.

    .venv/bin/python -m benchmarks.cache [--calls 300] [--children 50] [--skip-fan-out]

Look-up: ``Get`` through ``functions.cache_service.handler`` (an API Gateway event as the executor's
binary-proto request arrives) against the GetItem it sends, captured and replayed raw on the same
client. Put: ``Put`` of a new key each call against the PutItem it sends (the same item shape,
a fresh key). moto in a process of its own, calls interleaved (``benchmarks.handlers``).

Fan-out: the real SDK runs ``cached_fan_out(n, salt)`` twice on a local stack with its data plane
(each child a cached task): the first run executes every child and populates the cache, the second
is served from it (no child process). Wall time of each ``run.wait()``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast


def warm_cache_calls(calls: int) -> dict[str, Any]:
    from flyteidl2.cacheservice import cacheservice_pb2 as base
    from flyteidl2.cacheservice.v2 import cacheservice_pb2 as v2

    from benchmarks.handlers import http_event, interleaved, timed
    from benchmarks.reconcile import OutOfProcessMoto
    from local_stack.aws import aws_environment, provision
    from local_stack.lambda_runtime import LambdaContext

    moto = OutOfProcessMoto()
    try:
        os.environ.update(aws_environment(moto.endpoint))
        resources = provision(endpoint=moto.endpoint, table_name="bench-actions", bucket="bench-data")
        os.environ.update({"ACTIONS_TABLE": resources.table_name})
        from functions.cache_service import handler as cache_handler

        context = LambdaContext(function_name="CacheServiceFunction")
        identifier = v2.Identifier(org="bench", project="flytesnacks", domain="development")
        path = cache_handler.CACHE

        def put_event(key: str) -> dict[str, Any]:
            output = base.CachedOutput(output_uri=f"s3://bench-data/{key}/outputs.pb")
            request = v2.PutCacheRequest(
                base_request=base.PutCacheRequest(key=key, output=output), identifier=identifier
            )
            return http_event(f"{path}/Put", request)

        get_event = http_event(
            f"{path}/Get", v2.GetCacheRequest(base_request=base.GetCacheRequest(key="hit"), identifier=identifier)
        )
        assert cache_handler.handler(put_event("hit"), context)["statusCode"] == 200
        client = cache_handler.cache_service()._store.client
        sent: dict[str, dict[str, Any]] = {}
        for method in ("get_item", "put_item"):
            original = getattr(client, method)

            def capture(_original: Any = original, _method: str = method, **kwargs: Any) -> Any:
                sent[_method] = kwargs
                return _original(**kwargs)

            setattr(client, method, capture)
        assert cache_handler.handler(get_event, context)["statusCode"] == 200
        assert cache_handler.handler(put_event("captured"), context)["statusCode"] == 200
        for method in ("get_item", "put_item"):
            delattr(client, method)  # back to the client's own bound method

        raw_get, raw_put = sent["get_item"], sent["put_item"]

        def handler_get() -> None:
            assert cache_handler.handler(get_event, context)["statusCode"] == 200

        def handler_put() -> None:
            response = cache_handler.handler(put_event(uuid.uuid4().hex), context)
            assert response["statusCode"] == 200, response

        def raw_put_call() -> None:
            key = uuid.uuid4().hex
            item = {**raw_put["Item"], "pk": {"S": f"CACHE#flytesnacks#development#{key}"}}
            cast(Any, client).put_item(**{**raw_put, "Item": item})

        result = interleaved(
            calls,
            handler_get=lambda: timed(handler_get),
            raw_get=lambda: timed(lambda: cast(Any, client).get_item(**raw_get)),
            handler_put=lambda: timed(handler_put),
            raw_put=lambda: timed(raw_put_call),
        )
        return {
            "calls": calls,
            **result,
            "get_ratio": result["handler_get"]["median_ms"] / result["raw_get"]["median_ms"],
            "put_ratio": result["handler_put"]["median_ms"] / result["raw_put"]["median_ms"],
        }
    finally:
        moto.stop()


def cached_fan_out(children: int) -> dict[str, Any]:
    import flyte

    from local_stack.stack import LocalStack, StackConfig
    from tests.e2e.sdk_tasks.cached import cached_fan_out as fan_out

    state = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    stack = LocalStack(StackConfig(state_dir=state, api_port=0, tick_seconds=5))
    try:
        stack.start()
        flyte.init(endpoint=stack.endpoint, insecure=True, org="bench", project="flytesnacks", domain="development")
        salt = int(time.time()) % 100_000
        seconds = []
        outputs = []
        for _ in range(2):
            started = time.perf_counter()
            run = flyte.with_runcontext(mode="remote").run(fan_out, n=children, salt=salt)
            run.wait(quiet=True)
            seconds.append(time.perf_counter() - started)
            assert run.phase == "succeeded", run.phase
            outputs.append(run.outputs()[0])
        assert outputs[0] == outputs[1]  # every child of the second run was a hit
        return {"children": children, "first_s": seconds[0], "second_s": seconds[1], "ratio": seconds[1] / seconds[0]}
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cache", description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--children", type=int, default=50)
    parser.add_argument("--skip-fan-out", action="store_true")
    parser.add_argument("--only", choices=("warm", "fan_out"), help="one part, in this process")
    args = parser.parse_args(argv)
    if args.only == "warm":
        print(json.dumps(warm_cache_calls(args.calls)))
        return 0
    if args.only == "fan_out":
        print(json.dumps(cached_fan_out(args.children)))
        return 0
    # Each part in a process of its own: the handlers' clients are built once per process, for
    # the moto they first met.
    parts = [("warm", ["--calls", str(args.calls)])]
    if not args.skip_fan_out:
        parts.append(("fan_out", ["--children", str(args.children)]))
    results: dict[str, Any] = {}
    for name, extra in parts:
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.cache", "--only", name, *extra],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "POWERTOOLS_LOG_LEVEL": "CRITICAL"},
        )
        results[name] = json.loads(output.stdout.strip().splitlines()[-1])
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
