"""ListRuns: a request -> a query of the sharded run index, and the shards merged into pages.

The run index (``RunsByCreatedAt``) is sharded so one project can create runs faster than one
partition accepts writes (docs/load-model.md). A page is read by querying every shard of the
project/domain for its next ``limit + 1`` runs after the cursor (in parallel), merging them by
creation time and keeping ``limit``: the global next page is always among them, and whether more
follow is known exactly. Filters run in DynamoDB (a FilterExpression), creation-time bounds in
the key condition; the allowlists name every field they refuse.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flyteidl2.common import list_pb2
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from runplane.connect.errors import invalid_argument
from runplane.identifiers import validate_scope_name
from runplane.records import RUN_INDEX_SHARDS, format_time

Function = list_pb2.Filter.Function
# field -> the functions it accepts (Flyte's allowlist, narrowed to what the index serves)
FILTERS = {
    "phase": {Function.EQUAL, Function.NOT_EQUAL, Function.VALUE_IN},
    "run_source": {Function.EQUAL, Function.NOT_EQUAL, Function.VALUE_IN},
    "task_name": {Function.EQUAL, Function.CONTAINS},
    "task_version": {Function.EQUAL},
    "trigger_name": {Function.EQUAL},
    "created_at": {
        Function.GREATER_THAN,
        Function.GREATER_THAN_OR_EQUAL,
        Function.LESS_THAN,
        Function.LESS_THAN_OR_EQUAL,
    },
    "updated_at": {
        Function.GREATER_THAN,
        Function.GREATER_THAN_OR_EQUAL,
        Function.LESS_THAN,
        Function.LESS_THAN_OR_EQUAL,
    },
}
SORT_KEYS = frozenset({"created_at"})
_COMPARISONS = {
    Function.EQUAL: "=",
    Function.NOT_EQUAL: "<>",
    Function.GREATER_THAN: ">",
    Function.GREATER_THAN_OR_EQUAL: ">=",
    Function.LESS_THAN: "<",
    Function.LESS_THAN_OR_EQUAL: "<=",
}
_AFTER_EVERY_RUN = "#~"  # sorts after "#<any run name>": run names are [a-z0-9-]


@dataclass
class RunQuery:
    project: str
    domain: str
    ascending: bool
    lower: str | None = None  # inclusive bounds on run_index_sk (creation time, then run name)
    upper: str | None = None
    conditions: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    fingerprint: str = ""  # binds page tokens to this query

    @property
    def filter_expression(self) -> str | None:
        return " AND ".join(self.conditions) or None


def run_query(request: runs.ListRunsRequest) -> RunQuery:
    scope = request.WhichOneof("scope_by")
    extra: list[list_pb2.Filter] = []
    if scope == "project_id":
        project, domain = request.project_id.name, request.project_id.domain
    elif scope == "task_name":
        project, domain = request.task_name.project, request.task_name.domain
        extra.append(list_pb2.Filter(function=Function.EQUAL, field="task_name", values=[request.task_name.name]))
    elif scope == "task_id":
        project, domain = request.task_id.project, request.task_id.domain
        extra.append(list_pb2.Filter(function=Function.EQUAL, field="task_name", values=[request.task_id.name]))
        extra.append(list_pb2.Filter(function=Function.EQUAL, field="task_version", values=[request.task_id.version]))
    elif scope == "trigger_name":
        project, domain = request.trigger_name.project, request.trigger_name.domain
        extra.append(list_pb2.Filter(function=Function.EQUAL, field="trigger_name", values=[request.trigger_name.name]))
    elif scope == "org":
        # Flyte ignores the org and lists every project (docs/flyte-compat.md#q11-org-scope); there is no such listing here.
        raise invalid_argument("scope org is not supported: list the runs of a project_id")
    else:
        raise invalid_argument("a project_id (or task or trigger) scope is required")
    if request.paused_actions_only:
        raise invalid_argument("paused_actions_only is not supported yet")
    query = RunQuery(
        project=validate_scope_name(project, field=f"{scope}.project"),
        domain=validate_scope_name(domain, field=f"{scope}.domain"),
        ascending=_ascending(request.request),
    )
    for position, item in enumerate([*request.request.filters, *extra]):
        _add_filter(query, item, position)
    query.fingerprint = json.dumps(
        [scope, project, domain, query.ascending, query.lower, query.upper, query.conditions, query.values],
        sort_keys=True,
    )
    return query


def _ascending(page: list_pb2.ListRequest) -> bool:
    sorts = list(page.sort_by_fields) or ([page.sort_by] if page.HasField("sort_by") else [])
    if not sorts:
        return False  # newest first (see the README on Flyte's default order)
    for sort in sorts:
        if sort.key not in SORT_KEYS:
            raise invalid_argument(f"request.sort_by: runs can be sorted by created_at, not {sort.key!r}")
    return sorts[0].direction == list_pb2.Sort.ASCENDING


def _add_filter(query: RunQuery, item: list_pb2.Filter, position: int) -> None:
    name = item.field
    allowed = FILTERS.get(name)
    if allowed is None:
        raise invalid_argument(f"request.filters: field {name!r} cannot be filtered on; use one of {sorted(FILTERS)}")
    if item.function not in allowed:
        raise invalid_argument(
            f"request.filters: {list_pb2.Filter.Function.Name(item.function)} is not supported on {name!r}"
        )
    values = list(item.values)
    if item.function == Function.EQUAL and name == "phase" and len(values) > 1 and all(len(v) == 1 for v in values):
        values = ["".join(values)]  # the flyte SDK assigns a str to the repeated field: "10" -> ["1", "0"]
    if not values or (item.function != Function.VALUE_IN and len(values) != 1):
        raise invalid_argument(
            f"request.filters: {name!r} needs {'values' if item.function == Function.VALUE_IN else 'one value'}"
        )
    if name == "created_at":
        _bound_creation(query, item.function, _time(values[0], name))
        return
    typed = [_typed(name, value) for value in values]
    if name == "updated_at":
        typed = [{"S": format_time(_time(values[0], name))}]
    attribute = f"#f{position}"
    query.names[attribute] = name
    placeholders = []
    for index, value in enumerate(typed):
        placeholder = f":f{position}_{index}"
        query.values[placeholder] = value
        placeholders.append(placeholder)
    if item.function == Function.VALUE_IN:
        query.conditions.append(f"{attribute} IN ({', '.join(placeholders)})")
    elif item.function == Function.CONTAINS:
        query.conditions.append(f"contains({attribute}, {placeholders[0]})")
    else:
        query.conditions.append(f"{attribute} {_COMPARISONS[item.function]} {placeholders[0]}")


def _bound_creation(query: RunQuery, function: int, moment: datetime) -> None:
    stamp = format_time(moment)
    if function in (Function.GREATER_THAN, Function.GREATER_THAN_OR_EQUAL):
        bound = stamp + _AFTER_EVERY_RUN if function == Function.GREATER_THAN else stamp
        query.lower = max(filter(None, (query.lower, bound)))
    else:
        bound = stamp + _AFTER_EVERY_RUN if function == Function.LESS_THAN_OR_EQUAL else stamp
        query.upper = min(filter(None, (query.upper, bound)))


def _typed(name: str, value: str) -> dict[str, str]:
    if name == "phase":
        return {"N": str(_enum_value(ActionPhase, value, prefix="ACTION_PHASE_", field=name))}
    if name == "run_source":
        return {"S": wf.RunSource.Name(_enum_value(wf.RunSource, value, prefix="RUN_SOURCE_", field=name))}
    return {"S": value}


def _enum_value(enum: Any, value: str, *, prefix: str, field: str) -> int:
    if value.isdigit() and int(value) in enum.values():
        return int(value)
    name = value.upper()
    for candidate in (name, prefix + name):
        if candidate in enum.DESCRIPTOR.values_by_name:
            return enum.Value(candidate)
    raise invalid_argument(f"request.filters: {value!r} is not a valid {field}")


def _time(value: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_argument(f"request.filters: {field} needs an ISO-8601 time, not {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_page(store: Any, query: RunQuery, *, limit: int, after: str | None) -> tuple[list[dict[str, Any]], bool]:
    """The next ``limit`` index items after the cursor across all shards, and whether more follow."""
    lower, upper = query.lower, query.upper
    if after is not None:  # the cursor's own item comes back (inclusive bound) and is dropped
        if query.ascending:
            lower = max(filter(None, (lower, after)))
        else:
            upper = min(filter(None, (upper, after)))
    if lower and upper and lower > upper:
        return [], False  # an empty window: DynamoDB refuses a BETWEEN whose bounds are reversed

    def shard(number: int) -> list[dict[str, Any]]:
        return store.query_run_index(
            f"{query.project}#{query.domain}#{number:02d}",
            ascending=query.ascending,
            lower=lower,
            upper=upper,
            filter_expression=query.filter_expression,
            names=query.names,
            values=query.values,
            want=limit + 2,
        )

    with ThreadPoolExecutor(max_workers=RUN_INDEX_SHARDS) as pool:
        items = [item for part in pool.map(shard, range(RUN_INDEX_SHARDS)) for item in part]
    items = [item for item in items if item["run_index_sk"]["S"] != after]
    items.sort(key=lambda item: item["run_index_sk"]["S"], reverse=not query.ascending)
    return items[:limit], len(items) > limit
