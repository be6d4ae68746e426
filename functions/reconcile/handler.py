"""Lambda entry point of reconcile: a DynamoDB Streams batch -> per-record reconcile.

Partial batch responses (``batchItemFailures``) come from Powertools' BatchProcessor, ordered so a
child never goes before its parent (``batch``): a record whose reconcile raised is reported, and
the event source mapping retries from it, bounded by the mapping's retry settings, then sends it
to the on-failure destination.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from functions.reconcile.batch import RunOrderedBatchProcessor
from functions.reconcile.cluster import TaskActionClient
from functions.reconcile.reconciler import ActionChange, Reconciler
from runplane.blobs import BlobStore
from runplane.settings import reconcile_settings
from runplane.store import ActionStore

logger = Logger(service="reconcile")
copy_config_to_registered_loggers(source_logger=logger, include={"runplane", "functions"})

@cache
def reconciler() -> Reconciler:
    """The Kubernetes client and its credentials are built once per container."""
    settings = reconcile_settings()
    return Reconciler(
        cluster=TaskActionClient.from_settings(settings),
        store=ActionStore(table_name=settings.actions_table, blobs=BlobStore()),
        max_attempts=settings.max_attempts,
    )


@cache
def processor() -> RunOrderedBatchProcessor:
    return RunOrderedBatchProcessor(concurrency=reconcile_settings().concurrency)


def process_batch(
    event: dict[str, Any], context: Any, *, reconciler: Reconciler, processor: RunOrderedBatchProcessor
) -> dict[str, Any]:
    """One stream batch through the reconciler; the partial batch response for the mapping."""
    changes = {r["dynamodb"]["SequenceNumber"]: ActionChange.from_stream_record(r) for r in event.get("Records", [])}
    states = reconciler.current_states(list(changes.values()))  # one BatchGetItem, not one read per record

    def record_handler(record: DynamoDBRecord) -> str:
        change = changes[record.raw_event["dynamodb"]["SequenceNumber"]]
        return reconciler.handle(change, states=states).value

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, context, reconciler=reconciler(), processor=processor())
