"""Reconcile benchmarks, on the real control plane and moto, side by side in one run.

    .venv/bin/python -m benchmarks.reconcile [--runs 10] [--abort-actions 1000] [--baseline REF]

Materialisation rate: stream records of ``--runs`` runs of 31 actions each (a0, 5 children, 25
grandchildren) are read from the stream first, so moto's slow GetRecords is not measured; then the
reconcile handler's batch processing (a record after its own and its parent's earlier records,
everything else concurrently, each record decided on the table's current item) is timed over
them. Against it, on the same API server and moto:

- the same number of TaskActions created serially, one raw ``create_namespaced_custom_object``
  after another (the figure this benchmark has always reported);
- the raw floor: the same calls at the same concurrency, nothing else. Per stream batch, the
  BatchGetItems of the items reconcile decides on (10 keys, then 30 each, 4 in flight, in the
  order reconcile reads them, ``functions.reconcile.batch.handling_order`` where the code has it;
  projecting what reconcile projects, ``runplane.table.actions.ACTION_STATE_PROJECTION``, or whole items
  for code without it), a GET of each parent created in an earlier batch, and the creates,
  ``--concurrency`` in flight, each after its parent's create and its own read, made with the
  code's own ``TaskActionClient`` (as reconcile makes them: since the hot calls bypass the
  generated client, that is not the same as ``create_namespaced_custom_object``);
- the API server's ceiling (the creates alone, ``--concurrency`` in flight, with the code's
  ``TaskActionClient``), and moto's BatchGetItem time per 100 keys: the stand-ins' own costs.

Abort: a run of ``--abort-actions`` actions (a0, 10 children, 100 grandchildren, the rest great-
grandchildren) is materialised, then AbortRun is requested; timed until the last descendant's
TaskAction is gone from the API server (the garbage collector's work) and until every action is
ABORTED in the table.

Children are written as Enqueue builds them, by BatchWriteItem rather than one transaction each:
moto copies the whole table for every transaction, which made setting up the 1,000-action run
take minutes. With ``--baseline REF`` the same benchmark then runs on that ref's code, in a
process of its own, and both are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from benchmarks.fixtures import OutOfProcessMoto, enqueue_all, figures_of, save_figures

REPO = Path(__file__).resolve().parent.parent

__all__ = ["OutOfProcessMoto", "enqueue_all", "keys_read", "measure", "run_with_prerequisites"]


def keys_read(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The items reconcile decides a new task action on: the action and its parent."""
    image = record["dynamodb"].get("NewImage") or {}
    keys = record["dynamodb"]["Keys"]
    if record["eventName"] != "INSERT" or not keys["sk"]["S"].startswith("A#") or "run_name" not in image:
        return []
    parent = image.get("parent", {}).get("S")
    return [keys] + ([{"pk": keys["pk"], "sk": {"S": f"A#{parent}"}}] if parent else [])


def run_with_prerequisites(
    pool: ThreadPoolExecutor, tasks: list[tuple[Callable[[], Any], list[Future[Any]], Future[Any]]]
) -> None:
    """Run each task once the futures it waits for are done (so no worker sits blocked on them),
    its outcome into its own future (the third element). A task may wait for earlier tasks'."""
    for task, waits, result in tasks:
        remaining = [len(waits) + 1]
        lock = threading.Lock()

        def release(
            _: object = None,
            task: Callable[[], Any] = task,
            result: Future[Any] = result,
            remaining: list[int] = remaining,
            lock: threading.Lock = lock,
        ) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return

            def run() -> None:
                try:
                    result.set_result(task())
                except Exception as exc:
                    result.set_exception(exc)

            pool.submit(run)

        for wait in waits:
            wait.add_done_callback(release)
        release()


