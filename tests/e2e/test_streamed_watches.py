"""The watches streamed through the local front as on AWS (the function URL in RESPONSE_STREAM
mode): frames read one by one off a chunked answer, as they are written.

The stack's watch window is 2 s (tests/conftest.py), so a stream ends cleanly after 2 s.
"""

from __future__ import annotations

import gzip
import http.client
import json
import struct
import threading
import time
import urllib.parse

import pytest
from flyteidl2.actions import actions_service_pb2 as actions

from runplane.flyte import phases
from runplane.table.actions import ActionStore
from runplane.table.outcomes import StatusUpdate
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action
from tests.conftest import unique_name
from tests.e2e.test_child_actions_http import WATCH_FOR_UPDATES, key, new_run_with_child, update_status
from tests.e2e.test_create_run_http import post_proto_gzip

pytestmark = pytest.mark.e2e

ENQUEUE = "/flyteidl2.actions.ActionsService/Enqueue"


@pytest.fixture
def store(stack):
    return ActionStore(table_name=stack.aws.table_name)


class Stream:
    """One WatchForUpdates call, read frame by frame as the SDK's Connect client reads it."""

    def __init__(
        self, stack, parent: str, run: str, *, headers: dict[str, str] | None = None, status: int = 200
    ) -> None:
        url = urllib.parse.urlsplit(stack.endpoint)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        payload = gzip.compress(
            actions.WatchForUpdatesRequest(parent_action_id=action_id(run, parent)).SerializeToString()
        )
        self.connection.request(
            "POST",
            WATCH_FOR_UPDATES,
            body=struct.pack(">BI", 1, len(payload)) + payload,
            headers={
                "Content-Type": "application/connect+proto",
                "Connect-Content-Encoding": "gzip",
                "Connect-Protocol-Version": "1",
                **(headers or {}),
            },
        )
        self.response = self.connection.getresponse()
        assert self.response.status == status
        if status == 200:
            assert self.response.getheader("transfer-encoding") == "chunked"

    def next(self):
        """The next frame as (kind, value, seconds it took): ("update", (name, phase)),
        ("sentinel", None), ("end", the end JSON), or ("cut", None) when the stream stopped
        without its end frame."""
        started = time.monotonic()
        try:
            header = self.response.read(5)
            flags, length = struct.unpack(">BI", header)
            data = self.response.read(length)
        except (http.client.IncompleteRead, ConnectionError, struct.error):
            return "cut", None, time.monotonic() - started
        took = time.monotonic() - started
        if flags & 2:
            return "end", json.loads(data), took
        message = actions.WatchForUpdatesResponse.FromString(data)
        if message.WhichOneof("message") == "control_message":
            return "sentinel", None, took
        return "update", (message.action_update.action_id.name, message.action_update.phase), took

    def until_sentinel(self):
        frames = []
        while (frame := self.next())[0] == "update":
            frames.append(frame[1])
        assert frame[0] == "sentinel", frame
        return frames

    def close(self) -> None:
        self.connection.close()


def test_each_change_is_sent_as_it_is_written_on_one_open_stream(stack):
    run = new_run_with_child(stack)
    stream = Stream(stack, "a0", run)
    try:
        started = time.monotonic()
        assert stream.until_sentinel() == [("a0", phases.RUNNING), ("c1", phases.QUEUED)]
        assert time.monotonic() - started < 1.0  # the sentinel at once, not at the end of the window
        for phase in (phases.INITIALIZING, phases.RUNNING):
            written = time.monotonic()
            update_status(stack, run, "c1", phase)
            kind, value, _ = stream.next()
            assert (kind, value) == ("update", ("c1", phase))
            assert time.monotonic() - written < 1.0  # a poll, not a reconnect
        kind, value, _ = stream.next()
        assert (kind, value) == ("end", {})  # the window's clean end
    finally:
        stream.close()


def test_a_stream_cut_at_the_limit_loses_nothing_on_the_next_one(stack):
    run = new_run_with_child(stack)
    with stack.stream_limit(0.8):
        stream = Stream(stack, "a0", run)
        try:
            assert stream.until_sentinel() == [("a0", phases.RUNNING), ("c1", phases.QUEUED)]
            kind, _, _ = stream.next()
            assert kind == "cut"  # the function's timeout: no end frame
        finally:
            stream.close()
        update_status(stack, run, "c1", phases.SUCCEEDED)  # while no stream is open
        stream = Stream(stack, "a0", run)
        try:
            assert stream.until_sentinel() == [("a0", phases.RUNNING), ("c1", phases.SUCCEEDED)]
        finally:
            stream.close()


