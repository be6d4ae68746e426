"""The status mirror against the real control plane and moto: TaskAction status -> the table.

The test writes TaskAction status the way Flyte's executor does (the status subresource, nothing
else) and runs the real watcher; every expectation is read back from the table and the cluster.
Each test watches a shard of its own (97 shards, run names picked to land in it), so resources
other tests left in the namespace are never in its way.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest

from functions.mirror_status.mirror import StatusMirror
from functions.mirror_status.watcher import Result, ShardWatcher
from functions.reconcile.reconciler import Reconciler
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.kube.resources import mirror_shard
from runplane.table.actions import ActionStore
from runplane.table.leases import Checkpoint, MirrorLeases
from tests.builders import DOMAIN, PROJECT, child_task_action, create_run_request, resource_name
from tests.conftest import NAMESPACE, unique_name, wait_for

pytestmark = pytest.mark.integration

SHARDS = 97
LEASE_SECONDS = 5.0  # a dead watcher frees its shard this soon (30 s on Lambda)
_next_shard = itertools.count(1)
GROUP, VERSION, PLURAL = "flyte.org", "v1", "taskactions"


@pytest.fixture
def leases(aws):
    return MirrorLeases(table_name=aws.table_name)


@pytest.fixture
def shard():
    return next(_next_shard)


@pytest.fixture
def run_in(shard, aws, store, cluster):
    """Creates a run (and children) whose resources land in the test's shard, materialised by
    the real reconciler."""
    from functions.create_run.service import CreateRunService
    from functions.update_action.service import ActionLifecycleService
    from runplane.aws.blobs import BlobStore

    reconciler = Reconciler(cluster=cluster, store=store, mirror_shards=SHARDS)
    creator = CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}")
    lifecycle = ActionLifecycleService(store=store)

    def create(*, children: tuple[str, ...] = ()) -> str:
        name = next(n for n in (unique_name("m") for _ in range(100_000)) if mirror_shard(n, shards=SHARDS) == shard)
        creator.create_run(create_run_request(name))
        reconciler.materialise(store.get_action(key(name, "a0")))
        for child in children:
            lifecycle.enqueue(child_task_action(name, child))
            reconciler.materialise(store.get_action(key(name, child)))
        return name

    return create


def key(run: str, action: str) -> ActionKey:
    return ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=action)


def condition(kind: str, reason: str, status: str = "True") -> dict:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": reason,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@pytest.fixture
def set_status(custom_objects):
    """Writes a TaskAction's status as Flyte's executor does: the status subresource only."""

    def write(name: str, *conditions: dict, attempts: int = 1, error: dict | None = None) -> None:
        status = {"attempts": attempts, "conditions": list(conditions)}
        if error:
            status["errorState"] = error
        custom_objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"status": status}
        )

    return write


@pytest.fixture
def watch(shard, cluster, store, leases):
    """Runs a watcher of the test's shard in the background; returns a join function."""
    started: list[tuple[threading.Thread, dict]] = []

    def start(
        *, seconds: float = 20.0, idle_grace: float = 1.5, holder: str | None = None, mirror=None, with_leases=None
    ) -> dict:
        outcome: dict = {}
        watcher = ShardWatcher(
            shard=shard,
            holder=holder or uuid.uuid4().hex,
            cluster=cluster,
            mirror=mirror or StatusMirror(store=store, cluster=cluster),
            leases=with_leases or leases,
            idle_grace_seconds=idle_grace,
            checkpoint_interval_seconds=0.2,
            lease_seconds=LEASE_SECONDS,
        )

        def run() -> None:
            outcome["report"] = watcher.run(deadline=time.monotonic() + seconds)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.append((thread, outcome))
        return outcome

    yield start
    for thread, _ in started:
        thread.join(timeout=60)


def phase_of(store: ActionStore, run: str, action: str = "a0") -> int:
    record = store.get_action(key(run, action), resolve_specs=False)
    assert record is not None, (run, action)
    return record.phase


def test_executor_conditions_flow_into_the_table_and_the_resource_is_labelled(
    run_in, set_status, watch, store, cluster
):
    run = run_in()
    outcome = watch()
    set_status(resource_name(run), condition("Progressing", "Queued"))
    wait_for(
        lambda: phase_of(store, run) == phases.QUEUED and store.get_action(key(run, "a0")).start_time, what="QUEUED"
    )
    set_status(resource_name(run), condition("Progressing", "Executing"))
    wait_for(lambda: phase_of(store, run) == phases.RUNNING, what="RUNNING")
    set_status(resource_name(run), condition("Progressing", "Completed", "False"), condition("Succeeded", "Completed"))
    wait_for(lambda: phase_of(store, run) == phases.SUCCEEDED, what="SUCCEEDED")
    resource = wait_for(
        lambda: (
            (r := cluster.get(resource_name(run)))
            and r["metadata"]["labels"].get("flyte.org/terminal-status-recorded") == "true"
            and r
        ),
        what="the terminal label",
    )
    assert resource
    record = store.get_action(key(run, "a0"))
    assert record.ended_at is not None and record.attempts == 1
    wait_for(lambda: "report" in outcome, timeout=30, what="the watcher to go idle")
    assert outcome["report"].result is Result.IDLE, outcome["report"]


