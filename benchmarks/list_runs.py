"""ListRuns benchmark: a project with 10,000 runs, first and tenth page, against a raw Query.

    .venv/bin/python -m benchmarks.list_runs [--runs 10000] [--samples 15]

The runs are written straight into the table (BatchWriteItem of items as CreateRun stores them)
on moto in a process of its own. Timed side by side, interleaved: ListRuns' first page (limit 50),
its tenth page (the token followed nine times first, then the tenth call timed), and a raw
DynamoDB Query for 50 items of one index partition, and the 16 raw Queries a page needs (one per
shard, issued in parallel, nothing else). Also reported: the DynamoDB calls per page.

moto answers a GSI Query by walking the whole table and serialises DynamoDB requests (the local
stack makes it atomic), so locally a page costs about 16 single Queries; on DynamoDB the 16 run
in parallel and a page costs about one. The ratio to the 16 raw Queries is this code's overhead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args(argv)

    import boto3
    from flyteidl2.common import list_pb2
    from flyteidl2.common.identifier_pb2 import ProjectIdentifier
    from flyteidl2.workflow import run_service_pb2 as runs

    from benchmarks.fixtures import OutOfProcessMoto
    from functions.create_run.service import CreateRunService
    from functions.read_runs.service import RunReader
    from local_stack.aws import aws_environment, provision
    from runplane.aws.blobs import BlobStore
    from runplane.connect.pages import PageTokens
    from runplane.flyte.identifiers import ActionKey
    from runplane.table.actions import ActionStore
    from runplane.table.records import RUN_INDEX_NAME
    from tests.builders import DOMAIN, create_run_request

    moto = OutOfProcessMoto()
    try:
        os.environ.update(aws_environment(moto.endpoint))
        table = provision(endpoint=moto.endpoint, table_name="bench-list", bucket="bench-data")
        store = ActionStore(table_name=table.table_name, blobs=BlobStore(), spec_prefix="s3://bench-data")
        project = "bench"
        CreateRunService(store=store, blobs=BlobStore(), storage_prefix="s3://bench-data").create_run(
            create_run_request("sample", project=project)
        )
        sample = store.get_action(ActionKey(project=project, domain=DOMAIN, run="sample", name="a0"))
        assert sample is not None
        client = boto3.client("dynamodb")
        started = time.perf_counter()
        batch: list[WriteRequestTypeDef] = []
        for i in range(args.runs - 1):
            record = sample.with_changes(
                key=ActionKey(project=project, domain=DOMAIN, run=f"r{i:07d}", name="a0"),
                created_at=sample.created_at - timedelta(seconds=i + 1),
            )
            batch.append({"PutRequest": {"Item": record.to_item()}})
            if len(batch) == 25:
                client.batch_write_item(RequestItems={table.table_name: batch})
                batch = []
        if batch:
            client.batch_write_item(RequestItems={table.table_name: batch})
        load_seconds = time.perf_counter() - started

        reader = RunReader(store=store, tokens=PageTokens(secret=b"bench"))
        scope = ProjectIdentifier(name=project, domain=DOMAIN)
        calls = []
        store_client = store.client
        send_query = store_client.query

        def counted_query(**params: Any) -> Any:
            calls.append(1)
            return send_query(**params)

        cast(Any, store_client).query = counted_query  # the store's own client: count the Queries a page sends

        def page(token: str = "") -> runs.ListRunsResponse:
            return reader.list_runs(
                runs.ListRunsRequest(request=list_pb2.ListRequest(limit=50, token=token), project_id=scope)
            )

        token = ""
        for _ in range(9):
            token = page(token).token
        tenth_token = token
        calls.clear()
        page()
        calls_per_page = len(calls)

        def index_query(shard: int, limit: int) -> None:
            """One raw Query of a run-index partition, newest first."""
            client.query(
                TableName=table.table_name,
                IndexName=RUN_INDEX_NAME,
                KeyConditionExpression="run_index_pk = :p",
                ExpressionAttributeValues={":p": {"S": f"{project}#{DOMAIN}#{shard:02d}"}},
                ScanIndexForward=False,
                Limit=limit,
            )

        def raw_query() -> None:
            index_query(0, 50)

        from concurrent.futures import ThreadPoolExecutor

        from runplane.table.records import RUN_INDEX_SHARDS

        def raw_shard_queries() -> None:
            """The same 16 Queries a page needs, issued the same way, with nothing around them."""

            def one(shard: int) -> None:
                index_query(shard, 52)

            with ThreadPoolExecutor(max_workers=RUN_INDEX_SHARDS) as pool:
                list(pool.map(one, range(RUN_INDEX_SHARDS)))

        def timed(call) -> float:
            start = time.perf_counter()
            call()
            return (time.perf_counter() - start) * 1000

        first, tenth, raw, raw_shards = [], [], [], []
        for _ in range(args.samples):
            first.append(timed(page))
            tenth.append(timed(lambda: page(tenth_token)))
            raw.append(timed(raw_query))
            raw_shards.append(timed(raw_shard_queries))
        result = {
            "runs": args.runs,
            "load_seconds": load_seconds,
            "first_page_ms": statistics.median(first),
            "tenth_page_ms": statistics.median(tenth),
            "raw_query_ms": statistics.median(raw),
            "raw_shard_queries_ms": statistics.median(raw_shards),
            "dynamodb_calls_per_page": calls_per_page,
        }
        result["first_page_ratio"] = result["first_page_ms"] / result["raw_query_ms"]
        result["tenth_page_ratio"] = result["tenth_page_ms"] / result["raw_query_ms"]
        result["first_page_ratio_to_shard_queries"] = result["first_page_ms"] / result["raw_shard_queries_ms"]
    finally:
        moto.stop()

    print(f"ListRuns over a project with {result['runs']} runs (limit 50, {args.samples} interleaved samples)")
    print(f"  first page   {result['first_page_ms']:8.1f} ms   {result['first_page_ratio']:6.1f}x the raw Query")
    print(f"  tenth page   {result['tenth_page_ms']:8.1f} ms   {result['tenth_page_ratio']:6.1f}x the raw Query")
    print(f"  raw Query    {result['raw_query_ms']:8.1f} ms   (50 items of one index partition)")
    print(
        f"  16 raw shard Queries {result['raw_shard_queries_ms']:.1f} ms: the page is {result['first_page_ratio_to_shard_queries']:.2f}x that"
    )
    print(f"  DynamoDB calls per page: {result['dynamodb_calls_per_page']} (one Query per shard, in parallel)")
    from benchmarks.fixtures import save_figures

    save_figures("list_runs", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