def test_a_client_that_leaves_or_never_reads_holds_no_other_watch_up(stack):
    run = new_run_with_child(stack)
    # Under the 2 s window (the idle stream must be cut, not ended), with room for the reading
    # stream's update to arrive before the limit on a loaded machine.
    limit = 1.6
    with stack.stream_limit(limit):
        idle = Stream(stack, "a0", run)  # never read
        dropped = Stream(stack, "a0", run)
        dropped.close()  # a dropped connection
        reading = Stream(stack, "a0", run)
        try:
            assert reading.until_sentinel() == [("a0", phases.RUNNING), ("c1", phases.QUEUED)]
            update_status(stack, run, "c1", phases.RUNNING)
            assert reading.next()[:2] == ("update", ("c1", phases.RUNNING))
        finally:
            reading.close()
        time.sleep(limit + 0.2)
        # the idle client's stream was cut at the limit: what it had not read, then no end frame
        assert idle.until_sentinel() == [("a0", phases.RUNNING), ("c1", phases.QUEUED)]
        frames = []
        while (frame := idle.next())[0] == "update":
            frames.append(frame[1])
        assert frame[0] == "cut" and frames in ([], [("c1", phases.RUNNING)])
        idle.close()


def test_two_parents_of_one_run_each_see_only_their_family(stack):
    run = new_run_with_child(stack, child="c1")
    assert post_proto_gzip(stack, child_task_action(run, "c2"), ENQUEUE)[0] == 200
    update_status(stack, run, "c1", phases.RUNNING)
    assert post_proto_gzip(stack, child_task_action(run, "g1", parent="c1"), ENQUEUE)[0] == 200
    root, middle = Stream(stack, "a0", run), Stream(stack, "c1", run)
    try:
        assert root.until_sentinel() == [("a0", phases.RUNNING), ("c1", phases.RUNNING), ("c2", phases.QUEUED)]
        assert middle.until_sentinel() == [("c1", phases.RUNNING), ("g1", phases.QUEUED)]
        update_status(stack, run, "g1", phases.RUNNING)
        update_status(stack, run, "c2", phases.RUNNING)
        assert root.next()[:2] == ("update", ("c2", phases.RUNNING))
        assert middle.next()[:2] == ("update", ("g1", phases.RUNNING))
        assert root.next()[:2] == ("end", {}) and middle.next()[:2] == ("end", {})
    finally:
        root.close()
        middle.close()


def test_a_watch_of_a_missing_action_is_not_found_at_once(stack):
    started = time.monotonic()
    stream = Stream(stack, "a0", unique_name())
    try:
        kind, end, _ = stream.next()
        assert kind == "end" and end["error"]["code"] == "not_found"
        assert time.monotonic() - started < 1.0
    finally:
        stream.close()


def test_many_changes_between_polls_arrive_exactly_once_in_order(stack, store):
    run = new_run_with_child(stack)
    for name in ("c2", "c3"):
        assert post_proto_gzip(stack, child_task_action(run, name), ENQUEUE)[0] == 200
    stream = Stream(stack, "a0", run)
    try:
        stream.until_sentinel()
        writers = [
            threading.Thread(target=store.update_status, args=(key(run, name), StatusUpdate(phase=phases.RUNNING)))
            for name in ("c1", "c2", "c3")
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        seen = []
        while (frame := stream.next())[0] == "update":
            seen.append(frame[1])
        assert frame[:2] == ("end", {})
        assert sorted(seen) == [("c1", phases.RUNNING), ("c2", phases.RUNNING), ("c3", phases.RUNNING)]
    finally:
        stream.close()


def test_the_streamed_route_checks_tokens_as_the_http_api_does(stack):
    """The streaming function checks the JWT itself (runplane.connect.jwt_check): no token is 401,
    a user token on the SDK's watch 403 (it needs the data-plane scope), a token for another
    project is refused in the end frame, before anything is read."""
    run = new_run_with_child(stack)
    mint = stack.auth.issuer.mint
    with stack.authentication():
        Stream(stack, "a0", run, status=401).close()
        Stream(stack, "a0", run, headers=stack.user_headers(), status=403).close()
        other = mint(subject="task", scopes=[stack.auth.data_plane_scope], projects=["another-project"])
        stream = Stream(stack, "a0", run, headers={"Authorization": f"Bearer {other}"})
        try:
            kind, end, _ = stream.next()
            assert kind == "end" and end["error"]["code"] == "permission_denied"
        finally:
            stream.close()
        stream = Stream(stack, "a0", run, headers=stack.data_plane_headers())
        try:
            assert stream.until_sentinel() == [("a0", phases.RUNNING), ("c1", phases.QUEUED)]
        finally:
            stream.close()


def test_the_sdk_resumes_streams_cut_off_mid_way_and_its_run_ends_exact(stack):
    """Every stream, the parent's informer's and the laptop's run.wait(), is cut off by the
    function's time limit before the watch's window ends: the SDK subscribes again each time and
    the run ends with its outputs."""
    import flyte

    from tests.e2e.sdk_tasks.nested import fan_out

    with stack.data_plane(), stack.stream_limit(1.5):
        flyte.init(endpoint=stack.endpoint, insecure=True, org="testorg", project=PROJECT, domain=DOMAIN)
        run = flyte.with_runcontext(mode="remote").run(fan_out, n=2)
        run.wait(quiet=True)
    assert run.phase == "succeeded", run.phase
    assert "30" in str(run.outputs())  # 2*2 + 3*3 + (4*4 + 1)
