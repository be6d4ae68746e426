"""The router's two ways of answering a server stream: frame by frame (``dispatch_streamed``) and
buffered (``dispatch``, for API Gateway's HTTP API), from the same generator."""

from __future__ import annotations

import json
import struct

from flyteidl2.common.identifier_pb2 import ActionIdentifier, RunIdentifier
from flyteidl2.workflow import state_service_pb2 as state

from runplane.connect.codec import HttpRequest
from runplane.connect.router import ConnectRouter
from runplane.errors import NotFound

PATH = "/flyteidl2.workflow.StateService/Watch"


def request_for(name: str) -> HttpRequest:
    message = state.WatchRequest(
        parent_action_id=ActionIdentifier(name=name, run=RunIdentifier(org="o", project="p", domain="d", name="r"))
    ).SerializeToString()
    return HttpRequest(
        method="POST",
        path=PATH,
        headers={"content-type": "application/connect+proto"},
        body=struct.pack(">BI", 0, len(message)) + message,
    )


def make_router(produced: list[str]) -> ConnectRouter:
    router = ConnectRouter()

    @router.server_stream(PATH, state.WatchRequest)
    def watch(request):
        if request.parent_action_id.name == "missing":
            raise NotFound("action missing not found")
        for name in ("one", "two"):
            produced.append(name)
            yield state.WatchResponse(action_update=state.ActionUpdate(action_id=ActionIdentifier(name=name)))

    return router


def frames(body: bytes) -> list[tuple[int, bytes]]:
    found = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        found.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return found


def test_frames_go_out_as_the_handler_yields_them():
    produced: list[str] = []
    response = make_router(produced).dispatch_streamed(request_for("a0"))
    assert response.status == 200 and response.headers["content-type"] == "application/connect+proto"
    first = next(response.chunks)
    assert produced == ["one"]  # the second message is not produced yet
    assert state.WatchResponse.FromString(frames(first)[0][1]).action_update.action_id.name == "one"
    rest = b"".join(response.chunks)
    assert [flags for flags, _ in frames(rest)] == [0, 2]


def test_the_buffered_fallback_sends_the_same_frames_in_one_body():
    streamed = b"".join(make_router([]).dispatch_streamed(request_for("a0")).chunks)
    buffered = make_router([]).dispatch(request_for("a0"))
    assert buffered.status == 200 and buffered.body == streamed


def test_a_refusal_is_the_end_frame_at_once():
    response = make_router([]).dispatch_streamed(request_for("missing"))
    ((flags, data),) = frames(b"".join(response.chunks))
    assert flags == 2 and json.loads(data)["error"]["code"] == "not_found"


def test_a_client_that_leaves_stops_the_handler():
    produced: list[str] = []
    response = make_router(produced).dispatch_streamed(request_for("a0"))
    next(response.chunks)
    response.chunks.close()
    assert produced == ["one"]
