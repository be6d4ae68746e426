"""A tree of 125 actions, four levels deep, created over HTTP: its TaskActions' owner chain mirrors
the tree, and aborts over HTTP cascade through the real garbage collector within seconds."""

from __future__ import annotations

import json
import time

import pytest
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.workflow import run_service_pb2 as runs

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, create_run_request
from tests.conftest import unique_name, wait_for
from tests.e2e.test_create_run_http import post_json, post_proto_gzip
from tests.integration.test_reconcile_tree import assert_owner_chain, resources_of, subtree

pytestmark = pytest.mark.e2e

ENQUEUE = "/flyteidl2.actions.ActionsService/Enqueue"
FANOUTS = (4, 5, 5)  # a0 -> 4 -> 20 -> 100: 125 actions, 4 levels


def enqueue_tree(stack, run: str) -> dict[str, str | None]:
    tree: dict[str, str | None] = {"a0": None}
    level = ["a0"]
    for fanout in FANOUTS:
        next_level = []
        for parent in level:
            for _ in range(fanout):
                name = f"n{len(tree)}"
                status, _, body = post_proto_gzip(stack, child_task_action(run, name, parent=parent), ENQUEUE)
                assert status == 200, body
                tree[name] = parent
                next_level.append(name)
        level = next_level
    return tree


def test_a_125_action_tree_mirrors_as_owner_chain_and_aborts_cascade(stack, custom_objects):
    store = ActionStore(table_name=stack.aws.table_name)
    run = unique_name()
    assert post_proto_gzip(stack, create_run_request(run))[0] == 200
    tree = enqueue_tree(stack, run)
    assert len(tree) == 125

    wait_for(lambda: len(resources_of(custom_objects, run)) == len(tree), timeout=60, what="125 TaskActions")
    assert_owner_chain(resources_of(custom_objects, run), tree)

    middle = "n1"  # a second-level action: itself, 5 children and 25 grandchildren
    removed = subtree(tree, middle)
    started = time.monotonic()
    status, _, body = post_json(
        stack,
        runs.AbortActionRequest(action_id=action_id(run, middle), reason="enough"),
        "/flyteidl2.workflow.RunService/AbortAction",
    )
    assert status == 200, body
    wait_for(
        lambda: set(resources_of(custom_objects, run)) == set(tree) - removed, timeout=30, what="the subtree to go"
    )
    subtree_seconds = time.monotonic() - started
    key = lambda name: ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name)  # noqa: E731
    wait_for(lambda: all(store.get_action(key(n)).phase == phases.ABORTED for n in removed), what="the subtree ABORTED")
    assert all(store.get_action(key(n)).phase == phases.QUEUED for n in set(tree) - removed)

    started = time.monotonic()
    request = runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run))
    assert post_json(stack, request, "/flyteidl2.workflow.RunService/AbortRun")[0] == 200
    wait_for(lambda: not resources_of(custom_objects, run), timeout=30, what="every TaskAction of the run to go")
    run_seconds = time.monotonic() - started
    wait_for(lambda: all(store.get_action(key(n)).phase == phases.ABORTED for n in tree), what="every action ABORTED")
    assert store.get_action(key("a0")).abort_requested_at is None  # the request was carried out and cleared
    print(json.dumps({"subtree_abort_seconds": round(subtree_seconds, 2), "run_abort_seconds": round(run_seconds, 2)}))
    assert subtree_seconds < 15 and run_seconds < 15