def test_a_failure_carries_the_executors_error_and_retries_are_new_attempts(run_in, set_status, watch, store):
    run = run_in()
    watch()
    set_status(resource_name(run), condition("Progressing", "Executing"))
    wait_for(lambda: phase_of(store, run) == phases.RUNNING, what="RUNNING")
    set_status(resource_name(run), condition("Progressing", "Queued"), attempts=2)  # retried in place
    wait_for(
        lambda: store.get_action(key(run, "a0")).attempts == 2 and phase_of(store, run) == phases.QUEUED,
        what="attempt 2",
    )
    error = {"code": "MaxRetriesExceeded", "kind": "USER", "message": "ValueError: boom"}
    set_status(resource_name(run), condition("Failed", "PermanentFailure"), attempts=2, error=error)
    record = wait_for(lambda: (r := store.get_action(key(run, "a0"))).phase == phases.FAILED and r, what="FAILED")
    assert (record.error_kind, record.error_code, record.error_message) == (
        "KIND_USER",
        "MaxRetriesExceeded",
        "ValueError: boom",
    )


def test_the_first_sight_of_a_child_promotes_its_parent_without_touching_its_attempts(run_in, watch, store):
    from runplane.table.actions import StatusUpdate

    run = run_in(children=("c1",))
    store.update_status(key(run, "a0"), StatusUpdate(phase=phases.QUEUED, attempts=3))
    outcome = watch(seconds=5)
    record = wait_for(
        lambda: (r := store.get_action(key(run, "a0"))).phase == phases.RUNNING and r, what="the promotion"
    )
    assert record.attempts == 3 and record.cache_status == 0  # Flyte's quirk Q8 is not copied
    wait_for(lambda: "report" in outcome, timeout=30, what="the watcher's end")
    assert phase_of(store, run, "c1") == phases.QUEUED  # the executor has not written anything for it


def test_deletion_before_a_terminal_phase_aborts_and_after_it_changes_nothing(
    run_in, set_status, watch, store, cluster
):
    aborted_run, finished_run = run_in(), run_in()
    watch()
    set_status(resource_name(aborted_run), condition("Progressing", "Executing"))
    set_status(resource_name(finished_run), condition("Succeeded", "Completed"))
    wait_for(
        lambda: phase_of(store, aborted_run) == phases.RUNNING and phase_of(store, finished_run) == phases.SUCCEEDED,
        what="phases",
    )
    wait_for(
        lambda: cluster.get(resource_name(finished_run))["metadata"]["labels"].get(
            "flyte.org/terminal-status-recorded"
        ),
        what="label",
    )
    version = store.get_action(key(finished_run, "a0")).version
    cluster.delete(resource_name(aborted_run))
    cluster.delete(resource_name(finished_run))  # the executor's TTL garbage collection
    wait_for(lambda: phase_of(store, aborted_run) == phases.ABORTED, what="ABORTED")
    time.sleep(1.0)
    assert phase_of(store, finished_run) == phases.SUCCEEDED
    assert store.get_action(key(finished_run, "a0")).version == version


def test_foreign_resources_are_skipped_and_nothing_is_written(shard, watch, store, cluster, custom_objects):
    labels = {"runplane/mirror-shard": str(shard)}
    no_identity = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": unique_name("f"), "labels": labels},
    }
    not_ours = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {
            "name": unique_name("f"),
            "labels": {
                **labels,
                "flyte.org/project": PROJECT,
                "flyte.org/domain": DOMAIN,
                "flyte.org/run": "x",
                "flyte.org/action": "a0",
            },
        },
    }
    no_item = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {
            "name": unique_name("f"),
            "labels": {
                **not_ours["metadata"]["labels"],
                "flyte.org/run": unique_name("nx"),
                "app.kubernetes.io/managed-by": "runplane",
            },
        },
    }
    spec = {"runName": "x", "project": PROJECT, "domain": DOMAIN, "actionName": "a0"}
    for body in (no_identity, not_ours, no_item):
        custom_objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, {**body, "spec": spec})
        custom_objects.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            body["metadata"]["name"],
            {"status": {"conditions": [condition("Succeeded", "Completed")]}},
        )
    outcome = watch(seconds=6)
    report = wait_for(lambda: outcome.get("report"), timeout=30, what="the watcher to end")
    assert report.outcomes.get("foreign", 0) >= 3 and report.result in (Result.WATCHED, Result.IDLE)
    run = no_item["metadata"]["labels"]["flyte.org/run"]
    assert store.get_action(key(run, "a0")) is None  # nothing created for a resource we do not own
    for body in (no_identity, not_ours, no_item):
        cluster.delete(body["metadata"]["name"])


