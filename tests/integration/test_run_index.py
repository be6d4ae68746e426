"""The run index against moto: what an entry holds (what a listing shows that does not change, and
an ended run's state), which writes change it, and ListRuns listing runs that have not ended with
their items' state; roots written before ``end_phase``, and the previous index that a stack moving
onto RunsByCreatedAtV2 lists from until the new one has filled."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
from flyteidl2.common import list_pb2
from flyteidl2.common.identifier_pb2 import ProjectIdentifier
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs
from google.protobuf import json_format

from functions.create_run.service import CreateRunService
from functions.read_runs.service import RunReader
from functions.update_action.service import ActionLifecycleService
from local_stack.aws import provision
from local_stack.template import load_template, table_definition
from runplane.aws.blobs import BlobStore
from runplane.connect.pages import PageTokens
from runplane.connect.transformers import run_message
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from runplane.table.records import (
    END_PHASE,
    PREVIOUS_RUN_INDEX_NAME,
    RUN_INDEX_NAME,
    RUN_INDEX_PROJECTION,
    item_key,
    utcnow,
)
from tests.builders import DOMAIN, action_id, create_run_request
from tests.conftest import unique_name

if TYPE_CHECKING:
    from flyteidl2.common.phase_pb2 import ActionPhase

pytestmark = pytest.mark.integration

START = datetime(2026, 4, 1, tzinfo=UTC)
# Where each run ends up, by its number modulo 4 (the phases each passes through on the way).
LIVES = {
    0: (phases.RUNNING, phases.SUCCEEDED),
    1: (phases.RUNNING, phases.FAILED),
    2: (phases.INITIALIZING, phases.RUNNING),
    3: (),  # QUEUED, as created
}
RUNS = 12
INDEXES = (RUN_INDEX_NAME, PREVIOUS_RUN_INDEX_NAME)


class World:
    """A table with both run indexes (a stack moving onto the current one), its services, and a
    clock that creates runs a minute apart."""

    def __init__(self, moto_server) -> None:
        name = unique_name("tbl")
        definition = table_definition()
        (previous,) = (
            index["Fn::If"][1]
            for index in load_template()["Resources"]["ActionsTable"]["Properties"]["GlobalSecondaryIndexes"]
            if "Fn::If" in index
        )
        definition["GlobalSecondaryIndexes"] = [*definition["GlobalSecondaryIndexes"], previous]
        boto3.client("dynamodb").create_table(TableName=name, **definition)
        provision(endpoint=moto_server.endpoint, table_name=name, bucket="index-data")
        self.table = name
        self.store = ActionStore(table_name=name, blobs=BlobStore(), spec_prefix="s3://index-data")
        clock = (START + timedelta(minutes=i) for i in itertools.count())
        self.creator = CreateRunService(
            store=self.store, blobs=BlobStore(), storage_prefix="s3://index-data", clock=lambda: next(clock)
        )
        self.lifecycle = ActionLifecycleService(store=self.store)

    def reader(self, index: str = RUN_INDEX_NAME) -> RunReader:
        return RunReader(store=self.store, tokens=PageTokens(secret=b"t"), run_index=index)

    def create(self, project: str, name: str) -> None:
        self.creator.create_run(create_run_request(name, project=project))

    def status(self, project: str, name: str, phase: ActionPhase, *, attempts: int = 1) -> None:
        self.lifecycle.update_action_status(
            internal.UpdateActionStatusRequest(
                action_id=action_id(name, "a0", project=project),
                status=wf.ActionStatus(phase=phase, attempts=attempts),
            )
        )

    def item(self, project: str, name: str) -> dict:
        key = ActionKey(project=project, domain=DOMAIN, run=name, name="a0")
        return boto3.client("dynamodb").get_item(TableName=self.table, Key=item_key(key), ConsistentRead=True)["Item"]

    def entry(self, project: str, name: str) -> dict:
        """The run's entry in the current index, as a Query of it returns it."""
        item = self.item(project, name)
        response = boto3.client("dynamodb").query(
            TableName=self.table,
            IndexName=RUN_INDEX_NAME,
            KeyConditionExpression="run_index_pk = :p AND run_index_sk = :s",
            ExpressionAttributeValues={":p": item["run_index_pk"], ":s": item["run_index_sk"]},
        )
        (entry,) = response["Items"]
        return entry

    def current(self, project: str, name: str) -> wf.Run:
        record = self.store.get_action(ActionKey(project=project, domain=DOMAIN, run=name, name="a0"))
        assert record is not None
        return run_message(record)