def measure(*, runs: int, abort_actions: int, concurrency: int, rounds: int = 3) -> dict[str, Any]:
    import logging

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    logging.getLogger("functions").setLevel(logging.WARNING)
    import boto3
    from flyteidl2.common.identifier_pb2 import RunIdentifier
    from flyteidl2.workflow import run_service_pb2 as runs_pb2
    from kubernetes import client as k8s
    from kubernetes import config

    import runplane.table.actions as store_module
    from functions.create_run.service import CreateRunService
    from functions.reconcile import batch as batch_module
    from functions.reconcile.batch import RunOrderedBatchProcessor
    from functions.reconcile.handler import process_batch
    from functions.reconcile.reconciler import Reconciler
    from functions.reconcile.taskaction import build_taskaction
    from functions.update_action.service import ActionLifecycleService
    from local_stack.aws import aws_environment, provision
    from local_stack.kube import KubeControlPlane
    from local_stack.lambda_runtime import LambdaContext
    from local_stack.stream_poller import StreamPoller
    from runplane.aws.blobs import BlobStore
    from runplane.flyte import phases
    from runplane.flyte.identifiers import ActionKey, taskaction_name
    from runplane.kube.client import TaskActionClient
    from runplane.table.actions import ActionStore
    from runplane.table.records import ActionRecord
    from tests.builders import DOMAIN, PROJECT, child_task_action, create_run_request

    state = Path(tempfile.mkdtemp(prefix="bench-kube-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    moto = OutOfProcessMoto()  # its own interpreter: no GIL shared with reconcile's threads
    kube = KubeControlPlane(state_dir=state)
    try:
        os.environ.update(aws_environment(moto.endpoint))
        kube.start()
        configuration = k8s.Configuration()
        config.load_kube_config(config_file=str(kube.endpoints.kubeconfig), client_configuration=configuration)
        # Sized before the client is built, which makes its connection pool: a connection kept for
        # each call in flight, reconcile's and the raw calls' alike (set afterwards, as this once
        # was, it had no effect: the pool stayed at the default, 10 on 2 cores).
        configuration.connection_pool_maxsize = concurrency
        api_client = k8s.ApiClient(configuration)
        cluster = TaskActionClient(api_client=api_client, namespace="flyte")
        table = provision(endpoint=moto.endpoint, table_name="bench-reconcile", bucket="bench-data")
        store = ActionStore(table_name=table.table_name, blobs=BlobStore(), spec_prefix="s3://bench-data")
        create = CreateRunService(store=store, blobs=BlobStore(), storage_prefix="s3://bench-data")
        lifecycle = ActionLifecycleService(store=store)
        reconciler = Reconciler(cluster=cluster, store=store)
        processor = RunOrderedBatchProcessor(concurrency=concurrency)
        dynamodb = boto3.client("dynamodb")
        # What reconcile's reads project (None: whole items, as the code before it read them).
        projection: str | None = getattr(store_module, "ACTION_STATE_PROJECTION", None)

        def batch_get(keys: list[dict[str, Any]]) -> Any:
            request: dict[str, Any] = {"Keys": keys, "ConsistentRead": True}
            if projection:
                request["ProjectionExpression"] = projection
            return dynamodb.batch_get_item(RequestItems={table.table_name: cast("Any", request)})

        raw = k8s.CustomObjectsApi(api_client)
        objects = ("flyte.org", "v1", "flyte", "taskactions")

        def tree(run: str, fanouts: list[int], *, extra: int = 0) -> int:
            create.create_run(create_run_request(run))
            level, requests = ["a0"], list[Any]()
            for fanout in fanouts:
                next_level = []
                for parent in level:
                    for _ in range(fanout):
                        name = f"n{len(requests) + 1}"
                        requests.append(child_task_action(run, name, parent=parent))
                        next_level.append(name)
                level = next_level
            # the rest spread over the last level (for the abort: great-grandchildren)
            requests += [child_task_action(run, f"g{i}", parent=level[i % len(level)]) for i in range(extra)]
            enqueue_all(store, requests)
            return 1 + len(requests)

        collected: list[dict[str, Any]] = []
        stream = StreamPoller(
            streams_client=boto3.client("dynamodbstreams"),
            stream_arn=table.stream_arn,
            handler=lambda e, c: collected.append(e),
        )

        def stream_batches() -> list[dict[str, Any]]:
            """The stream's records since the last call, as Lambda would batch them."""
            collected.clear()
            stream.drain()
            return list(collected)

        def delete_all() -> None:
            raw.delete_collection_namespaced_custom_object(*objects, label_selector="flyte.org/project")
            while cast("dict[str, Any]", raw.list_namespaced_custom_object(*objects, limit=1))["items"]:
                time.sleep(0.05)

        # --- materialisation rate -----------------------------------------------------------
        run_names = [f"m{uuid.uuid4().hex[:10]}" for _ in range(runs)]
        actions = sum(tree(run, [5, 5]) for run in run_names)
        batches = stream_batches()
        context = LambdaContext(function_name="ReconcileFunction", timeout_seconds=900)

        def time_reconcile() -> float:
            """Reconcile over the batches; the actions are still QUEUED, so every round creates all."""
            started = time.perf_counter()
            for batch in batches:
                response = process_batch(batch, context, reconciler=reconciler, processor=processor)
                assert not response.get("batchItemFailures"), response
            return time.perf_counter() - started

        # The same calls, raw, at the same concurrency: per batch, the BatchGetItems of the items
        # reconcile decides on (10 keys, then 30 each, 4 in flight), a GET of each parent created in an
        # earlier batch, and the creates, 16 in flight, each after its parent's and its read.
        records = {
            (action.key.run, action.key.name): action
            for run in run_names
            for action in store.list_actions(ActionKey(project=PROJECT, domain=DOMAIN, run=run, name="a0").run_key)
        }

        def body_of(action: ActionRecord, parent: dict[str, Any] | None) -> dict[str, Any]:
            body = build_taskaction(store.resolve_specs(action), namespace="flyte", parent=parent)
            return body

        def in_reading_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            """The records in the order reconcile reads their items (record order before it had one)."""
            order = getattr(batch_module, "handling_order", None)
            return [records[position] for position in order(records)] if order else records

        def time_floor() -> float:
            created: dict[str, Future[Any]] = {}
            started = time.perf_counter()
            with (
                ThreadPoolExecutor(max_workers=4) as readers,
                ThreadPoolExecutor(max_workers=concurrency) as workers,
            ):
                for batch in batches:
                    inserts = [r for r in in_reading_order(batch["Records"]) if keys_read(r)]
                    keys = list({json.dumps(k, sort_keys=True): k for r in inserts for k in keys_read(r)}.values())
                    chunks, start = {}, 0
                    while start < len(keys):  # reconcile's reads: 10 keys first, then 30 per call
                        chunk = keys[start : start + (30 if start else 10)]
                        start += len(chunk)
                        read = readers.submit(batch_get, chunk)
                        for key in chunk:
                            chunks[json.dumps(key, sort_keys=True)] = read
                    tasks: list[tuple[Callable[[], Any], list[Future[Any]], Future[Any]]] = []
                    in_batch: set[str] = set()
                    for record in inserts:
                        image = record["dynamodb"]["NewImage"]
                        run, name = image["run_name"]["S"], image["name"]["S"]
                        parent = image.get("parent", {}).get("S")
                        action = records[(run, name)]
                        waits: list[Future[Any]] = [chunks[json.dumps(record["dynamodb"]["Keys"], sort_keys=True)]]
                        scope = {"project": image["project"]["S"], "domain": image["domain"]["S"], "run": run}
                        parent_name = taskaction_name(ActionKey(**scope, name=parent)) if parent else None
                        if parent_name in in_batch:
                            waits.append(created[parent_name])
                        else:
                            parent_name = parent_name and f"get:{parent_name}"

                        def create_one(action: ActionRecord = action, parent_name: str | None = parent_name) -> Any:
                            parent_body = None
                            if parent_name and parent_name.startswith("get:"):
                                parent_body = cluster.get(parent_name[4:])
                            elif parent_name:
                                parent_body = cast("dict[str, Any]", created[parent_name].result())
                            return cluster.create(body_of(action, parent_body))

                        own_name = taskaction_name(ActionKey(**scope, name=name))
                        created[own_name] = Future()
                        tasks.append((create_one, waits, created[own_name]))
                        in_batch.add(own_name)
                    run_with_prerequisites(workers, tasks)
                    for future in list(created.values()):
                        future.result()  # batches one after another, as the stream delivers them
            return time.perf_counter() - started

        # The reads alone (the same BatchGetItems, 4 in flight, batch after batch): how much of
        # the time moto's reads take by themselves.
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as readers:
            for batch in batches:
                ordered = in_reading_order(batch["Records"])
                keys = list({json.dumps(k, sort_keys=True): k for r in ordered for k in keys_read(r)}.values())
                reads, start = [], 0
                while start < len(keys):
                    chunk = keys[start : start + (30 if start else 10)]
                    start += len(chunk)
                    reads.append(readers.submit(batch_get, chunk))
                for read in reads:
                    read.result()
        reads_seconds = time.perf_counter() - started

        bodies = [
            body_of(
                a, {"metadata": {"name": f"{a.key.run}-{a.parent}", "uid": str(uuid.uuid4())}} if a.parent else None
            )
            for a in records.values()
        ]
        for body in bodies:
            body["metadata"]["name"] = "raw-" + body["metadata"]["name"]

        def time_serial() -> float:
            started = time.perf_counter()
            for body in bodies:
                raw.create_namespaced_custom_object(*objects, body)
            return time.perf_counter() - started

        def time_concurrent() -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:  # the API server's own ceiling here
                list(pool.map(cluster.create, bodies))
            return time.perf_counter() - started

        # Rounds taking turns, so a change of the machine's load touches every figure alike;
        # medians. Every round starts from an empty namespace.
        timings: dict[str, list[float]] = {"reconcile": [], "floor": [], "serial": [], "concurrent": []}
        for _ in range(rounds):
            for name, measure_once in (
                ("reconcile", time_reconcile),
                ("floor", time_floor),
                ("serial", time_serial),
                ("concurrent", time_concurrent),
            ):
                timings[name].append(measure_once())
                delete_all()
        reconcile_seconds, floor_seconds, serial_seconds, concurrent_seconds = (
            statistics.median(timings[name]) for name in ("reconcile", "floor", "serial", "concurrent")
        )

        # moto's BatchGetItem as reconcile makes it, the reads' own cost here: 100 keys per call, serially
        sample = list(records.values())[:100]
        keys = [{"pk": {"S": f"{PROJECT}#{DOMAIN}#{a.key.run}"}, "sk": {"S": f"A#{a.key.name}"}} for a in sample]
        started = time.perf_counter()
        for _ in range(5):
            batch_get(keys)
        batch_get_ms = (time.perf_counter() - started) / 5 * 1000
        materialise = {
            "actions": actions,
            "batches": len(batches),
            "concurrency": concurrency,
            "reconcile_per_second": actions / reconcile_seconds,
            "raw_floor_per_second": actions / floor_seconds,
            "raw_serial_creates_per_second": len(bodies) / serial_seconds,
            "raw_concurrent_creates_per_second": len(bodies) / concurrent_seconds,
            "moto_batch_get_ms_per_100_keys": batch_get_ms,
            "reads_alone_share_of_reconcile": reads_seconds / reconcile_seconds,
        }
        # The ratios are taken within each round (its figures measured minutes apart at most) and
        # their median reported: a change of the machine's load between rounds cancels out.
        materialise["ratio"] = statistics.median(
            serial / reconciled for serial, reconciled in zip(timings["serial"], timings["reconcile"], strict=True)
        ) * (actions / len(bodies))
        materialise["ratio_to_floor"] = statistics.median(
            floor / reconciled for floor, reconciled in zip(timings["floor"], timings["reconcile"], strict=True)
        )

        # --- abort of a large run -----------------------------------------------------------
        big = f"b{uuid.uuid4().hex[:10]}"
        count = tree(big, [10, 10], extra=max(0, abort_actions - 111))
        for batch in stream_batches():
            process_batch(batch, context, reconciler=reconciler, processor=processor)
        listed = lambda: cast(  # noqa: E731  # the decoded JSON object, typed ``object`` by the client
            "dict[str, Any]",
            raw.list_namespaced_custom_object(*objects, label_selector=f"flyte.org/run={big}", limit=1000),
        )["items"]
        assert len(listed()) == count, (len(listed()), count)

        started = time.perf_counter()
        lifecycle.abort_run(runs_pb2.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=big)))
        abort_timings: dict[str, float] = {}

        def reconcile_abort() -> None:
            for batch in stream_batches():
                process_batch(batch, context, reconciler=reconciler, processor=processor)
            abort_timings["table"] = time.perf_counter() - started

        worker = threading.Thread(target=reconcile_abort)
        worker.start()
        while listed():
            time.sleep(0.02)
        cluster_done = time.perf_counter() - started
        worker.join()
        run_key = ActionKey(project=PROJECT, domain=DOMAIN, run=big, name="a0").run_key
        assert all(a.phase == phases.ABORTED for a in store.list_actions(run_key))
        abort = {
            "actions": count,
            "seconds_until_all_aborted_in_table": abort_timings["table"],
            "seconds_until_last_taskaction_gone": cluster_done,
        }
    finally:
        kube.stop()
        moto.stop()
        shutil.rmtree(state, ignore_errors=True)
    return {"materialise": materialise, "abort": abort}


