"""The local front picks routes as API Gateway does: exact routes first, then the longest greedy
prefix (the console's /v2/{proxy+} and /console/{proxy+} over the data proxy's /{proxy+}), with the
greedy variable in pathParameters; the template's routes resolve that way."""

from __future__ import annotations

from local_stack.apigateway import payload_v2_event
from local_stack.routing import RouteTable
from local_stack.template import HttpRoute, http_routes


def route(method: str, path: str, function: str) -> HttpRoute:
    return HttpRoute(method=method, path=path, function=function, handler=f"functions.{function}.handler.handler")


TABLE = RouteTable(
    routes=[
        route("ANY", "/{proxy+}", "fallback"),
        route("GET", "/v2/{proxy+}", "pages"),
        route("GET", "/v2/deep/{rest+}", "deep"),
        route("ANY", "/v2/deep/{rest+}", "deep_any"),
        route("POST", "/svc/Method", "exact"),
        route("ANY", "/svc/Any", "exact_any"),
        route("GET", "/", "home"),
    ]
)


def test_exact_routes_come_first_their_method_before_any():
    assert TABLE.match("POST", "/svc/Method").route.function == "exact"
    assert TABLE.match("DELETE", "/svc/Any").route.function == "exact_any"
    assert TABLE.match("GET", "/").route.function == "home"
    assert TABLE.match("GET", "/svc/Method").route.function == "fallback"  # no GET route: the greedy fallback


def test_the_longest_greedy_prefix_wins_and_names_its_variable():
    match = TABLE.match("GET", "/v2/domain/d/project/p/runs/r1")
    assert (match.route.function, match.path_parameters) == ("pages", {"proxy": "domain/d/project/p/runs/r1"})
    assert match.route_key == "GET /v2/{proxy+}"
    deep = TABLE.match("GET", "/v2/deep/a/b")
    assert (deep.route.function, deep.path_parameters) == ("deep", {"rest": "a/b"})
    assert TABLE.match("PUT", "/v2/deep/a").route.function == "deep_any"
    assert TABLE.match("POST", "/v2/x").route.function == "fallback"  # the method decides first
    assert TABLE.match("GET", "/v2").route.function == "fallback"  # a greedy variable needs a segment
    assert TABLE.match("GET", "/v2x/y").path_parameters == {"proxy": "v2x/y"}


def test_without_a_fallback_an_unrouted_path_is_none():
    table = RouteTable(routes=[route("GET", "/console/{proxy+}", "console")])
    assert table.match("GET", "/other") is None and table.match("GET", "/console/") is None
    assert table.match("GET", "/console/v/app.js").path_parameters == {"proxy": "v/app.js"}


def test_the_template_routes_the_console_and_keeps_the_fallback_for_procedures():
    table = RouteTable(routes=http_routes())
    console = "functions.console.handler.handler"
    for path in ("/", "/v2", "/v2/domain/development/project/flytesnacks/runs/abc", "/console/0123/js/app.js"):
        assert table.match("GET", path).route.handler == console, path
    assert table.match("POST", "/flyteidl2.workflow.RunService/ListRuns").route.handler == (
        "functions.read_runs.handler.handler"
    )
    for method, path in (("POST", "/flyteidl2.workflow.RunService/Nope"), ("GET", "/favicon.ico"), ("POST", "/v2/x")):
        assert table.match(method, path).route.handler == "functions.data_proxy.handler.handler", (method, path)


def test_the_event_carries_the_route_key_path_parameters_and_query():
    event = payload_v2_event(
        method="GET",
        path="/v2/a/b",
        query="i=c1&x=1&x=2",
        headers={},
        body=b"",
        route_key="GET /v2/{proxy+}",
        path_parameters={"proxy": "a/b"},
    )
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /v2/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert event["queryStringParameters"] == {"i": "c1", "x": "1,2"}
    plain = payload_v2_event(method="POST", path="/p", query="", headers={}, body=b"{}")
    assert plain["routeKey"] == "POST /p" and "pathParameters" not in plain and "queryStringParameters" not in plain
