"""ListRuns against moto: the sharded run index merged into pages, filters, order and tokens."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

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
from runplane.aws.blobs import BlobStore
from runplane.connect.errors import Code
from runplane.connect.pages import PageTokens
from runplane.flyte import phases
from runplane.table.actions import ActionStore
from runplane.table.records import RUN_INDEX_SHARDS
from tests.builders import DOMAIN, action_id, create_run_request
from tests.conftest import unique_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=UTC)
RUNS = 40


@pytest.fixture(scope="module")
def listing(moto_server):
    """40 runs of one project, one minute apart; every fifth RUNNING."""
    table = provision(endpoint=moto_server.endpoint, table_name=unique_name("tbl"), bucket="list-data")
    store = ActionStore(table_name=table.table_name, blobs=BlobStore(), spec_prefix="s3://list-data")
    project = unique_name("p")
    clock = (START + timedelta(minutes=i) for i in itertools.count())
    creator = CreateRunService(
        store=store, blobs=BlobStore(), storage_prefix="s3://list-data", clock=lambda: next(clock)
    )
    lifecycle = ActionLifecycleService(store=store)
    names = []
    for i in range(RUNS):
        name = f"run-{i:03d}"
        creator.create_run(create_run_request(name, project=project))
        names.append(name)
        if i % 5 == 0:
            lifecycle.update_action_status(
                internal.UpdateActionStatusRequest(
                    action_id=action_id(name, "a0", project=project),
                    status=wf.ActionStatus(phase=phases.RUNNING, attempts=1),
                )
            )
    reader = RunReader(store=store, tokens=PageTokens(secret=b"t"))
    return reader, store, project, names


def list_all(reader, project, *, limit=7, **request_fields):
    request = json_format.ParseDict(request_fields, list_pb2.ListRequest())
    request.limit = limit
    names, token, pages = [], "", 0
    while True:
        request.token = token
        response = reader.list_runs(
            runs.ListRunsRequest(request=request, project_id=ProjectIdentifier(name=project, domain=DOMAIN))
        )
        names.extend(r.action.id.run.name for r in response.runs)
        pages += 1
        assert len(response.runs) <= limit
        token = response.token
        if not token:
            return names, pages


def test_pages_merge_the_shards_newest_first_by_default(listing):
    reader, _, project, names = listing
    listed, pages = list_all(reader, project)
    assert listed == list(reversed(names)) and pages == 6  # 7+7+7+7+7+5: the token ends exactly


def test_oldest_first_when_asked(listing):
    reader, _, project, names = listing
    listed, _ = list_all(reader, project, limit=50, sortByFields=[{"key": "created_at", "direction": "ASCENDING"}])
    assert listed == names


def test_an_exactly_full_last_page_has_no_token(listing):
    reader, _, project, _ = listing
    _, pages = list_all(reader, project, limit=20)
    assert pages == 2


def test_phase_filters_including_the_sdk_single_value_form(listing):
    reader, _, project, names = listing
    running = [n for i, n in enumerate(names) if i % 5 == 0]
    for phase_filter in (
        {"function": "EQUAL", "field": "phase", "values": ["4"]},
        {"function": "VALUE_IN", "field": "phase", "values": ["ACTION_PHASE_RUNNING", "SUCCEEDED"]},
    ):
        listed, _ = list_all(reader, project, filters=[phase_filter])
        assert listed == list(reversed(running))
    listed, _ = list_all(reader, project, filters=[{"function": "NOT_EQUAL", "field": "phase", "values": ["4"]}])
    assert len(listed) == RUNS - len(running)


def test_created_at_range_and_run_source(listing):
    reader, _, project, names = listing
    window = [
        {
            "function": "GREATER_THAN_OR_EQUAL",
            "field": "created_at",
            "values": [(START + timedelta(minutes=10)).isoformat()],
        },
        {"function": "LESS_THAN", "field": "created_at", "values": [(START + timedelta(minutes=15)).isoformat()]},
        {"function": "EQUAL", "field": "run_source", "values": ["RUN_SOURCE_CLI"]},
    ]
    listed, _ = list_all(reader, project, limit=3, filters=window)
    assert listed == list(reversed(names[10:15]))


def count_queries(monkeypatch, store, calls):
    """Append to ``calls`` at each Query the store sends."""
    send = store.client.query

    def counted(**params):
        calls.append(1)
        return send(**params)

    monkeypatch.setattr(store.client, "query", counted)


def test_an_empty_time_window_is_an_empty_page_not_an_error(listing, monkeypatch):
    """DynamoDB rejects a BETWEEN with reversed bounds (moto does not), so no Query may be sent."""
    reader, store, project, _ = listing
    calls = []
    count_queries(monkeypatch, store, calls)
    window = [
        {
            "function": "GREATER_THAN_OR_EQUAL",
            "field": "created_at",
            "values": [(START + timedelta(minutes=30)).isoformat()],
        },
        {"function": "LESS_THAN", "field": "created_at", "values": [(START + timedelta(minutes=10)).isoformat()]},
    ]
    assert list_all(reader, project, filters=window) == ([], 1)
    assert calls == []


def test_a_page_is_one_query_per_shard(listing, monkeypatch):
    reader, store, project, _ = listing
    calls = []
    count_queries(monkeypatch, store, calls)
    reader.list_runs(
        runs.ListRunsRequest(
            request=list_pb2.ListRequest(limit=10), project_id=ProjectIdentifier(name=project, domain=DOMAIN)
        )
    )
    assert len(calls) == RUN_INDEX_SHARDS


@pytest.mark.parametrize(
    "request_fields, names_the",
    [
        ({"limit": 201}, "request.limit"),
        ({"filters": [{"function": "EQUAL", "field": "name", "values": ["x"]}]}, "'name'"),
        ({"filters": [{"function": "CONTAINS", "field": "phase", "values": ["4"]}]}, "'phase'"),
        ({"filters": [{"function": "EQUAL", "field": "phase", "values": ["LAUNCHING"]}]}, "phase"),
        ({"filters": [{"function": "GREATER_THAN", "field": "created_at", "values": ["yesterday"]}]}, "created_at"),
        ({"sortByFields": [{"key": "phase"}]}, "request.sort_by"),
        ({"token": "bm90IGEgdG9rZW4.0000"}, "request.token"),
    ],
)
def test_bad_requests_name_the_field(listing, request_fields, names_the):
    reader, _, project, _ = listing
    request = json_format.ParseDict(request_fields, list_pb2.ListRequest())
    with pytest.raises(REFUSED) as info:
        reader.list_runs(
            runs.ListRunsRequest(request=request, project_id=ProjectIdentifier(name=project, domain=DOMAIN))
        )
    assert code_of(info.value) is Code.INVALID_ARGUMENT and names_the in info.value.message


def test_a_token_from_another_query_is_refused(listing):
    reader, _, project, _ = listing
    scope = ProjectIdentifier(name=project, domain=DOMAIN)
    token = reader.list_runs(runs.ListRunsRequest(request=list_pb2.ListRequest(limit=5), project_id=scope)).token
    other = list_pb2.ListRequest(
        limit=5, token=token, sort_by_fields=[list_pb2.Sort(key="created_at", direction=list_pb2.Sort.ASCENDING)]
    )
    with pytest.raises(REFUSED, match="different query"):
        reader.list_runs(runs.ListRunsRequest(request=other, project_id=scope))


def test_org_scope_is_refused_not_silently_global(listing):
    reader, *_ = listing
    with pytest.raises(REFUSED, match="org"):
        reader.list_runs(runs.ListRunsRequest(org="o"))


def test_a_filter_that_matches_nothing_reads_a_bounded_share_of_the_index_per_page(listing, monkeypatch):
    """Issue 22: each page reads at most its scan budget and answers with a token to go on from
    there (a short or empty page), so no filter makes one ListRuns walk the whole index."""
    from functions.read_runs import run_listing

    reader, store, project, names = listing
    monkeypatch.setattr(run_listing, "MAX_SCANNED_PER_ROUND", RUN_INDEX_SHARDS)  # one entry a shard a round
    monkeypatch.setattr(run_listing, "MAX_ROUNDS_PER_PAGE", 1)
    calls: list[int] = []
    count_queries(monkeypatch, store, calls)
    nothing = [{"function": "EQUAL", "field": "phase", "values": ["ABORTED"]}]
    request = json_format.ParseDict({"filters": nothing}, list_pb2.ListRequest())
    request.limit = 1
    scope = ProjectIdentifier(name=project, domain=DOMAIN)
    first = reader.list_runs(runs.ListRunsRequest(request=request, project_id=scope))
    assert list(first.runs) == [] and first.token  # a short page and a way on
    assert len(calls) <= RUN_INDEX_SHARDS  # one bounded Query a shard
    listed, pages = list_all(reader, project, limit=1, filters=nothing)
    assert listed == [] and pages > 1  # the walk still ends, a bounded page at a time
    running = [n for i, n in enumerate(names) if i % 5 == 0]
    some = [{"function": "EQUAL", "field": "phase", "values": ["4"]}]
    assert list_all(reader, project, limit=1, filters=some)[0] == list(reversed(running))  # nothing lost