@pytest.fixture(scope="module")
def world(moto_server) -> World:
    return World(moto_server)


@pytest.fixture(scope="module")
def listing(world):
    """RUNS runs of one project, one minute apart, living the ``LIVES`` of their number."""
    project = unique_name("p")
    names = []
    for i in range(RUNS):
        name = f"run-{i:03d}"
        world.create(project, name)
        for phase in LIVES[i % 4]:
            world.status(project, name, phase)
        names.append(name)
    return project, names


def list_all(reader, project, *, limit, **request_fields):
    """Every page of a listing; each page but a first one is non-empty, so a token is given exactly
    when a page follows."""
    request = json_format.ParseDict(request_fields, list_pb2.ListRequest())
    request.limit = limit
    listed, token, pages = [], "", 0
    while True:
        request.token = token
        response = reader.list_runs(
            runs.ListRunsRequest(request=request, project_id=ProjectIdentifier(name=project, domain=DOMAIN))
        )
        pages += 1
        assert len(response.runs) <= limit
        assert response.runs or pages == 1, "a token was given, and no page followed"
        listed.extend(response.runs)
        token = response.token
        if not token:
            return listed


def names_of(listed):
    return [run.action.id.run.name for run in listed]


def test_an_entry_holds_the_state_of_an_ended_run_only(world, listing):
    project, names = listing
    ended, running, queued = (world.entry(project, names[i]) for i in (0, 2, 3))
    for entry in (ended, running, queued):
        assert set(entry) - {"pk", "sk", "run_index_pk", "run_index_sk"} <= set(RUN_INDEX_PROJECTION)
        assert "phase" not in entry and "updated_at" not in entry and "version" not in entry
    assert ended[END_PHASE] == {"N": str(phases.SUCCEEDED)} and "ended_at" in ended
    assert END_PHASE not in running and END_PHASE not in queued
    assert END_PHASE not in world.item(project, names[2])


def test_only_a_start_an_end_or_a_retry_changes_an_entry(world):
    project, name = unique_name("p"), "life"
    world.create(project, name)

    def projected() -> dict:
        return {k: v for k, v in world.item(project, name).items() if k in RUN_INDEX_PROJECTION}

    created = projected()
    key = ActionKey(project=project, domain=DOMAIN, run=name, name="a0")
    from runplane.table.actions import StatusUpdate

    world.store.update_status(key, StatusUpdate(phase=phases.QUEUED, attempts=1, start_time=START))
    started = projected()
    assert started == {**created, "start_time": started["start_time"]}
    for phase in (phases.INITIALIZING, phases.RUNNING):
        world.store.update_status(key, StatusUpdate(phase=phase, attempts=1))
        assert projected() == started  # the entry is not written again
    world.store.update_status(key, StatusUpdate(phase=phases.FAILED, attempts=1))
    failed = projected()
    assert failed[END_PHASE] == {"N": str(phases.FAILED)} and "ended_at" in failed
    world.store.update_status(key, StatusUpdate(phase=phases.RUNNING, attempts=2))  # a retry
    retried = projected()
    assert END_PHASE not in retried and retried["attempts"] == {"N": "2"}
    assert world.store.request_abort(key, reason="stop").value == "ended"
    assert projected()[END_PHASE] == {"N": str(phases.ABORTED)}


@pytest.mark.parametrize("index", INDEXES)
def test_every_run_is_listed_with_its_current_state(world, listing, index):
    project, names = listing
    listed = list_all(world.reader(index), project, limit=5)
    assert names_of(listed) == list(reversed(names))
    for run in listed:
        assert run == world.current(project, run.action.id.run.name)


def test_ended_runs_are_listed_from_the_index_alone(world, listing, monkeypatch):
    project, names = listing
    read = []
    get_actions = world.store.get_actions

    def counted(keys, **kwargs):
        read.append(sorted(key.run for key in keys))
        return get_actions(keys, **kwargs)

    monkeypatch.setattr(world.store, "get_actions", counted)
    reader = world.reader()
    ended = [n for i, n in enumerate(names) if i % 4 in (0, 1)]
    filters = [{"function": "VALUE_IN", "field": "phase", "values": ["SUCCEEDED", "FAILED"]}]
    assert names_of(list_all(reader, project, limit=50, filters=filters)) == list(reversed(ended))
    assert read == []  # no item read: the entries have it all
    list_all(reader, project, limit=50)
    assert read == [sorted(n for i, n in enumerate(names) if i % 4 in (2, 3))]  # one BatchGetItem


