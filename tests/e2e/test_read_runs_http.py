"""Reads over HTTP through the local front: unary details and a Connect server stream, framed
exactly as the flyte SDK reads it."""

from __future__ import annotations

import gzip
import json
import struct

import pytest
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.workflow import run_service_pb2 as runs

from tests.builders import DOMAIN, PROJECT, action_id, create_run_request
from tests.conftest import unique_name
from tests.e2e.test_create_run_http import post, post_json, post_proto_gzip

pytestmark = pytest.mark.e2e

RUNS = "/flyteidl2.workflow.RunService"


def test_get_run_details_over_http(stack):
    run = unique_name()
    post_proto_gzip(stack, create_run_request(run))
    status, _, body = post_proto_gzip(
        stack,
        runs.GetRunDetailsRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run)),
        f"{RUNS}/GetRunDetails",
    )
    assert status == 200
    details = runs.GetRunDetailsResponse.FromString(body).details
    assert details.action.id.run.name == run and details.action.task.task_template.id.name == "hello.main"

    status, _, body = post_json(
        stack,
        runs.GetRunDetailsRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=unique_name())),
        f"{RUNS}/GetRunDetails",
    )
    assert status == 404 and json.loads(body)["code"] == "not_found"


def test_watch_action_details_is_a_framed_stream(stack):
    run = unique_name()
    post_proto_gzip(stack, create_run_request(run))
    request = runs.WatchActionDetailsRequest(action_id=action_id(run, "a0"))
    payload = gzip.compress(request.SerializeToString())
    status, headers, body = post(
        stack,
        struct.pack(">BI", 1, len(payload)) + payload,
        {
            "Content-Type": "application/connect+proto",
            "Connect-Content-Encoding": "gzip",
            "Connect-Protocol-Version": "1",
        },
        f"{RUNS}/WatchActionDetails",
    )
    assert status == 200 and headers["content-type"] == "application/connect+proto"
    frames = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        frames.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    assert frames[-1] == (2, b"{}")
    first = runs.WatchActionDetailsResponse.FromString(frames[0][1])
    assert first.details.id.run.name == run and first.details.status.phase == 1
