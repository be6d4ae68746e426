"""ListRuns: a request -> a query of the sharded run index, and the shards merged into pages.

The run index (``RunsByCreatedAtV2``) is sharded so one project can create runs faster than one
partition accepts writes (docs/load-model.md). A page is read by querying every shard of the
project/domain for its next ``limit + 2`` runs after the cursor (in parallel), merging them by
creation time and keeping ``limit``: the global next page is always among them, and whether more
follow is known exactly. Filters run in DynamoDB (a FilterExpression), creation-time bounds in
the key condition; the allowlists name every field they refuse.

The index holds what does not change once a run is created, and the state of a run that has
ended (``runplane.table.records.RUN_INDEX_PROJECTION``), so a status change does not rewrite it. A run
that has not ended is listed with its current state, read from its item (one BatchGetItem for
the page's such runs), and that is what the filters on phase and update time are checked
against (``Check``): DynamoDB's filter lets those runs through, and a run a check then refuses
is skipped, the page filled from the entries after it.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flyteidl2.common import list_pb2
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from runplane.connect.errors import invalid_argument
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey, validate_scope_name
from runplane.table.records import (
    ACTION_LISTING_ATTRIBUTES,
    END_PHASE,
    RUN_INDEX_NAME,
    RUN_INDEX_SHARDS,
    ActionRecord,
    format_time,
)

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
_ORDER = {
    Function.GREATER_THAN: operator.gt,
    Function.GREATER_THAN_OR_EQUAL: operator.ge,
    Function.LESS_THAN: operator.lt,
    Function.LESS_THAN_OR_EQUAL: operator.le,
}


@dataclass(frozen=True)
class Check:
    """A filter on what changes while a run lives (its phase, its last update), checked against
    the run's state: the index entry's once the run has ended (phase only: entries carry no
    update time), its item's before."""

    field: str  # "phase" or "updated_at"
    function: Function
    values: tuple[str, ...]  # phase numbers as digits, or one time as ``format_time`` writes it

    def passes(self, record: ActionRecord) -> bool:
        if self.field == "phase":
            phase = str(record.phase)
            if self.function == Function.NOT_EQUAL:
                return phase not in self.values
            return phase in self.values  # EQUAL, VALUE_IN
        updated = format_time(record.updated_at or record.created_at)  # fixed width: text order is time order
        return _ORDER[self.function](updated, self.values[0])


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
    checks: list[Check] = field(default_factory=list)
    fingerprint: str = ""  # binds page tokens to this query

    @property
    def filter_expression(self) -> str | None:
        return " AND ".join(self.conditions) or None

    def listed_as_is(self, entry: dict[str, Any]) -> bool:
        """Whether an index entry has all this query's listing and checks need: that of an ended
        run (``end_phase``; the update time only if a check needs it), or one of the previous
        index, which projected the whole state (``phase``, ``updated_at``)."""
        if "phase" in entry:
            return True
        return END_PHASE in entry and not any(check.field == "updated_at" for check in self.checks)

    def passes(self, record: ActionRecord) -> bool:
        return all(check.passes(record) for check in self.checks)


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
    checks = [[check.field, check.function, check.values] for check in query.checks]
    query.fingerprint = json.dumps(
        [scope, project, domain, query.ascending, query.lower, query.upper, query.conditions, query.values, checks],
        sort_keys=True,
    )
    return query


def _ascending(page: list_pb2.ListRequest) -> bool:
    sorts = list(page.sort_by_fields) or ([page.sort_by] if page.HasField("sort_by") else [])
    if not sorts:
        return False  # newest first (docs/flyte-compat.md#listing: Flyte's default order)
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
    if name == "updated_at":  # the entries carry no update time: checked against the runs' items
        query.checks.append(Check(name, item.function, (format_time(_time(values[0], name)),)))
        return
    if name == "phase":
        _filter_phase(query, item.function, [value["N"] for value in typed], position)
        return
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


