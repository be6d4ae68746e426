"""The mission end to end: the real `flyte` SDK runs a nested workflow through the whole local
stack, and nobody in the test plays Flyte's data plane.

CreateRun -> the table -> reconcile -> a TaskAction -> the local executor runs the task's own
container command (the SDK's `a0` entrypoint) as a process -> the SDK inside the parent enqueues
its children through the API and waits for them with WatchForUpdates -> the executor records each
transition's event through the events relay (no credentials of its own; the relay adds the
data-plane client's token) and only then writes the TaskAction's status -> the status mirror writes
it back into the table -> `run.wait()` returns.

Authentication is on throughout, as deployed: the SDK here logs in as the user client over TLS, the
SDK inside the tasks as the task client, the relay as the data-plane client.
"""

from __future__ import annotations

import pytest

from local_stack.auth import DATA_PLANE_CLIENT
from runplane.flyte import phases
from runplane.flyte.identifiers import RunKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, resource_name
from tests.conftest import wait_for
from tests.e2e.sdk_login import init_flyte_as_user

pytestmark = pytest.mark.e2e

TERMINAL = {"succeeded", "failed", "aborted", "timed_out"}


@pytest.fixture(scope="module")
def data_plane(stack):
    """The executor and the status mirror, on for this module only, with the front enforcing the
    routes' authorizers."""
    with stack.authentication(), stack.data_plane():
        yield stack


@pytest.fixture
def flyte_client(data_plane):
    return init_flyte_as_user(data_plane)


@pytest.fixture
def store(data_plane):
    return ActionStore(table_name=data_plane.aws.table_name)


def actions_of(store: ActionStore, run: str) -> dict:
    return {record.key.name: record for record in store.list_actions(RunKey(PROJECT, DOMAIN, run))}


def test_a_parent_fans_out_to_children_and_a_grandchild(flyte_client, store, get_taskaction, data_plane):
    from tests.e2e.sdk_tasks.nested import fan_out

    forwarded = data_plane.relay.relay.forwarded
    run = flyte_client.with_runcontext(mode="remote").run(fan_out, n=2)
    run.wait(quiet=True)
    assert run.phase == "succeeded", run.phase
    assert "30" in str(run.outputs())  # 2*2 + 3*3 + (4*4 + 1)

    actions = actions_of(store, run.name)
    assert len(actions) == 5 and {r.phase for r in actions.values()} == {phases.SUCCEEDED}
    # the executor's events went through the relay, which logged in as the data-plane client
    assert data_plane.relay.relay.forwarded > forwarded
    assert data_plane.auth.issuer.granted[DATA_PLANE_CLIENT] >= 1
    children = [r for r in actions.values() if r.parent == "a0"]
    grandchildren = [r for r in actions.values() if r.parent not in (None, "a0")]
    assert len(children) == 3 and len(grandchildren) == 1
    assert grandchildren[0].parent in {c.key.name for c in children}

    # the TaskActions' owner chain mirrors the tree
    for record in [*children, *grandchildren]:
        resource = get_taskaction(resource_name(run.name, record.key.name))
        assert resource is not None
        (owner,) = resource["metadata"]["ownerReferences"]
        parent = get_taskaction(resource_name(run.name, record.parent))
        assert (owner["name"], owner["uid"]) == (parent["metadata"]["name"], parent["metadata"]["uid"])


def test_a_failing_child_is_retried_and_its_parent_sees_the_error(flyte_client, store):
    from tests.e2e.sdk_tasks.nested import parent_of_a_failure

    run = flyte_client.with_runcontext(mode="remote").run(parent_of_a_failure, x=7)
    run.wait(quiet=True)
    assert run.phase == "succeeded", run.phase
    assert "child refuses 7" in str(run.outputs())
    (child,) = [r for r in actions_of(store, run.name).values() if r.parent == "a0"]
    assert child.phase == phases.FAILED and child.attempts == 3
    assert "child refuses 7" in child.error_message


def test_aborting_a_run_midway_kills_its_processes_and_aborts_what_had_not_ended(
    flyte_client, store, get_taskaction, data_plane
):
    from tests.e2e.sdk_tasks.nested import slow_fan_out

    run = flyte_client.with_runcontext(mode="remote").run(slow_fan_out, seconds=60)
    wait_for(
        lambda: sum(r.phase == phases.RUNNING for r in actions_of(store, run.name).values() if r.parent == "a0") == 2,
        timeout=90,
        interval=0.5,
        what="both children running",
    )
    names = list(actions_of(store, run.name))
    run.abort(reason="enough")
    wait_for(
        lambda: all(get_taskaction(resource_name(run.name, name)) is None for name in names),
        timeout=60,
        interval=0.5,
        what="every TaskAction of the run to be deleted",
    )
    final = wait_for(
        lambda: (a := actions_of(store, run.name)) and all(phases.is_terminal(r.phase) for r in a.values()) and a,
        timeout=30,
        what="every action to end",
    )
    assert {r.phase for r in final.values()} == {phases.ABORTED}
    wait_for(lambda: not data_plane.executor.running_processes(run.name), timeout=20, what="the processes to be killed")