def test_a_watch_resumes_from_its_checkpoint_and_a_replay_changes_nothing(
    run_in, set_status, watch, store, leases, shard
):
    run = run_in()
    first = watch(seconds=3, idle_grace=30)
    set_status(resource_name(run), condition("Progressing", "Executing"))
    wait_for(lambda: phase_of(store, run) == phases.RUNNING, what="RUNNING")
    wait_for(lambda: "report" in first, timeout=30, what="the first watcher's end")
    # while nobody watches, the executor goes on
    set_status(resource_name(run), condition("Succeeded", "Completed"))
    time.sleep(0.5)
    assert phase_of(store, run) == phases.RUNNING
    second = watch(seconds=20)
    wait_for(lambda: phase_of(store, run) == phases.SUCCEEDED, what="the resumed watch to see SUCCEEDED")
    wait_for(lambda: "report" in second, timeout=40, what="the second watcher's end")
    assert second["report"].relists == 0  # resumed from the checkpoint, not relisted
    # replay everything from scratch (no checkpoint): the table ends exactly as it was
    before = store.get_action(key(run, "a0"))
    holder = "replayer"
    assert leases.acquire(shard, holder=holder, seconds=30).acquired
    assert leases.checkpoint(shard, holder=holder, seconds=0, checkpoint=Checkpoint())
    replay = watch(seconds=5, holder=holder)
    wait_for(lambda: "report" in replay, timeout=30, what="the replay")
    after = store.get_action(key(run, "a0"))
    assert (after.phase, after.attempts, after.ended_at) == (before.phase, before.attempts, before.ended_at)


def test_an_expired_resource_version_relists_and_finds_deletions_nobody_saw(
    run_in, set_status, watch, store, leases, shard, cluster
):
    run = run_in(children=("c1",))
    first = watch(seconds=3, idle_grace=30)
    set_status(resource_name(run), condition("Progressing", "Executing"))
    wait_for(lambda: phase_of(store, run) == phases.RUNNING, what="RUNNING")
    wait_for(lambda: "report" in first, timeout=30, what="the first watcher's end")
    cluster.delete(resource_name(run, "c1"))  # deleted while nobody watched
    # the checkpointed version is older than anything the API server still keeps
    holder = "aged"
    saved = leases.acquire(shard, holder=holder, seconds=30).checkpoint
    assert resource_name(run, "c1") in saved.open
    assert leases.checkpoint(
        shard, holder=holder, seconds=30, checkpoint=Checkpoint(resource_version="1", open=saved.open)
    )
    assert leases.release(shard, holder=holder)
    second = watch(seconds=8)
    wait_for(lambda: phase_of(store, run, "c1") == phases.ABORTED, timeout=30, what="the unseen deletion to abort c1")
    wait_for(lambda: "report" in second, timeout=40, what="the second watcher's end")
    assert second["report"].relists >= 1
    assert phase_of(store, run) == phases.RUNNING


def test_a_task_collected_while_nobody_watched_reads_succeeded_after_a_relist(
    run_in, set_status, watch, store, leases, shard, cluster
):
    """The executor garbage-collects terminated TaskActions after a TTL (0 here) without waiting
    for the mirror's label: a task that succeeds while the mirror is stopped is gone by the next
    relist. Its events were recorded before its status (updateTaskActionStatus), the ABORTED of
    its deletion after them (handleAbortAndFinalize): the tombstone reads SUCCEEDED, not ABORTED."""
    from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
    from flyteidl2.workflow import run_definition_pb2 as wf

    from functions.update_action.service import ActionLifecycleService
    from tests.builders import action_id

    run = run_in()
    first = watch(seconds=3, idle_grace=30)
    set_status(resource_name(run), condition("Progressing", "Executing"))
    wait_for(lambda: phase_of(store, run) == phases.RUNNING, what="RUNNING")
    wait_for(lambda: "report" in first, timeout=30, what="the first watcher's end")

    # the mirror is stopped: the executor records the success, writes the status, then its TTL-0
    # collection deletes the resource and records the ABORTED of the deletion
    def executor_event(phase, second: int) -> wf.ActionEvent:
        event = wf.ActionEvent(id=action_id(run, "a0"), attempt=1, phase=phase, version=0)
        event.updated_time.FromSeconds(1_800_000_000 + second)
        event.reported_time.FromSeconds(1_800_000_000 + second)
        return event

    lifecycle = ActionLifecycleService(store=store)
    lifecycle.record_events(events_proxy.RecordRequest(events=[executor_event(phases.SUCCEEDED, 30)]))
    set_status(resource_name(run), condition("Succeeded", "Completed"))
    lifecycle.record_events(events_proxy.RecordRequest(events=[executor_event(phases.ABORTED, 31)]))
    cluster.delete(resource_name(run))
    wait_for(lambda: cluster.get(resource_name(run)) is None, what="the collection")

    holder = "aged"  # a stale checkpoint: the API server no longer has its version
    saved = leases.acquire(shard, holder=holder, seconds=30).checkpoint
    assert resource_name(run) in saved.open
    assert leases.checkpoint(
        shard, holder=holder, seconds=30, checkpoint=Checkpoint(resource_version="1", open=saved.open)
    )
    assert leases.release(shard, holder=holder)
    second = watch(seconds=8)
    wait_for(lambda: "report" in second, timeout=40, what="the second watcher's end")
    assert second["report"].relists >= 1
    record = store.get_action(key(run, "a0"))
    assert record.phase == phases.SUCCEEDED
    assert record.ended_at is not None and record.ended_at.timestamp() == 1_800_000_030