def measure_baseline(ref: str, *, runs: int, abort_actions: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """The same benchmark on a git ref's code (its functions/ and runplane first on the path),
    in a process of its own."""
    from benchmarks import layout

    options = {"--runs": runs, "--abort-actions": abort_actions, "--concurrency": concurrency, "--rounds": rounds}
    args = ["--json", "--baseline", "", *(str(part) for option in options.items() for part in option)]
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as scratch:
        source = layout.checkout(ref, Path(scratch) / "source")
        return figures_of("benchmarks.reconcile", args, source=source, cwd=Path(scratch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--abort-actions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16, help="reconcile's, and the raw floor's")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the materialisation figures")
    parser.add_argument("--baseline", default="", help="a git ref to measure the same way, after this code")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)

    with contextlib.redirect_stdout(io.StringIO()):  # the EMF metric lines
        results = {
            "current": measure(
                runs=args.runs, abort_actions=args.abort_actions, concurrency=args.concurrency, rounds=args.rounds
            )
        }
    if args.baseline:
        results["baseline"] = measure_baseline(
            args.baseline,
            runs=args.runs,
            abort_actions=args.abort_actions,
            concurrency=args.concurrency,
            rounds=args.rounds,
        )
    if args.json:
        print(json.dumps(results["current"]))
        return 0
    for label, result in results.items():
        m, a = result["materialise"], result["abort"]
        print(f"[{label}] Materialisation: {m['actions']} actions in {args.runs} runs, {m['batches']} stream batches")
        print(f"  reconcile                {m['reconcile_per_second']:8.1f} actions/s")
        print(
            f"  raw serial creates       {m['raw_serial_creates_per_second']:8.1f} creates/s   ratio {m['ratio']:.2f}x"
        )
        print(
            f"  raw floor, same calls at {m['concurrency']} in flight {m['raw_floor_per_second']:8.1f} actions/s"
            f"   ratio {m['ratio_to_floor']:.2f}x"
        )
        print(
            f"  (API server's ceiling: {m['raw_concurrent_creates_per_second']:.1f} creates/s at {m['concurrency']} in flight;"
        )
        print(
            f"   moto's BatchGetItem: {m['moto_batch_get_ms_per_100_keys']:.0f} ms per 100 keys; the reads alone take "
            f"{m.get('reads_alone_share_of_reconcile', 0):.0%} of reconcile's time)"
        )
        print(f"[{label}] Abort of a run of {a['actions']} actions (request -> ...)")
        print(f"  every action ABORTED in the table   {a['seconds_until_all_aborted_in_table']:.2f} s")
        print(f"  last TaskAction gone (GC)           {a['seconds_until_last_taskaction_gone']:.2f} s")
    save_figures("reconcile", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