def _filter_phase(query: RunQuery, function: Function, numbers: list[str], position: int) -> None:
    """A phase filter. DynamoDB's takes the entries of runs that ended in a phase the filter
    takes (``end_phase``); the entries of runs that have not ended if the filter takes a phase
    that has not ended; and entries with an end but no ``end_phase`` (a run retried after it
    failed, a root written before ``end_phase``). ``Check`` then decides on each run's phase."""
    attribute, ended_at = f"#f{position}", f"#f{position}e"
    query.names[attribute] = END_PHASE
    ended = numbers if function == Function.NOT_EQUAL else [n for n in numbers if phases.is_terminal(int(n))]
    placeholders = []
    for index, number in enumerate(ended):
        placeholder = f":f{position}_{index}"
        query.values[placeholder] = {"N": number}
        placeholders.append(placeholder)
    if function == Function.NOT_EQUAL:
        ending = f"{attribute} <> {placeholders[0]}"
    elif ended:
        ending = f"{attribute} IN ({', '.join(placeholders)})"
    else:
        ending = ""
    if function == Function.NOT_EQUAL or len(ended) < len(numbers):  # takes a phase that has not ended
        unknown = f"attribute_not_exists({attribute})"
    else:
        query.names[ended_at] = "ended_at"
        unknown = f"(attribute_not_exists({attribute}) AND attribute_exists({ended_at}))"
    query.conditions.append(f"({ending} OR {unknown})" if ending else unknown)
    query.checks.append(Check("phase", function, tuple(numbers)))


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


@dataclass
class Listed:
    """A run of a page: its place in the index (the page token's cursor) and what is listed."""

    sort_key: str
    entry: dict[str, Any]
    record: ActionRecord | None = None  # None until read (an entry not listed as it is)


# A page reads at most about MAX_ROUNDS_PER_PAGE x MAX_SCANNED_PER_ROUND index entries (each
# shard its share of a round): a filter that matches nothing answers a short page (maybe empty)
# and a token after ~4,000 entries read, not a walk of the whole index in one call.
MAX_SCANNED_PER_ROUND = 2_000
MAX_ROUNDS_PER_PAGE = 2
# The cursor's own entry comes back first (the bounds are inclusive): two a shard always advance.
MIN_SCANNED_PER_SHARD = 2


def read_page(
    store: Any, query: RunQuery, *, limit: int, after: str | None, index: str = RUN_INDEX_NAME
) -> tuple[list[ActionRecord], str | None]:
    """The next ``limit`` runs after the cursor across all shards, and the cursor of the last
    one if more follow (else None).

    A round queries every shard for its next ``limit + 2`` entries after the cursor (the cursor's
    own entry comes back, the bounds being inclusive, and is dropped) and merges them; the merged
    entries are complete up to the last one of the shard that stops first among those that
    returned all they were asked for, and only those are used. Without checks that is enough:
    there are ``limit + 1`` of them whenever more follow. With checks, the runs are checked in
    order and rounds go on after the last complete entry until ``limit + 1`` pass or the index
    has no more."""
    found: list[Listed] = []
    cursor = after
    rounds = 0
    while True:
        entries, complete = _read_round(store, query, limit=limit, after=cursor, index=index)
        rounds += 1
        found.extend(_passing(store, query, entries, wanted=limit + 1 - len(found)))
        if len(found) > limit or complete is None:
            break
        cursor = complete
        if rounds >= MAX_ROUNDS_PER_PAGE:
            # A filter that matches little: the page so far (maybe none), and a token that goes on
            # from where the reading stopped; never a walk of the whole index in one call.
            _read_current(store, [listed for listed in found if listed.record is None])
            return [listed.record for listed in found if listed.record is not None], complete
    page = found[:limit]
    _read_current(store, [listed for listed in page if listed.record is None])
    records = [listed.record for listed in page if listed.record is not None]  # None: the item is gone
    return records, page[-1].sort_key if len(found) > limit else None


