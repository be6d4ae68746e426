"""Status-mirror benchmarks, on the real control plane and moto, side by side in one run.

    .venv/bin/python -m benchmarks.mirror [--actions 200] [--samples 100]

Latency: one watcher watches its shard; a TaskAction's status is written (Progressing/Executing,
as Flyte's executor writes it) and the time until the table reads RUNNING is taken, ``--samples``
times, one at a time; p50 and p99.

Throughput: ``--actions`` TaskActions get a new status while no watcher runs; a watcher then
relists the shard and mirrors them all. Against it: the same number of raw guarded UpdateItems
(the status update's condition expression) issued serially on the same moto server. The ratio is
the watcher's rate over the raw rate; one watcher's capacity goes into docs/load-model.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, default=200)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    from kubernetes import client as k8s
    from kubernetes import config

    from benchmarks.fixtures import OutOfProcessMoto
    from functions.create_run.service import CreateRunService
    from functions.mirror_status.mirror import StatusMirror
    from functions.mirror_status.watcher import ShardWatcher
    from functions.reconcile.reconciler import Reconciler
    from local_stack.aws import aws_environment, provision
    from local_stack.kube import KubeControlPlane
    from runplane.aws.blobs import BlobStore
    from runplane.flyte import phases
    from runplane.flyte.identifiers import ActionKey
    from runplane.kube.client import TaskActionClient
    from runplane.table.actions import ActionStore
    from runplane.table.leases import Checkpoint, MirrorLeases
    from runplane.table.records import ActionRecord, format_time, item_key, utcnow
    from tests.builders import DOMAIN, PROJECT, create_run_request

    state = Path(tempfile.mkdtemp(prefix="bench-mirror-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    moto = OutOfProcessMoto()
    kube = KubeControlPlane(state_dir=state)
    try:
        os.environ.update(aws_environment(moto.endpoint))
        kube.start()
        api_client = config.new_client_from_config(config_file=str(kube.endpoints.kubeconfig))
        cluster = TaskActionClient(api_client=api_client, namespace="flyte")
        objects = k8s.CustomObjectsApi(api_client)
        table = provision(endpoint=moto.endpoint, table_name="bench-mirror", bucket="bench-data")
        store = ActionStore(table_name=table.table_name, blobs=BlobStore(), spec_prefix="s3://bench-data")
        create = CreateRunService(store=store, blobs=BlobStore(), storage_prefix="s3://bench-data")
        reconciler = Reconciler(cluster=cluster, store=store)
        leases = MirrorLeases(table_name=table.table_name)
        mirror = StatusMirror(store=store, cluster=cluster)

        def stored(key: ActionKey, *, resolve_specs: bool = True) -> ActionRecord:
            record = store.get_action(key, resolve_specs=resolve_specs)
            assert record is not None, key
            return record

        def new_run() -> str:
            name = f"b{uuid.uuid4().hex[:12]}"
            create.create_run(create_run_request(name))
            reconciler.materialise(stored(ActionKey(PROJECT, DOMAIN, name, "a0")))
            return name

        def executing(name: str) -> None:
            condition = {
                "type": "Progressing",
                "status": "True",
                "reason": "Executing",
                "message": "running",
                "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            objects.patch_namespaced_custom_object_status(
                "flyte.org",
                "v1",
                "flyte",
                "taskactions",
                f"{name}-a0",
                {"status": {"attempts": 1, "conditions": [condition]}},
            )

        def watcher(seconds: float) -> tuple[threading.Thread, dict]:
            result: dict = {}
            shard_watcher = ShardWatcher(
                shard=0,
                holder=uuid.uuid4().hex,
                cluster=cluster,
                mirror=mirror,
                leases=leases,
                idle_grace_seconds=1.0,
            )

            def run() -> None:
                result["report"] = shard_watcher.run(deadline=time.monotonic() + seconds)

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            return thread, result

        # --- latency ------------------------------------------------------------------------
        names = [new_run() for _ in range(args.samples)]
        thread, _ = watcher(600)
        time.sleep(1.0)
        latencies = []
        for name in names:
            key = ActionKey(PROJECT, DOMAIN, name, "a0")
            started = time.perf_counter()
            executing(name)
            while stored(key, resolve_specs=False).phase != phases.RUNNING:
                time.sleep(0.002)
            latencies.append(time.perf_counter() - started)
        for name in names:  # let the watcher end: nothing open once they have ended
            cluster.delete(f"{name}-a0")
        thread.join(timeout=120)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000

        # --- throughput ---------------------------------------------------------------------
        names = [new_run() for _ in range(args.actions)]
        for name in names:
            executing(name)
        assert leases.acquire(0, holder="reset", seconds=1).acquired
        assert leases.checkpoint(0, holder="reset", seconds=0, checkpoint=Checkpoint())  # relist from scratch
        leases.release(0, holder="reset")
        # one invocation that relists the shard and mirrors every resource, then stops: its
        # deadline leaves no time to watch after the relist
        shard_watcher = ShardWatcher(shard=0, holder="throughput", cluster=cluster, mirror=mirror, leases=leases)
        started = time.perf_counter()
        report = shard_watcher.run(deadline=time.monotonic() + 1.0)
        mirrored_seconds = time.perf_counter() - started
        keys = [ActionKey(PROJECT, DOMAIN, n, "a0") for n in names]
        assert all(r.phase == phases.RUNNING for r in store.get_actions(keys).values()), "not every status mirrored"

        raw_names = [new_run() for _ in range(args.actions)]
        started = time.perf_counter()
        for name in raw_names:
            store.client.update_item(
                TableName=table.table_name,
                Key=item_key(ActionKey(PROJECT, DOMAIN, name, "a0")),
                UpdateExpression="SET phase = :p, updated_at = :now ADD version :one",
                ConditionExpression="attribute_exists(pk) AND phase IN (:q, :r)",
                ExpressionAttributeValues={
                    ":p": {"N": str(phases.RUNNING)},
                    ":q": {"N": str(phases.QUEUED)},
                    ":r": {"N": str(phases.RUNNING)},
                    ":now": {"S": format_time(utcnow())},
                    ":one": {"N": "1"},
                },
            )
        raw_seconds = time.perf_counter() - started

        mirror_rate = args.actions / mirrored_seconds
        raw_rate = args.actions / raw_seconds
        print(f"status write -> table, one watcher ({args.samples} samples): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(
            f"mirrored {args.actions} status changes (relist, {report.events} events, {report.relists} relist) in {mirrored_seconds:.2f} s: "
            f"{mirror_rate:.0f}/s; raw guarded UpdateItems, serial: {raw_rate:.0f}/s; ratio {mirror_rate / raw_rate:.2f}x"
        )
    finally:
        kube.stop()
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
