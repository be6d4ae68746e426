"""The store against moto's DynamoDB: conditional writes and their outcomes."""

import pytest

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import RecordTooLarge
from runplane.table.records import ActionRecord
from tests.conftest import unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def store(inline_store):
    return inline_store  # specs stay on the item: these tests reach its size limit


def new_record(**changes):
    key = ActionKey(project="p", domain="d", run=unique_name(), name="a0")
    return ActionRecord(key=key, **{"action_spec": b"spec", **changes})


def test_create_is_conditional_and_returns_the_stored_record(store):
    record = new_record()
    assert store.create_action(record).created is True
    again = store.create_action(record.with_changes(task_name="different"))
    assert again.created is False
    assert again.record.task_name == "" and again.record.action_spec == b"spec"
    assert store.get_action(record.key).task_name == ""


def test_missing_action_reads_as_none(store):
    assert store.get_action(ActionKey(project="p", domain="d", run=unique_name(), name="a0")) is None


def test_fail_action_only_moves_unfinished_actions(store):
    record = new_record()
    store.create_action(record)
    assert store.fail_action(record.key, message="boom") is True
    failed = store.get_action(record.key)
    assert failed.phase == phases.FAILED and failed.error_message == "boom" and failed.ended_at is not None
    assert failed.version == 2
    assert store.fail_action(record.key, message="again") is False
    assert store.get_action(record.key).error_message == "boom"


def test_fail_action_on_a_missing_action_writes_nothing(store):
    key = ActionKey(project="p", domain="d", run=unique_name(), name="a0")
    assert store.fail_action(key, message="boom") is False
    assert store.get_action(key) is None


def test_records_over_the_item_limit_are_refused_before_dynamodb(store):
    record = new_record(action_spec=b"x" * 400_000)
    with pytest.raises(RecordTooLarge):
        store.create_action(record)
    assert store.get_action(record.key) is None
