"""The local stream poller against moto's real stream: Lambda's event source mapping semantics."""

from __future__ import annotations

import base64

import boto3
import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from local_stack.aws import provision
from local_stack.stream_poller import StreamPoller
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from runplane.table.records import ActionRecord
from tests.conftest import unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def table(moto_server):
    return provision(endpoint=moto_server.endpoint, table_name=unique_name("tbl"), bucket="poller-data")


def put_actions(table, names):
    store = ActionStore(table_name=table.table_name)
    for name in names:
        store.create_action(
            ActionRecord(key=ActionKey(project="p", domain="d", run="r1", name=name), action_spec=b"\x00\xff")
        )
    return store


class RecordingHandler:
    """A reconcile-shaped handler (Powertools BatchProcessor) that fails chosen actions."""

    def __init__(self, fail_times: dict[str, int]):
        self.fail_times = dict(fail_times)
        self.invocations: list[list[str]] = []
        self.processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

    def __call__(self, event, context):
        self.invocations.append([r["dynamodb"]["Keys"]["sk"]["S"][2:] for r in event["Records"]])

        def handle(record):
            name = record.raw_event["dynamodb"]["Keys"]["sk"]["S"][2:]
            if self.fail_times.get(name, 0) > 0:
                self.fail_times[name] -= 1
                raise RuntimeError(f"{name} fails")

        return process_partial_response(event=event, record_handler=handle, processor=self.processor, context=context)


def poller(table, handler, **options):
    client = boto3.client("dynamodbstreams")
    return StreamPoller(
        streams_client=client, stream_arn=table.stream_arn, handler=handler, retry_backoff_seconds=0, **options
    )


def test_batches_partial_failure_and_redelivery_from_the_failed_record(table):
    store = put_actions(table, ["a", "b", "c", "d", "e"])
    handler = RecordingHandler({"c": 1})
    stream = poller(table, handler, batch_size=4)

    assert stream.drain() > 0
    store.fail_action(ActionKey(project="p", domain="d", run="r1", name="a"), message="x")  # a MODIFY
    stream.drain()

    assert handler.invocations[:3] == [["a", "b", "c", "d"], ["c", "d", "e"], ["a"]]
    assert stream.on_failure == []


def test_poison_record_goes_to_the_on_failure_destination_after_max_retries(table):
    put_actions(table, ["a", "b", "c"])
    handler = RecordingHandler({"b": 100})
    stream = poller(table, handler, batch_size=10, max_retries=2)

    stream.drain()

    # the first delivery, then max_retries retries of the failed remainder (aws-stack.md §1d (b))
    assert handler.invocations == [["a", "b", "c"], ["b", "c"], ["b", "c"]]
    assert [[r["dynamodb"]["Keys"]["sk"]["S"] for r in f.records] for f in stream.on_failure] == [["A#b", "A#c"]]


def test_a_handler_exception_fails_the_whole_batch(table):
    put_actions(table, ["a", "b"])
    calls = []

    def exploding(event, context):
        calls.append(len(event["Records"]))
        raise RuntimeError("init failure")

    stream = poller(table, exploding, max_retries=1)
    stream.drain()
    assert calls == [2, 2] and len(stream.on_failure[0].records) == 2


def test_records_are_shaped_as_lambda_delivers_them(table):
    put_actions(table, ["a"])
    events = []
    stream = poller(table, lambda event, context: events.append(event))
    stream.drain()
    (record,) = events[0]["Records"]
    assert record["eventName"] == "INSERT" and record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb" and record["eventSourceARN"] == table.stream_arn
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert base64.b64decode(record["dynamodb"]["NewImage"]["action_spec"]["B"]) == b"\x00\xff"
    assert ActionRecord.from_item(record["dynamodb"]["NewImage"]).action_spec == b"\x00\xff"


def test_records_after_a_cancelled_transaction_are_still_delivered(table):
    """moto rolls a failed transaction back by swapping in a copy of the table; the local stack
    keeps the stream shard that open iterators read (local_stack.aws.make_moto_dynamodb_atomic)."""
    store = put_actions(table, ["a"])
    handler = RecordingHandler({})
    stream = poller(table, handler)
    stream.drain()  # the iterator now points past "a"

    orphan = ActionRecord(key=ActionKey(project="p", domain="d", run="r1", name="c1"), parent="missing")
    assert store.create_child(orphan).created is False  # the transaction is cancelled
    put_actions(table, ["b"])
    stream.drain()

    assert handler.invocations == [["a"], ["b"]]
