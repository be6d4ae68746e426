import base64
from datetime import UTC, datetime, timedelta

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.records import (
    ACTION_LISTING_ATTRIBUTES,
    END_PHASE,
    RUN_INDEX_PROJECTION,
    RUN_INDEX_SHARDS,
    ActionRecord,
    format_time,
    parse_time,
)

KEY = ActionKey(project="p", domain="d", run="r1", name="a0")


def record(**changes):
    return ActionRecord(
        key=KEY,
        run_source="RUN_SOURCE_CLI",
        task_name="hello.main",
        action_spec=b"\x00spec\xff",
        run_spec=b"\x01run",
        inputs_uri="s3://b/p/d/r1/inputs/x/inputs.pb",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        **changes,
    )


def test_item_round_trip_from_a_boto3_response():
    original = record(ended_at=datetime(2026, 1, 2, 4, tzinfo=UTC), abort_reason="r", group="g", origin="enqueue")
    assert ActionRecord.from_item(original.to_item()) == original.with_changes(updated_at=original.created_at)


def test_duration_is_derived_from_the_earliest_start_and_never_negative():
    created = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)  # the fixture's created_at
    assert record().duration_ms is None
    assert record(ended_at=created + timedelta(seconds=2)).duration_ms == 2000
    reported = record(start_time=created - timedelta(minutes=2), ended_at=created)
    assert reported.started_at == created - timedelta(minutes=2)
    assert 120_000 <= reported.duration_ms <= 120_001
    assert record(ended_at=created - timedelta(hours=1)).duration_ms == 0


def test_item_from_a_lambda_stream_image_with_base64_binaries():
    item = record().to_item()
    stream_image = {
        name: ({"B": base64.b64encode(value["B"]).decode()} if "B" in value else value) for name, value in item.items()
    }
    decoded = ActionRecord.from_item(stream_image)
    assert decoded.action_spec == b"\x00spec\xff" and decoded.run_spec == b"\x01run"


def test_key_layout_one_partition_per_run():
    item = record().to_item()
    assert item["pk"] == {"S": "p#d#r1"} and item["sk"] == {"S": "A#a0"}


def test_only_roots_are_in_the_sharded_run_index():
    root = record().to_item()
    shard = int(root["run_index_pk"]["S"].rsplit("#", 1)[1])
    assert 0 <= shard < RUN_INDEX_SHARDS
    assert root["run_index_sk"]["S"].endswith("#r1")
    child = record(parent="a0").with_changes(key=ActionKey(project="p", domain="d", run="r1", name="c1")).to_item()
    assert "run_index_pk" not in child and "run_index_sk" not in child


def test_an_ended_root_carries_its_phase_for_the_run_index_which_reads_back_from_it():
    ended = record(phase=phases.SUCCEEDED, ended_at=datetime(2026, 1, 2, 4, tzinfo=UTC))
    item = ended.to_item()
    assert item[END_PHASE] == {"N": str(phases.SUCCEEDED)}
    assert END_PHASE not in record(phase=phases.RUNNING).to_item()
    child = ended.with_changes(key=ActionKey(project="p", domain="d", run="r1", name="c1"), parent="a0")
    assert END_PHASE not in child.to_item()
    assert ActionRecord.from_item(item) == ended.with_changes(updated_at=ended.created_at)
    entry = {name: value for name, value in item.items() if name in RUN_INDEX_PROJECTION}  # no phase
    assert "phase" not in entry and ActionRecord.from_item(entry).phase == phases.SUCCEEDED


def test_the_run_index_projects_nothing_a_status_change_alone_writes():
    for changing in ("phase", "updated_at", "version", "error_kind", "error_message", "abort_requested_at"):
        assert changing not in RUN_INDEX_PROJECTION
    assert set(RUN_INDEX_PROJECTION) <= set(ACTION_LISTING_ATTRIBUTES) | {END_PHASE}


def test_time_format_sorts_as_time_and_round_trips():
    early = datetime(2026, 1, 1, tzinfo=UTC)
    later = early + timedelta(microseconds=1)
    assert format_time(early) < format_time(later)
    assert parse_time(format_time(later)) == later
