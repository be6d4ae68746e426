"""Which route of the HTTP API a request goes to, chosen as API Gateway chooses it.

API Gateway's HTTP API picks the most specific route (its "Working with routes" rules):

1. a route naming the path exactly, its method before ``ANY``;
2. else a route with a greedy path variable (``/v2/{proxy+}``) whose prefix the path continues,
   the longest prefix first (``/console/{proxy+}`` and ``/v2/{proxy+}`` win over ``/{proxy+}``),
   its method before ``ANY``; the variable gets the rest of the path, in ``pathParameters``;
3. else nothing: 404 ``{"message":"Not Found"}``.

``/{proxy+}`` (the data_proxy function's fallback) is the greedy route with the empty prefix; the
local front also gives it ``/`` when no route names ``/``, as it always has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from local_stack.template import HttpRoute

# "<prefix>/{<name>+}": a greedy path variable, the last segment of a route's path.
_GREEDY = re.compile(r"^(?P<prefix>.*)/\{(?P<name>[A-Za-z0-9_]+)\+\}$")
ANY = "ANY"


@dataclass(frozen=True)
class RouteMatch:
    route: HttpRoute
    path_parameters: dict[str, str] = field(default_factory=dict)

    @property
    def route_key(self) -> str:
        """``routeKey`` of the payload 2.0 event: the route as declared, e.g. ``GET /v2/{proxy+}``."""
        return f"{self.route.method} {self.route.path}"


@dataclass(frozen=True)
class _Greedy:
    prefix: str
    variable: str
    route: HttpRoute


class RouteTable:
    def __init__(self, *, routes: list[HttpRoute]) -> None:
        self._exact: dict[tuple[str, str], HttpRoute] = {}
        greedy: list[_Greedy] = []
        for route in routes:
            found = _GREEDY.match(route.path)
            if found is None:
                self._exact[(route.method, route.path)] = route
            else:
                greedy.append(_Greedy(prefix=found["prefix"], variable=found["name"], route=route))
        # longest prefix first; for one prefix, a method's route before ANY
        self._greedy = sorted(greedy, key=lambda g: (-len(g.prefix), g.route.method == ANY))
        self.routes = [*self._exact.values(), *(g.route for g in self._greedy)]

    def match(self, method: str, path: str) -> RouteMatch | None:
        for candidate in (method, ANY):
            route = self._exact.get((candidate, path))
            if route is not None:
                return RouteMatch(route)
        for greedy in self._greedy:
            if greedy.route.method not in (method, ANY):
                continue
            rest = path[len(greedy.prefix) + 1 :]
            if path.startswith(greedy.prefix + "/") and rest:
                return RouteMatch(greedy.route, {greedy.variable: rest})
        if path == "/":  # the fallback has always answered the root too
            for greedy in self._greedy:
                if greedy.prefix == "" and greedy.route.method in (method, ANY):
                    return RouteMatch(greedy.route)
        return None