@pytest.mark.parametrize("index", INDEXES)
@pytest.mark.parametrize(
    "phase_filter, numbers",
    [
        ({"function": "EQUAL", "field": "phase", "values": ["RUNNING"]}, {2}),
        ({"function": "EQUAL", "field": "phase", "values": ["5"]}, {0}),
        ({"function": "VALUE_IN", "field": "phase", "values": ["QUEUED", "FAILED"]}, {1, 3}),
        ({"function": "NOT_EQUAL", "field": "phase", "values": ["SUCCEEDED"]}, {1, 2, 3}),
        ({"function": "NOT_EQUAL", "field": "phase", "values": ["QUEUED"]}, {0, 1, 2}),
    ],
)
@pytest.mark.parametrize("limit", [1, 50])
def test_phase_filters_page_exactly(world, listing, index, phase_filter, numbers, limit):
    project, names = listing
    expected = [n for i, n in enumerate(names) if i % 4 in numbers]
    listed = list_all(world.reader(index), project, limit=limit, filters=[phase_filter])
    assert names_of(listed) == list(reversed(expected))
    ascending = list_all(
        world.reader(index),
        project,
        limit=limit,
        filters=[phase_filter],
        sortByFields=[{"key": "created_at", "direction": "ASCENDING"}],
    )
    assert names_of(ascending) == expected


@pytest.mark.parametrize("index", INDEXES)
def test_update_time_filters_read_the_runs_items(world, index):
    project = unique_name("p")
    for name in ("quiet", "ends", "moves"):
        world.create(project, name)
    time.sleep(0.01)
    mark = utcnow()
    time.sleep(0.01)
    world.status(project, "ends", phases.SUCCEEDED)
    world.status(project, "moves", phases.RUNNING)
    after = [{"function": "GREATER_THAN", "field": "updated_at", "values": [mark.isoformat()]}]
    assert names_of(list_all(world.reader(index), project, limit=1, filters=after)) == ["moves", "ends"]
    before = [{"function": "LESS_THAN_OR_EQUAL", "field": "updated_at", "values": [mark.isoformat()]}]
    assert names_of(list_all(world.reader(index), project, limit=1, filters=before)) == ["quiet"]


def test_a_retried_run_is_listed_running_again(world):
    project, name = unique_name("p"), "retried"
    world.create(project, name)
    world.status(project, name, phases.FAILED)
    world.status(project, name, phases.RUNNING, attempts=2)
    reader = world.reader()
    (run,) = list_all(reader, project, limit=5)
    assert run.action.status.phase == phases.RUNNING and run.action.status.attempts == 2
    failed = [{"function": "EQUAL", "field": "phase", "values": ["FAILED"]}]
    assert list_all(reader, project, limit=5, filters=failed) == []


def test_roots_written_before_end_phase_are_listed_from_their_items(world):
    """An ended root of the previous layout has no ``end_phase``: its entry lists it as a run that
    has not ended, so its state is read from its item."""
    project = unique_name("p")
    for name in ("old-ended", "old-running"):
        world.create(project, name)
    world.status(project, "old-ended", phases.SUCCEEDED)
    world.status(project, "old-running", phases.RUNNING)
    boto3.client("dynamodb").update_item(
        TableName=world.table,
        Key=item_key(ActionKey(project=project, domain=DOMAIN, run="old-ended", name="a0")),
        UpdateExpression=f"REMOVE {END_PHASE}",
    )
    reader = world.reader()
    listed = list_all(reader, project, limit=1)
    assert names_of(listed) == ["old-running", "old-ended"]
    assert listed[1] == world.current(project, "old-ended")
    assert listed[1].action.status.phase == phases.SUCCEEDED and listed[1].action.status.HasField("end_time")
    succeeded = [{"function": "EQUAL", "field": "phase", "values": ["SUCCEEDED"]}]
    assert names_of(list_all(reader, project, limit=1, filters=succeeded)) == ["old-ended"]
