"""Reconcile benchmarks, on the real control plane and moto, side by side in one run.

    .venv/bin/python -m benchmarks.reconcile [--runs 10] [--abort-actions 1000]

Materialisation rate: stream records of ``--runs`` runs of 31 actions each (a0, 5 children, 25
grandchildren) are read from the stream first, so moto's slow GetRecords is not measured; then the
reconcile handler's batch processing (ordered waves, concurrent within a wave, each record
checked against the table) is timed over them. Against it: the same number of TaskActions
created serially, one raw ``create_namespaced_custom_object`` after another, on the same API
server. The ratio is reconcile's rate over the raw serial rate.

Abort: a run of ``--abort-actions`` actions (a0, 10 children, 100 grandchildren, the rest great-
grandchildren) is materialised, then AbortRun is requested; timed until the last descendant's
TaskAction is gone from the API server (the garbage collector's work) and until every action is
ABORTED in the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent


class OutOfProcessMoto:
    """The local stack's moto (made atomic) in a process of its own."""

    def __init__(self) -> None:
        from local_stack.kube import free_port

        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        script = (
            "import threading; from local_stack.aws import MotoServer; "
            f"MotoServer(port={port}).start(); threading.Event().wait()"
        )
        self._process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
        import urllib.request

        for _ in range(200):
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--abort-actions", type=int, default=1000)
    args = parser.parse_args(argv)

    import logging
    import os

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    logging.getLogger("functions").setLevel(logging.WARNING)
    import boto3
    from flyteidl2.common.identifier_pb2 import RunIdentifier
    from flyteidl2.workflow import run_service_pb2 as runs
    from kubernetes import client as k8s
    from kubernetes import config

    from functions.create_run.service import CreateRunService
    from functions.reconcile.batch import RunOrderedBatchProcessor
    from functions.reconcile.handler import process_batch
    from functions.reconcile.reconciler import Reconciler
    from functions.reconcile.taskaction import build_taskaction
    from functions.update_action.service import ActionLifecycleService
    from local_stack.aws import aws_environment, provision
    from local_stack.kube import KubeControlPlane
    from local_stack.lambda_runtime import LambdaContext
    from local_stack.stream_poller import StreamPoller
    from runplane import phases
    from runplane.blobs import BlobStore
    from runplane.identifiers import ActionKey
    from runplane.kube.client import TaskActionClient
    from runplane.store import ActionStore
    from tests.builders import DOMAIN, PROJECT, child_task_action, create_run_request

    state = Path(tempfile.mkdtemp(prefix="bench-kube-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    moto = OutOfProcessMoto()  # its own interpreter: no GIL shared with reconcile's threads
    kube = KubeControlPlane(state_dir=state)
    try:
        os.environ.update(aws_environment(moto.endpoint))
        kube.start()
        api_client = config.new_client_from_config(config_file=str(kube.endpoints.kubeconfig))
        api_client.configuration.connection_pool_maxsize = 32
        cluster = TaskActionClient(api_client=api_client, namespace="flyte")
        table = provision(endpoint=moto.endpoint, table_name="bench-reconcile", bucket="bench-data")
        store = ActionStore(table_name=table.table_name, blobs=BlobStore(), spec_prefix="s3://bench-data")
        create = CreateRunService(store=store, blobs=BlobStore(), storage_prefix="s3://bench-data")
        lifecycle = ActionLifecycleService(store=store)
        reconciler = Reconciler(cluster=cluster, store=store)
        processor = RunOrderedBatchProcessor(concurrency=16)
        streams = boto3.client("dynamodbstreams")

        def tree(run: str, fanouts: list[int]) -> int:
            create.create_run(create_run_request(run))
            level, count = ["a0"], 1
            for fanout in fanouts:
                next_level = []
                for parent in level:
                    for _ in range(fanout):
                        name = f"n{count}"
                        lifecycle.enqueue(child_task_action(run, name, parent=parent))
                        next_level.append(name)
                        count += 1
                level = next_level
            return count

        collected: list[dict] = []
        stream = StreamPoller(
            streams_client=streams, stream_arn=table.stream_arn, handler=lambda e, c: collected.append(e)
        )

        def stream_batches() -> list[dict]:
            """The stream's records since the last call, as Lambda would batch them."""
            collected.clear()
            stream.drain()
            return list(collected)

        # --- materialisation rate -----------------------------------------------------------
        run_names = [f"m{uuid.uuid4().hex[:10]}" for _ in range(args.runs)]
        actions = sum(tree(run, [5, 5]) for run in run_names)
        batches = stream_batches()
        context = LambdaContext(function_name="ReconcileFunction", timeout_seconds=900)
        started = time.perf_counter()
        for batch in batches:
            response = process_batch(batch, context, reconciler=reconciler, processor=processor)
            assert not response.get("batchItemFailures"), response
        reconcile_seconds = time.perf_counter() - started

        raw = k8s.CustomObjectsApi(api_client)
        bodies = []
        for run in run_names:
            for action in store.list_actions(ActionKey(project=PROJECT, domain=DOMAIN, run=run, name="a0").run_key):
                parent = None
                if action.parent:
                    parent = {"metadata": {"name": f"raw-{action.key.run}-{action.parent}", "uid": str(uuid.uuid4())}}
                body = build_taskaction(store.resolve_specs(action), namespace="flyte", parent=parent)
                body["metadata"]["name"] = "raw-" + body["metadata"]["name"]
                bodies.append(body)
        started = time.perf_counter()
        for body in bodies:
            raw.create_namespaced_custom_object("flyte.org", "v1", "flyte", "taskactions", body)
        raw_seconds = time.perf_counter() - started
        raw.delete_collection_namespaced_custom_object(
            "flyte.org", "v1", "flyte", "taskactions", label_selector="flyte.org/project"
        )

        def wait_until_empty():
            return raw.list_namespaced_custom_object("flyte.org", "v1", "flyte", "taskactions", limit=1)["items"]

        while wait_until_empty():
            time.sleep(0.05)
        # The API server's own ceiling on this machine: the same creates, 16 at a time.
        from concurrent.futures import ThreadPoolExecutor

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda body: raw.create_namespaced_custom_object("flyte.org", "v1", "flyte", "taskactions", body),
                    bodies,
                )
            )
        concurrent_seconds = time.perf_counter() - started
        materialise = {
            "actions": actions,
            "reconcile_per_second": actions / reconcile_seconds,
            "raw_serial_creates_per_second": len(bodies) / raw_seconds,
            "raw_concurrent_creates_per_second": len(bodies) / concurrent_seconds,
        }
        materialise["ratio"] = materialise["reconcile_per_second"] / materialise["raw_serial_creates_per_second"]
        raw.delete_collection_namespaced_custom_object(
            "flyte.org", "v1", "flyte", "taskactions", label_selector="flyte.org/project"
        )

        # --- abort of a large run -----------------------------------------------------------
        big = f"b{uuid.uuid4().hex[:10]}"
        great = max(0, args.abort_actions - 111)
        count = tree(big, [10, 10, 0])
        # the great-grandchildren spread over the grandchildren
        for i in range(great):
            lifecycle.enqueue(child_task_action(big, f"g{i}", parent=f"n{11 + i % 100}"))
        count += great
        for batch in stream_batches():
            process_batch(batch, context, reconciler=reconciler, processor=processor)
        listed = lambda: cast(  # noqa: E731  # the decoded JSON object, typed ``object`` by the client
            "dict[str, Any]",
            raw.list_namespaced_custom_object(
                "flyte.org", "v1", "flyte", "taskactions", label_selector=f"flyte.org/run={big}", limit=1000
            ),
        )["items"]
        assert len(listed()) == count, (len(listed()), count)

        started = time.perf_counter()
        lifecycle.abort_run(runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=big)))
        timings: dict[str, float] = {}

        def reconcile_abort() -> None:
            for batch in stream_batches():
                process_batch(batch, context, reconciler=reconciler, processor=processor)
            timings["table"] = time.perf_counter() - started

        worker = threading.Thread(target=reconcile_abort)
        worker.start()
        while listed():
            time.sleep(0.02)
        cluster_done = time.perf_counter() - started
        worker.join()
        table_done = timings["table"]
        run_key = ActionKey(project=PROJECT, domain=DOMAIN, run=big, name="a0").run_key
        assert all(a.phase == phases.ABORTED for a in store.list_actions(run_key))
        abort = {
            "actions": count,
            "seconds_until_all_aborted_in_table": table_done,
            "seconds_until_last_taskaction_gone": cluster_done,
        }
    finally:
        kube.stop()
        moto.stop()
        shutil.rmtree(state, ignore_errors=True)

    print(f"Materialisation: {materialise['actions']} actions in {args.runs} runs")
    print(f"  reconcile           {materialise['reconcile_per_second']:8.1f} actions/s")
    print(f"  raw serial creates  {materialise['raw_serial_creates_per_second']:8.1f} creates/s")
    print(f"  ratio               {materialise['ratio']:8.2f}x")
    print(
        f"  (the API server's ceiling here: {materialise['raw_concurrent_creates_per_second']:.1f} creates/s with 16 in flight)"
    )
    print(f"Abort of a run of {abort['actions']} actions (request -> ...)")
    print(f"  every action ABORTED in the table   {abort['seconds_until_all_aborted_in_table']:.2f} s")
    print(f"  last TaskAction gone (GC)           {abort['seconds_until_last_taskaction_gone']:.2f} s")
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "reconcile.json").write_text(json.dumps({"materialise": materialise, "abort": abort}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
