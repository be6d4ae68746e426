"""The calls the hot paths make, counted against moto: CreateRun, status updates, a cascaded abort,
the project check; and moto's transactions rolled back item by item, as the local stack makes them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest

from functions.create_run.service import CreateRunService
from runplane.aws.blobs import BlobStore
from runplane.connect.errors import Code
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey, RunKey
from runplane.table.abort_cascade import TRANSACTION_LIMIT
from runplane.table.actions import ActionStore, StatusUpdate
from runplane.table.projects import ProjectRecord, ProjectStore
from runplane.table.records import ActionRecord, item_key
from tests.builders import DOMAIN, PROJECT, create_run_request, integer_inputs
from tests.conftest import unique_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration


class Counting:
    """A client that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("_") or name in ("exceptions", "meta"):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


@pytest.fixture
def dynamodb(aws):
    return Counting(boto3.client("dynamodb"))


@pytest.fixture
def s3(aws):
    return Counting(boto3.client("s3"))


@pytest.fixture
def store(aws, dynamodb, s3):
    return ActionStore(
        table_name=aws.table_name, client=dynamodb, blobs=BlobStore(client=s3), spec_prefix=f"s3://{aws.bucket}"
    )


@pytest.fixture
def service(aws, store, s3):
    return CreateRunService(store=store, blobs=BlobStore(client=s3), storage_prefix=f"s3://{aws.bucket}")


def offloaded(name: str, aws) -> Any:
    request = create_run_request(name)
    request.offloaded_input_data.uri = f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/uploaded/{name}"
    return request


def test_the_sdks_create_run_is_one_conditional_put(service, dynamodb, s3, aws):
    service.create_run(offloaded(unique_name(), aws))
    assert dynamodb.calls == Counter(put_item=1) and not s3.calls


def test_inline_inputs_add_one_put_object_before_the_put(service, dynamodb, s3):
    service.create_run(create_run_request(unique_name()))
    assert dynamodb.calls == Counter(put_item=1) and s3.calls == Counter(put_object=1)


def test_a_duplicate_is_told_by_the_failed_condition_and_changes_nothing(service, store, dynamodb, s3, aws):
    name = unique_name()
    request = offloaded(name, aws)
    first = service.create_run(request)
    stored = store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0"))
    dynamodb.calls.clear()

    assert service.create_run(request) == first  # the same request: OK, the run as it is
    assert dynamodb.calls == Counter(put_item=1)  # no read before: the condition answered
    assert store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0")) == stored

    inline = create_run_request(name, inputs=integer_inputs(x=7))  # another request for the name
    with pytest.raises(REFUSED) as info:
        service.create_run(inline)
    assert code_of(info.value) is Code.ALREADY_EXISTS
    assert s3.calls["put_object"] == 1 and s3.calls["delete_object"] == 1  # its own inputs, removed again
    assert store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0")) == stored


def test_a_status_update_is_one_update_returning_nothing_unless_refused(store, dynamodb):
    key = ActionKey(project="p", domain="d", run=unique_name(), name="a0")
    store.create_action(ActionRecord(key=key, action_spec=b"spec"))
    dynamodb.calls.clear()

    outcome = store.update_status(key, StatusUpdate(phase=phases.RUNNING, attempts=1))
    assert (outcome.applied, outcome.phase, outcome.found) == (True, phases.RUNNING, None)
    assert dynamodb.calls == Counter(update_item=1)

    refused = store.update_status(key, StatusUpdate(phase=phases.QUEUED, attempts=1))
    assert (refused.applied, refused.phase) == (False, phases.RUNNING) and refused.found is not None
    missing = store.update_status(key.run_key.action("gone"), StatusUpdate(phase=phases.RUNNING))
    assert (missing.applied, missing.phase, missing.missing) == (False, None, True)