def _read_round(
    store: Any, query: RunQuery, *, limit: int, after: str | None, index: str
) -> tuple[list[dict[str, Any]], str | None]:
    """The merged entries after ``after`` that are known complete, in order, and the sort key up
    to which they are (None: every shard has been read to the end of the query's bounds)."""
    lower, upper = query.lower, query.upper
    if after is not None:  # the cursor's own item comes back (inclusive bound) and is dropped
        if query.ascending:
            lower = max(filter(None, (lower, after)))
        else:
            upper = min(filter(None, (upper, after)))
    if lower and upper and lower > upper:
        return [], None  # an empty window: DynamoDB refuses a BETWEEN whose bounds are reversed
    want = limit + 2

    def shard(number: int) -> tuple[list[dict[str, Any]], str | None]:
        return store.query_run_index(
            f"{query.project}#{query.domain}#{number:02d}",
            ascending=query.ascending,
            lower=lower,
            upper=upper,
            filter_expression=query.filter_expression,
            names=query.names,
            values=query.values,
            want=want,
            index=index,
            max_scanned=max(MIN_SCANNED_PER_SHARD, MAX_SCANNED_PER_ROUND // RUN_INDEX_SHARDS),
        )

    with ThreadPoolExecutor(max_workers=RUN_INDEX_SHARDS) as pool:
        answers = list(pool.map(shard, range(RUN_INDEX_SHARDS)))
    parts = [items for items, _ in answers]
    # shards that may have more: those that returned all they were asked for, and those whose
    # reading stopped at the scan budget (read up to ``resume``)
    ends = [_sort_key(items[-1]) for items, resume in answers if resume is None and len(items) >= want]
    ends += [resume for _, resume in answers if resume is not None]
    complete = (min(ends) if query.ascending else max(ends)) if ends else None
    entries = [
        item
        for part in parts
        for item in part
        if _sort_key(item) != after
        and (complete is None or (_sort_key(item) <= complete if query.ascending else _sort_key(item) >= complete))
    ]
    entries.sort(key=_sort_key, reverse=not query.ascending)
    return entries, complete


def _passing(store: Any, query: RunQuery, entries: Sequence[dict[str, Any]], *, wanted: int) -> list[Listed]:
    """The first ``wanted`` entries, in order, whose runs pass the query's checks (without checks,
    simply the first ``wanted``: what is listed is read later, for the page's runs only)."""
    if not query.checks:
        return [Listed(_sort_key(entry), entry, _as_is(query, entry)) for entry in entries[:wanted]]
    passing: list[Listed] = []
    position = 0
    while len(passing) < wanted and position < len(entries):
        chunk = [
            Listed(_sort_key(e), e, _as_is(query, e)) for e in entries[position : position + wanted - len(passing)]
        ]
        position += len(chunk)
        _read_current(store, [listed for listed in chunk if listed.record is None])
        passing.extend(listed for listed in chunk if listed.record is not None and query.passes(listed.record))
    return passing


def _as_is(query: RunQuery, entry: dict[str, Any]) -> ActionRecord | None:
    return ActionRecord.from_item(entry) if query.listed_as_is(entry) else None


def _read_current(store: Any, listed: Sequence[Listed]) -> None:
    """Fill in the current state of runs that have not ended from their items (BatchGetItem,
    eventually consistent, as the index is); a run whose item is gone keeps None."""
    if not listed:
        return
    keys = [_key(item.entry) for item in listed]
    current = store.get_actions(keys, attributes=ACTION_LISTING_ATTRIBUTES, consistent=False)
    for item, key in zip(listed, keys, strict=True):
        item.record = current.get(key)


def _key(entry: dict[str, Any]) -> ActionKey:
    return ActionKey(
        project=entry["project"]["S"], domain=entry["domain"]["S"], run=entry["run_name"]["S"], name=entry["name"]["S"]
    )


def _sort_key(entry: dict[str, Any]) -> str:
    return str(entry["run_index_sk"]["S"])