def test_an_invalid_spec_fails_with_the_conditions_message_as_the_error(run_in, set_status, watch, store):
    """validateTaskAction fails: a Failed and a Progressing condition with the message, no
    errorState, no event (reconcileTask)."""
    run = run_in()
    watch()
    message = "required spec fields are empty: [inputUri]"
    failed = {**condition("Failed", "InvalidSpec"), "message": message}
    progressing = {**condition("Progressing", "InvalidSpec", "False"), "message": message}
    set_status(resource_name(run), failed, progressing, attempts=0)
    record = wait_for(lambda: (r := store.get_action(key(run, "a0"))).phase == phases.FAILED and r, what="FAILED")
    assert (record.error_code, record.error_message) == ("InvalidSpec", message)


def test_two_watchers_of_a_shard_never_both_watch(run_in, watch):
    run_in()
    first = watch(seconds=6, idle_grace=30)
    time.sleep(1.0)
    second = watch(seconds=3, idle_grace=30)  # arrives while the first holds the lease
    wait_for(lambda: "report" in first and "report" in second, timeout=40, what="both watchers to end")
    assert first["report"].result is Result.WATCHED
    assert second["report"].result is Result.LEASE_HELD and second["report"].events == 0


def test_a_watcher_leaves_at_once_when_the_holder_plans_to_watch_for_long(run_in, watch, leases, shard):
    run_in()
    assert leases.acquire(shard, holder="long", seconds=60, planned_seconds=600).acquired
    started = time.monotonic()
    outcome = watch(seconds=20)
    wait_for(lambda: "report" in outcome, timeout=10, what="the watcher to leave")
    assert outcome["report"].result is Result.LEASE_HELD and time.monotonic() - started < 3
    assert leases.release(shard, holder="long")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_watcher_killed_mid_stream_is_resumed_by_the_next_one(
    run_in, set_status, watch, store, cluster, shard, aws, leases
):
    run = run_in()

    class Crash(BaseException):
        """A Lambda timeout or an out-of-memory kill: nothing after it runs."""

    class DyingMirror(StatusMirror):
        def apply(self, event_type, resource, *, unwatched=False):
            if (resource.get("status") or {}).get("conditions"):
                raise Crash("the invocation was killed")
            return super().apply(event_type, resource, unwatched=unwatched)

    class NoRelease(MirrorLeases):
        def release(self, shard, *, holder):  # a killed invocation never releases its lease
            return False

    dying = watch(
        seconds=8,
        idle_grace=30,
        mirror=DyingMirror(store=store, cluster=cluster),
        with_leases=NoRelease(table_name=aws.table_name),
    )
    time.sleep(1.0)
    set_status(resource_name(run), condition("Progressing", "Executing"))
    time.sleep(1.0)
    assert phase_of(store, run) == phases.QUEUED and "report" not in dying
    wait_for(lambda: not leases.active(shard), timeout=2 * LEASE_SECONDS, what="the dead watcher's lease to expire")
    watch(seconds=10)
    wait_for(lambda: phase_of(store, run) == phases.RUNNING, what="RUNNING, mirrored by the successor")


def test_an_idle_shard_returns_at_once(shard, cluster, store, leases):
    watcher = ShardWatcher(
        shard=shard, holder="idle", cluster=cluster, mirror=StatusMirror(store=store, cluster=cluster), leases=leases
    )
    started = time.monotonic()
    report = watcher.run(deadline=time.monotonic() + 60)
    assert report.result is Result.IDLE and time.monotonic() - started < 2
    assert not leases.active(shard)  # released for the next invocation
