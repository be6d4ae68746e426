"""Stored actions -> the ActionUpdates of WatchForUpdates / StateService/Watch (Flyte §4.4)."""

from __future__ import annotations

import pytest
from flyteidl2.core.execution_pb2 import ExecutionError

from functions.read_runs.child_updates import action_update, execution_error, family_updates, output_uri
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey, taskaction_name
from runplane.flyte.output_paths import SHARD_PREFIXES, action_output_path
from runplane.ops.settings import ReadSettings
from runplane.table.records import ACTION_TYPE_CONDITION, ACTION_TYPE_TRACE, ActionRecord

BASE = "s3://flyte-data/p/d/r1/"


def record(name="c1", *, parent="a0", **changes):
    return ActionRecord(key=ActionKey(project="p", domain="d", run="r1", name=name), parent=parent, **changes)


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) % 2**32
    return value


def test_output_path_is_flytes_sharded_executor_layout():
    shard = SHARD_PREFIXES[fnv32a(f"flyte/{taskaction_name(ActionKey('p', 'd', 'r1', 'c1'))}".encode()) % 1296]
    assert action_output_path(
        namespace="flyte", project="p", domain="d", run="r1", action="c1", run_output_base=BASE, attempt=2
    ) == (f"s3://flyte-data/{shard}/p/d/r1/c1/2")


@pytest.mark.parametrize("phase", sorted(phases.ALL_PHASES - {phases.UNSPECIFIED}))
def test_every_phase_is_reported_as_stored(phase):
    update = action_update(record(phase=phase, run_output_base=BASE), namespace="flyte")
    assert update.phase == phase
    assert (
        update.action_id.run.project,
        update.action_id.run.domain,
        update.action_id.run.name,
        update.action_id.name,
    ) == ("p", "d", "r1", "c1")
    assert not update.HasField("value")


def test_a_task_reports_the_output_directory_of_its_latest_attempt():
    update = action_update(record(phase=phases.SUCCEEDED, attempts=3, run_output_base=BASE), namespace="ns")
    assert update.output_uri == action_output_path(
        namespace="ns", project="p", domain="d", run="r1", action="c1", run_output_base=BASE, attempt=3
    )
    assert update.output_uri.endswith("/p/d/r1/c1/3") and not update.output_uri.endswith("outputs.pb")


def test_a_condition_has_an_output_path_too():
    update = action_update(record(action_type=ACTION_TYPE_CONDITION, run_output_base=BASE), namespace="flyte")
    assert update.output_uri == action_output_path(
        namespace="flyte", project="p", domain="d", run="r1", action="c1", run_output_base=BASE, attempt=1
    )


def test_a_trace_reports_its_own_outputs_never_a_computed_path():
    trace = record(
        action_type=ACTION_TYPE_TRACE, phase=phases.SUCCEEDED, output_uri="s3://b/traces/t1", run_output_base=BASE
    )
    assert action_update(trace, namespace="flyte").output_uri == "s3://b/traces/t1"
    assert output_uri(record(action_type=ACTION_TYPE_TRACE), namespace="flyte", run_output_base=BASE) == ""


def test_without_a_run_output_base_the_parents_stands_in_or_nothing():
    child = record(run_output_base="")
    assert output_uri(child, namespace="flyte") == ""
    assert output_uri(child, namespace="flyte", run_output_base=BASE) == action_output_path(
        namespace="flyte", project="p", domain="d", run="r1", action="c1", run_output_base=BASE, attempt=1
    )


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("KIND_USER", ExecutionError.USER),
        ("KIND_SYSTEM", ExecutionError.SYSTEM),
        ("USER", ExecutionError.USER),
        ("SYSTEM", ExecutionError.SYSTEM),
        ("KIND_UNSPECIFIED", ExecutionError.UNKNOWN),
        ("", ExecutionError.UNKNOWN),
    ],
)
def test_a_failed_action_carries_its_error_with_the_kind_mapped(kind, expected):
    failed = record(phase=phases.FAILED, error_kind=kind, error_code="MaxRetriesExceeded", error_message="boom")
    update = action_update(failed, namespace="flyte")
    assert update.HasField("error")
    assert (update.error.code, update.error.message, update.error.kind) == ("MaxRetriesExceeded", "boom", expected)


def test_an_error_is_sent_only_for_failed_and_only_when_recorded():
    assert not action_update(record(phase=phases.FAILED), namespace="flyte").HasField("error")
    for phase in (phases.TIMED_OUT, phases.ABORTED, phases.RUNNING, phases.SUCCEEDED):
        assert not action_update(record(phase=phase, error_message="x"), namespace="flyte").HasField("error")
    assert execution_error(record()) is None


def test_the_family_is_the_parent_and_its_direct_children_only():
    records = [
        record("a0", parent=None, phase=phases.RUNNING, run_output_base=BASE),
        record("c2"),
        record("c1"),
        record("g1", parent="c1"),  # a grandchild
        record("x1", parent="other"),
    ]
    updates = family_updates(records, parent="a0", namespace="flyte")
    assert list(updates) == ["a0", "c1", "c2"]
    assert updates["a0"].phase == phases.RUNNING
    # children without a base of their own are given the parent's: the SDK passes it down
    assert updates["c1"].output_uri == action_output_path(
        namespace="flyte", project="p", domain="d", run="r1", action="c1", run_output_base=BASE, attempt=1
    )

    of_c1 = family_updates(records, parent="c1", namespace="flyte")
    assert list(of_c1) == ["c1", "g1"]
    assert family_updates(records, parent="missing", namespace="flyte") is None


def test_read_settings_carry_the_taskaction_namespace():
    secret = {"PAGE_TOKEN_SECRET": "s" * 32}
    assert ReadSettings.from_env({"ACTIONS_TABLE": "t-1", **secret}).namespace == "flyte"
    assert (
        ReadSettings.from_env({"ACTIONS_TABLE": "t-1", "TASKACTION_NAMESPACE": "flyte-prod", **secret}).namespace
        == "flyte-prod"
    )
