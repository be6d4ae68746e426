"""Scheduler ticks: Flyte's deterministic run names and the events create_run accepts."""

from datetime import UTC, datetime

import pytest
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.create_run.schedule import MalformedTick, is_tick, tick_from_event
from runplane.flyte.identifiers import scheduled_run_name, validate_run_name


def test_flytes_test_vector():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = scheduled_run_name(
        project="flytesnacks", domain="development", task="my_task", trigger="daily", scheduled_at=at
    )
    assert name == "r3a5122956ce57e0b"
    validate_run_name(name)


def test_keyed_names_cannot_be_predicted_without_the_stacks_secret_and_stay_run_names():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    fields = {"project": "flytesnacks", "domain": "development", "task": "my_task", "trigger": "daily"}
    keyed = scheduled_run_name(**fields, scheduled_at=at, secret=b"k" * 32)
    assert keyed == scheduled_run_name(**fields, scheduled_at=at, secret=b"k" * 32)  # a redelivery: a duplicate
    assert keyed != scheduled_run_name(**fields, scheduled_at=at)  # not Flyte's public formula
    assert keyed != scheduled_run_name(**fields, scheduled_at=at, secret=b"x" * 32)
    assert keyed != scheduled_run_name(**fields, scheduled_at=at.replace(second=6), secret=b"k" * 32)
    assert validate_run_name(keyed) == keyed and len(keyed) == 25
    parsed = tick_from_event(tick(), secret=b"k" * 32)
    assert parsed.request.run_id.name == scheduled_run_name(
        project="p", domain="d", task="t.main", trigger="daily", scheduled_at=at, secret=b"k" * 32
    )


def tick(**trigger):
    return {
        "flyteTrigger": {
            "project": "p",
            "domain": "d",
            "name": "daily",
            "taskName": "t.main",
            "taskVersion": "v1",
            "revision": 2,
            **trigger,
        },
        "scheduledTime": "2026-01-02T03:04:05Z",
    }


def test_a_tick_becomes_the_create_run_of_its_trigger():
    parsed = tick_from_event(tick(inputs={"literals": []}))
    request = parsed.request
    assert request.run_id.name == scheduled_run_name(
        project="p", domain="d", task="t.main", trigger="daily", scheduled_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    assert request.task_id.name == "t.main" and request.task_id.version == "v1"
    assert request.source == wf.RUN_SOURCE_SCHEDULE_TRIGGER
    assert request.run_spec.run_start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (parsed.trigger_name, parsed.trigger_task_name, parsed.trigger_revision) == ("daily", "t.main", 2)
    assert is_tick(tick()) and not is_tick({"rawPath": "/x"})


@pytest.mark.parametrize(
    "event",
    [
        {"flyteTrigger": "nope", "scheduledTime": "2026-01-02T03:04:05Z"},
        tick(project=""),
        tick(revision=-1),
        {**tick(), "scheduledTime": "yesterday"},
        {"flyteTrigger": tick()["flyteTrigger"]},
        tick(inputs={"literals": "x"}),
    ],
)
def test_malformed_ticks_say_why(event):
    with pytest.raises(MalformedTick):
        tick_from_event(event)
