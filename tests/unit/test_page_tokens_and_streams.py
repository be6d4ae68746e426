import gzip
import json
import struct

import pytest
from flyteidl2.workflow.run_service_pb2 import WatchActionDetailsRequest, WatchActionDetailsResponse

from runplane.connect.codec import HttpRequest
from runplane.connect.errors import Code, not_found
from runplane.connect.pages import MAX_LIMIT, PageTokens, page_limit
from runplane.connect.router import ConnectRouter
from runplane.connect.streams import envelope
from tests.refusals import REFUSED, code_of

PATH = "/flyteidl2.workflow.RunService/WatchActionDetails"


def test_tokens_round_trip_and_refuse_tampering_and_other_queries():
    tokens = PageTokens(secret=b"s")
    token = tokens.issue(query="q1", position={"after": "A#b"})
    assert tokens.read(token, query="q1") == {"after": "A#b"}
    assert tokens.read("", query="q1") is None
    for bad, query in (
        (token[:-1] + "0", "q1"),
        ("garbage", "q1"),
        (token, "q2"),
        (PageTokens(secret=b"x").issue(query="q1", position={}), "q1"),
    ):
        with pytest.raises(REFUSED) as info:
            tokens.read(bad, query=query)
        assert code_of(info.value) is Code.INVALID_ARGUMENT and "request.token" in info.value.message


def test_page_limits_follow_flyte():
    assert page_limit(0) == 50 and page_limit(MAX_LIMIT) == MAX_LIMIT
    with pytest.raises(REFUSED, match=r"request\.limit"):
        page_limit(MAX_LIMIT + 1)


def frames(body: bytes):
    out = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        out.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return out


@pytest.fixture
def router():
    router = ConnectRouter()

    @router.server_stream(PATH, WatchActionDetailsRequest)
    def watch(request):
        if request.action_id.name == "missing":
            raise not_found("action not found")
        return [WatchActionDetailsResponse(), WatchActionDetailsResponse()]

    return router


def stream_request(message, *, compress=True, content_type="application/connect+proto"):
    payload = message.SerializeToString()
    headers = {"content-type": content_type}
    if compress:
        payload, headers["connect-content-encoding"] = gzip.compress(payload), "gzip"
    return HttpRequest(method="POST", path=PATH, headers=headers, body=envelope(payload, flags=1 if compress else 0))


def test_a_stream_is_messages_then_an_end_frame_with_200(router):
    response = router.dispatch(stream_request(WatchActionDetailsRequest()))
    assert response.status == 200 and response.headers["content-type"] == "application/connect+proto"
    assert [flags for flags, _ in frames(response.body)] == [0, 0, 2]
    assert frames(response.body)[-1][1] == b"{}"


def test_stream_errors_travel_in_the_end_frame(router):
    request = WatchActionDetailsRequest()
    request.action_id.name = "missing"
    response = router.dispatch(stream_request(request, compress=False))
    assert response.status == 200
    ((flags, payload),) = frames(response.body)
    assert flags == 2 and json.loads(payload) == {"error": {"code": "not_found", "message": "action not found"}}


def test_a_broken_envelope_is_invalid_argument_and_a_wrong_type_is_415(router):
    broken = HttpRequest(
        method="POST", path=PATH, headers={"content-type": "application/connect+proto"}, body=b"\x00\x00"
    )
    ((_, payload),) = frames(router.dispatch(broken).body)
    assert json.loads(payload)["error"]["code"] == "invalid_argument"
    assert router.dispatch(stream_request(WatchActionDetailsRequest(), content_type="application/json")).status == 415


def test_a_gzip_bomb_in_a_stream_envelope_is_refused_without_inflating_it(router):
    import tracemalloc
    import zlib

    # 1 MB of gzip that inflates to about 1 GB of zeros
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    parts = []
    while sum(map(len, parts)) < 1 << 20:
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    bomb = b"".join(parts)
    assert len(bomb) >= 1 << 20
    request = HttpRequest(
        method="POST",
        path=PATH,
        headers={"content-type": "application/connect+proto", "connect-content-encoding": "gzip"},
        body=envelope(bomb, flags=1),
    )
    tracemalloc.start()
    try:
        response = router.dispatch(request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ((flags, payload),) = frames(response.body)
    error = json.loads(payload)["error"]
    assert flags == 2 and error["code"] == "invalid_argument" and "limit" in error["message"]
    assert peak < 64 * 1024 * 1024