def test_a_cascaded_abort_ends_open_actions_in_transactions_and_leaves_ended_ones(store, dynamodb):
    run = unique_name()
    keys = [ActionKey(project="p", domain="d", run=run, name=f"c{i}") for i in range(TRANSACTION_LIMIT + 30)]
    ended = {keys[3], keys[50], keys[TRANSACTION_LIMIT + 1]}  # one in each transaction's way
    for key in keys:
        store.create_action(ActionRecord(key=key, parent="a0", action_spec=b"spec"))
    for key in ended:
        store.update_status(key, StatusUpdate(phase=phases.SUCCEEDED, attempts=1))
    missing = ActionKey(project="p", domain="d", run=run, name="never")
    dynamodb.calls.clear()

    assert store.abort_cascaded_many([*keys, missing, keys[0]], reason="ancestor aborted") == len(keys) - len(ended)
    # two chunks, each cancelled once by its ended actions and sent again without them
    assert dynamodb.calls == Counter(transact_write_items=4)
    for key in keys:
        record = store.get_action(key)
        assert record.phase == (phases.SUCCEEDED if key in ended else phases.ABORTED), key
        assert (record.abort_reason == "ancestor aborted") is (key not in ended)
    assert store.get_action(missing) is None


def test_the_run_tree_is_read_with_names_parents_and_phases_only(store):
    run = unique_name()
    store.create_action(ActionRecord(key=ActionKey("p", "d", run, "a0"), action_spec=b"spec"))
    store.create_action(ActionRecord(key=ActionKey("p", "d", run, "c1"), parent="a0", phase=phases.RUNNING))
    nodes = sorted(store.list_action_tree(RunKey("p", "d", run)))
    assert [(n.name, n.parent, n.phase) for n in nodes] == [("a0", None, phases.QUEUED), ("c1", "a0", phases.RUNNING)]


def test_a_project_once_found_is_not_read_again_and_a_missing_one_is(store, dynamodb):
    projects = ProjectStore(store, seeds=("flytesnacks",))
    name = unique_name("proj")
    assert projects.exists("flytesnacks") and dynamodb.calls.total() == 0  # a seed: never read
    assert not projects.exists(name)
    projects.create(ProjectRecord(id=name, name=name))
    dynamodb.calls.clear()
    assert projects.exists(name) and projects.exists(name)
    assert dynamodb.calls == Counter(get_item=1)


def test_a_cancelled_transaction_leaves_every_item_and_the_stream_as_they_were(aws):
    client = boto3.client("dynamodb")
    streams = boto3.client("dynamodbstreams")
    run = unique_name()
    first, second = ActionKey("p", "d", run, "a0"), ActionKey("p", "d", run, "c1")
    client.put_item(TableName=aws.table_name, Item=ActionRecord(key=first, task_name="before").to_item())
    client.put_item(TableName=aws.table_name, Item=ActionRecord(key=second, parent="a0").to_item())
    shard = streams.describe_stream(StreamArn=aws.stream_arn)["StreamDescription"]["Shards"][-1]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=aws.stream_arn, ShardId=shard, ShardIteratorType="LATEST")

    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": aws.table_name, "Key": item_key(first),
                            "UpdateExpression": "SET task_name = :after", "ExpressionAttributeValues": {":after": {"S": "after"}}}},
                {"Put": {"TableName": aws.table_name, "Item": ActionRecord(key=ActionKey("p", "d", run, "c2")).to_item()}},
                {"Put": {"TableName": aws.table_name, "Item": ActionRecord(key=second).to_item(),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )  # fmt: skip

    assert (
        ActionRecord.from_item(client.get_item(TableName=aws.table_name, Key=item_key(first))["Item"]).task_name
        == "before"
    )
    assert "Item" not in client.get_item(TableName=aws.table_name, Key=item_key(ActionKey("p", "d", run, "c2")))
    assert (
        ActionRecord.from_item(client.get_item(TableName=aws.table_name, Key=item_key(second))["Item"]).parent == "a0"
    )
    assert streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"] == []
