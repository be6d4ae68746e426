"""Lambda entry point of reconcile: a DynamoDB Streams batch -> per-record reconcile.

Partial batch responses (``batchItemFailures``) come from the batch processor (``batch``), which
orders the records so a child never goes before its parent: a record whose reconcile raised is
reported, and the event source mapping retries from it, bounded by the mapping's retry settings,
then sends it to the on-failure destination. The items the records are decided on are read while
the first records already run (``Reconciler.current_states``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from functions.reconcile.batch import PartialBatchResponse, RunOrderedBatchProcessor, handling_order
from functions.reconcile.reconciler import METRIC_OUTCOMES, RETRIED, ActionChange, BatchState, Outcome, Reconciler
from runplane.aws.blobs import BlobStore
from runplane.aws.run_tokens import KmsSigner, PemSigner, RunTokenMinter, Signer
from runplane.aws.wake import MirrorWaker
from runplane.kube.client import TaskActionClient
from runplane.kube.resources import mirror_shard
from runplane.ops.logs import bind, function_logger
from runplane.ops.metrics import ACTIONS_MATERIALISED, RECONCILE_OUTCOMES, function_metrics
from runplane.ops.settings import RunTokenSettings, reconcile_settings
from runplane.table.actions import ActionStore
from runplane.table.leases import MirrorLeases

logger = function_logger("reconcile")
metrics = function_metrics("reconcile")  # EMF lines, written as each invocation ends

# BatchGetItem calls of one batch in flight at once (STATE_READ_CHUNK keys each): a 100-record
# batch's reads all at once, beside the record workers.
STATE_READERS = 4


@cache
def reconciler() -> Reconciler:
    """The Kubernetes client and its credentials are built once per container."""
    settings = reconcile_settings()
    return Reconciler(
        # as many connections kept open as records are handled at once (see keep_connections)
        cluster=TaskActionClient.from_settings(settings, connections=settings.concurrency),
        store=ActionStore(table_name=settings.actions_table, blobs=BlobStore()),
        max_attempts=settings.max_attempts,
        mirror_shards=settings.mirror_shards,
        run_tokens=run_token_minter(),
    )


def run_token_minter() -> RunTokenMinter | None:
    """The minter of the run tokens pods hold (``RUN_TOKEN_*``; None when not configured)."""
    settings = RunTokenSettings.from_env()
    if not settings.issuer:
        return None
    signer: Signer
    if settings.kms_key_id:
        signer = KmsSigner(key_id=settings.kms_key_id)
    else:
        with open(settings.key_file, "rb") as key_file:
            signer = PemSigner(key_id=settings.key_id, pem=key_file.read())
    return RunTokenMinter(
        signer=signer,
        issuer=settings.issuer,
        audience=settings.audience,
        scope=settings.scope,
        lifetime_seconds=settings.lifetime_seconds,
    )


@cache
def waker() -> MirrorWaker | None:
    """Wakes the status mirror of shards that got new TaskActions (None: not configured)."""
    settings = reconcile_settings()
    if not settings.mirror_function:
        return None
    return MirrorWaker(function_name=settings.mirror_function, leases=MirrorLeases(table_name=settings.actions_table))


@cache
def processor() -> RunOrderedBatchProcessor:
    return RunOrderedBatchProcessor(concurrency=reconcile_settings().concurrency)


def process_batch(
    event: dict[str, Any],
    context: Any,
    *,
    reconciler: Reconciler,
    processor: RunOrderedBatchProcessor,
    waker: MirrorWaker | None = None,
) -> PartialBatchResponse:
    """One stream batch through the reconciler; the partial batch response for the mapping."""
    records: list[dict[str, Any]] = event.get("Records") or []
    changes = [ActionChange.from_stream_record(record) for record in records]
    created_in: set[int] = set()
    outcomes: list[Outcome] = []  # appended from the worker threads, counted here afterwards

    def record_handler(change: ActionChange, states: BatchState) -> str:
        record_of = change.new or change.old
        if record_of is None:
            bind()  # not an action: no run or action on its lines
        else:
            bind(run=str(record_of.key.run_key), action=str(record_of.key))
        outcome = reconciler.handle(change, states=states)
        outcomes.append(outcome)
        if outcome is Outcome.CREATED and change.new is not None:
            created_in.add(mirror_shard(change.new.key.run, shards=reconciler.mirror_shards))
        return outcome.value

    with ThreadPoolExecutor(max_workers=STATE_READERS, thread_name_prefix="reconcile-read") as readers:
        # BatchGetItem, not one read per record; the first records start while the rest is read,
        # read in the order the records can start (every run's root first, then the next level).
        states = reconciler.current_states([changes[position] for position in handling_order(records)], pool=readers)
        response = processor.process(
            records,
            lambda position: record_handler(changes[position], states),
            prerequisites={position: states.reads_of(change) for position, change in enumerate(changes)},
        )
    if waker is not None and created_in:
        waker.wake(created_in)
    _count(outcomes, retried=len(response.get("batchItemFailures") or []))
    return response


def _count(outcomes: list[Outcome], *, retried: int) -> None:
    """The batch's ReconcileOutcomes and ActionsMaterialised (runplane.ops.metrics)."""
    for outcome in outcomes:
        if outcome in METRIC_OUTCOMES:
            metrics.count(RECONCILE_OUTCOMES, Outcome=METRIC_OUTCOMES[outcome])
        if outcome is Outcome.CREATED:
            metrics.count(ACTIONS_MATERIALISED)
    if retried:
        metrics.count(RECONCILE_OUTCOMES, value=retried, Outcome=RETRIED)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    return process_batch(event, context, reconciler=reconciler(), processor=processor(), waker=waker())
