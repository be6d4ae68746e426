"""Conditions through the real `flyte` SDK, authentication on: a task waits on
``flyte.new_condition(...).wait()``, the test finds the condition with ``flyte.remote.Condition``
and signals it (RunService/SignalEvent), and the task carries on with the value exactly as Flyte
delivers it: inline on the condition's ActionUpdate (``value``) in WatchForUpdates, never from an
``output_uri``. A condition nobody signals times out and ``wait()`` raises ConditionTimedoutError."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.e2e.sdk_login import init_flyte_as_user

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_plane(stack):
    with stack.authentication(), stack.data_plane():
        yield stack


@pytest.fixture
def flyte_client(data_plane):
    return init_flyte_as_user(data_plane)


def _signal_when_waiting(flyte_client, run, name: str, value) -> None:
    from flyte.remote import Condition

    condition = wait_for(
        lambda: Condition.get(name, run_name=run.name), timeout=60, what=f"the condition {name} to be created"
    )
    condition.signal(value)


@pytest.mark.parametrize(("task", "name", "value", "expected"), [
    ("approval", "approve", True, "approved=True"),
    ("how_many", "count", 21, "42"),
])  # fmt: skip
def test_a_task_carries_on_with_the_signalled_value(flyte_client, task, name, value, expected):
    from tests.e2e.sdk_tasks import conditions

    run = flyte_client.with_runcontext(mode="remote").run(getattr(conditions, task))
    _signal_when_waiting(flyte_client, run, name, value)
    run.wait(quiet=True)
    assert run.phase == "succeeded", run.phase
    assert expected in str(run.outputs())


def test_a_condition_nobody_signals_times_out_in_the_task(flyte_client):
    from tests.e2e.sdk_tasks.conditions import nobody_answers

    run = flyte_client.with_runcontext(mode="remote").run(nobody_answers)
    run.wait(quiet=True)
    assert run.phase == "succeeded", run.phase
    assert "timed out: ConditionTimedoutError" in str(run.outputs())
