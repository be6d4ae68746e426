"""What an action item leaves out or shrinks (every write is billed per KB of the whole item), and
that every record still reads back exactly, from items written before too."""

import base64
import zlib
from datetime import UTC, datetime

import pytest

from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import write_units
from runplane.table.records import ACTION_TYPE_TRACE, ORIGIN_ENQUEUED, ActionRecord, compress_spec, decompress_spec

KEY = ActionKey(project="flytesnacks", domain="development", run="r" * 30, name="a0")
CREATED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
BASE = f"s3://data-bucket/flytesnacks/development/{'r' * 30}/"


def root(**changes):
    spec = b"\x0a\x20" + b"container args --inputs {{.input}} --outputs {{.outputPrefix}} " * 8
    fields = {
        "key": KEY,
        "run_source": "RUN_SOURCE_CLI",
        "task_project": "flytesnacks",
        "task_domain": "development",
        "task_name": "workflows.hello.main",
        "task_version": "v1",
        "task_type": "python-task",
        "task_short_name": "workflows.hello.main",
        "function_name": "workflows.hello.main",
        "action_spec": spec,
        "run_spec": b"\x3a\x11\x0a\x0fs3://data-bucket",
        "inputs_uri": f"{BASE}inputs/{'a' * 32}/inputs.pb",
        "run_output_base": BASE,
        "request_digest": "ab" * 32,
        "created_at": CREATED,
    }
    return ActionRecord(**{**fields, **changes})


@pytest.mark.parametrize(
    "record",
    [
        root(),
        root(task_short_name="main", function_name="hello", task_project="other", task_domain="production"),
        root(
            key=ActionKey(project="p", domain="d", run="r1", name="t1"),
            parent="a0",
            action_type=ACTION_TYPE_TRACE,
            task_project="",
            task_domain="",
            task_short_name="",
            function_name="t",
            origin=ORIGIN_ENQUEUED,
        ),
        root(task_name="", task_project="", task_domain="", task_short_name="", function_name=""),
        root(inputs_uri="s3://elsewhere/inputs.pb"),
        root(inputs_uri=BASE),  # the directory itself: not shortened
        root(cache_status=2, request_digest="", action_spec=b"\x00\xff", run_spec=b"\x07raw"),
    ],
)
def test_every_record_reads_back_exactly(record):
    assert ActionRecord.from_item(record.to_item()) == record.with_changes(updated_at=record.created_at)


def test_usual_values_and_known_prefixes_are_left_out_of_the_item():
    item = root().to_item()
    for name in (
        "action_type",
        "cache_status",
        "origin",
        "task_project",
        "task_domain",
        "function_name",
        "task_short_name",
        "inputs_uri",
    ):
        assert name not in item, name
    assert item["inputs_rel"] == {"S": f"inputs/{'a' * 32}/inputs.pb"}
    assert item["request_digest"] == {"B": bytes.fromhex("ab" * 32)}
    assert item["action_spec"]["B"][:1] == b"\x07"  # deflated


def test_items_written_before_read_the_same():
    record = root()
    item = record.to_item()
    legacy = {
        **{k: v for k, v in item.items() if k not in ("inputs_rel", "request_digest", "action_spec")},
        "inputs_uri": {"S": record.inputs_uri},
        "request_digest": {"S": record.request_digest},
        "action_spec": {"B": base64.b64encode(record.action_spec).decode()},  # a stream image, raw spec
        "action_type": {"N": "1"},
        "cache_status": {"N": "0"},
        "origin": {"S": "create_run"},
        "task_project": {"S": "flytesnacks"},
        "function_name": {"S": "workflows.hello.main"},
    }
    assert ActionRecord.from_item(legacy) == record.with_changes(updated_at=record.created_at)


def test_a_root_with_the_longest_run_name_stays_within_one_write_unit_to_its_end():
    ended = root(start_time=CREATED, ended_at=CREATED, updated_at=CREATED, attempts=1, version=9, phase=5)
    assert write_units(ended.to_item()) == 1


def test_specs_round_trip_whatever_their_bytes():
    for value in (b"", b"\x00\xff", b"\x06x", b"\x07y", b"spec" * 100, bytes(range(256))):
        assert decompress_spec(compress_spec(value)) == value
    assert zlib.decompress(compress_spec(b"spec" * 100)[1:], -15) == b"spec" * 100
