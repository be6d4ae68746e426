"""Flyte's list semantics over rows read whole: allowlisted filters and sorts on typed columns,
SQL's NULL rules, and keyset pages behind signed tokens.

Flyte filters and sorts its lists in SQL (``runs/repository/impl``: ``filters.go``,
``sorting.go``, ``string_filters.go``). The lists here whose rows live in one partition (a run's
actions, a project's tasks and triggers, the projects) are read with one Query, and the same
request is applied to the rows in memory, with the same meaning:

- a filter names a column of the list's allowlist (any other field is ``invalid_argument``
  naming it) and one of Flyte's functions: EQUAL, NOT_EQUAL, GREATER_THAN(_OR_EQUAL),
  LESS_THAN(_OR_EQUAL), CONTAINS, VALUE_IN, ENDS_WITH, NOT_ENDS_WITH, CONTAINS_CASE_INSENSITIVE.
  VALUE_NOT_IN, EXISTS and NOT_EXISTS are refused, as Flyte refuses them. Values arrive as text
  and are read as the column's type, as Postgres casts them; a value that does not read is
  ``invalid_argument`` naming the field (in Flyte, an internal error from the database). A
  comparison with a missing value (SQL's NULL) is false, whatever the function. Filters are ANDed;
- a sort names an allowlisted column, ascending or (any other direction) descending; missing
  values sort last ascending and first descending, as in Postgres; tie-breakers make the order
  total;
- a page token names the sort key of the last row sent, signed and bound to the query
  (``runplane.connect.pages``): the next page starts right after that row, even when rows were added or
  removed in between (Flyte's offsets skip or repeat rows then).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from flyteidl2.common import list_pb2

from runplane.connect.errors import invalid_argument
from runplane.connect.pages import PageTokens, page_limit
from runplane.table.records import format_time

Row = TypeVar("Row")
Function = list_pb2.Filter.Function
# Only these read a column as text (LIKE in Flyte's SQL); on other columns they are refused.
_TEXT_FUNCTIONS = frozenset(
    {Function.CONTAINS, Function.ENDS_WITH, Function.NOT_ENDS_WITH, Function.CONTAINS_CASE_INSENSITIVE}
)
# Flyte's ConvertProtoFilters has no case for these: "unsupported filter function".
_REFUSED_FUNCTIONS = frozenset({Function.VALUE_NOT_IN, Function.EXISTS, Function.NOT_EXISTS})
# Postgres' boolean literals (case-insensitive), which Flyte's text values are cast with.
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
# Flyte's string filter language (ListProjects' ``filters``): ``eq(state,0)+contains(name,x)``.
_STRING_FILTER_SEPARATOR = "+"
_STRING_VALUE_SEPARATOR = ";"
_STRING_FUNCTIONS = {
    "eq": Function.EQUAL,
    "ne": Function.NOT_EQUAL,
    "contains": Function.CONTAINS,
    "value_in": Function.VALUE_IN,
}


class Kind(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    TIME = "time"
    BOOLEAN = "boolean"


@dataclass(frozen=True, kw_only=True)
class Column(Generic[Row]):
    kind: Kind
    value: Callable[[Row], Any]  # the row's value; None is SQL's NULL
    # Reads a filter value in place of the kind's default (enum names of integer columns).
    parse: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class SortKey:
    column: str
    ascending: bool


Predicate = Callable[[Any], bool]


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    token: str  # empty exactly when no page follows
    matched: int  # rows that passed the filters, on every page


@dataclass(frozen=True, kw_only=True)
class ListSchema(Generic[Row]):
    """The columns of one list, as Flyte's allowlist (``models.*Columns``) names them."""

    what: str  # what is listed, for messages: "actions"
    columns: Mapping[str, Column[Row]]  # the allowlist: what requests may filter and sort on
    default_order: tuple[SortKey, ...]  # the order without a requested sort
    # Appended to a requested order (those it does not name already) so the order is total.
    tiebreakers: tuple[SortKey, ...]
    hidden: Mapping[str, Column[Row]] = field(default_factory=dict)  # for the orders above only
    refused: Mapping[str, str] = field(default_factory=dict)  # allowlisted by Flyte, refused here: why

    # --- what a request asks for -----------------------------------------------------------

    def predicates(self, filters: Iterable[list_pb2.Filter]) -> list[Predicate]:
        return [self._predicate(item.field, item.function, list(item.values)) for item in filters]

    def string_predicates(self, text: str) -> list[Predicate]:
        """Flyte's string filters (``eq(field,value)+value_in(field,a;b)``), as ListProjects takes them."""
        predicates: list[Predicate] = []
        if not text.strip():
            return predicates
        for expression in text.strip().split(_STRING_FILTER_SEPARATOR):
            expression = expression.strip()
            opening, closing = expression.find("("), expression.rfind(")")
            if opening <= 0 or closing != len(expression) - 1:
                raise invalid_argument(f"filters: {expression!r} is not a filter like eq(field,value)")
            name = expression[:opening].strip().lower()
            arguments = expression[opening + 1 : closing].split(",", 1)
            if len(arguments) != 2:
                raise invalid_argument(f"filters: {expression!r} needs a field and a value")
            function = _STRING_FUNCTIONS.get(name)
            if function is None:
                raise invalid_argument(
                    f"filters: {name!r} is not a filter function; use one of {sorted(_STRING_FUNCTIONS)}"
                )
            field_name, raw = arguments[0].strip(), arguments[1].strip()
            values = [v.strip() for v in raw.split(_STRING_VALUE_SEPARATOR)] if function == Function.VALUE_IN else [raw]
            predicates.append(self._predicate(field_name, function, values, where="filters"))
        return predicates

    def order(self, sorts: Sequence[list_pb2.Sort], *, where: str = "request.sort_by") -> tuple[SortKey, ...]:
        """The requested order with the tie-breakers, or the default order."""
        if not sorts:
            return self.default_order
        keys: list[SortKey] = []
        for sort in sorts:
            self._column(sort.key, where=where)
            keys.append(SortKey(sort.key, sort.direction == list_pb2.Sort.ASCENDING))
        named = {key.column for key in keys}
        return (*keys, *(key for key in self.tiebreakers if key.column not in named))

    # --- rows ------------------------------------------------------------------------------

    def page(
        self,
        rows: Iterable[Row],
        *,
        predicates: Sequence[Predicate],
        order: tuple[SortKey, ...],
        limit: int | None,
        after: list[Any] | None,
    ) -> tuple[list[Row], bool, int, list[Any] | None]:
        """The rows after the cursor in the order, at most ``limit`` (None: all); whether more
        follow; how many matched; and the cursor after the last row returned."""
        matched = [row for row in rows if all(test(row) for test in predicates)]
        keyed = sorted(((self._key(row, order), row) for row in matched), key=_sort_key(order))
        if after is not None:
            keyed = [(key, row) for key, row in keyed if _compare(key, after, order) > 0]
        chunk = keyed if limit is None else keyed[:limit]
        more = limit is not None and len(keyed) > limit
        return [row for _, row in chunk], more, len(matched), (chunk[-1][0] if chunk else None)

    # --- helpers ---------------------------------------------------------------------------

    def _column(self, name: str, *, where: str) -> Column[Row]:
        if name in self.refused:
            raise invalid_argument(f"{where}: field {name!r} cannot be used: {self.refused[name]}")
        column = self.columns.get(name)
        if column is None:
            raise invalid_argument(
                f"{where}: {self.what} have no field {name!r}; use one of {sorted(set(self.columns) - set(self.refused))}"
            )
        return column

    def _key(self, row: Row, order: tuple[SortKey, ...]) -> list[Any]:
        return [_plain(self._any_column(key.column).value(row), self._any_column(key.column).kind) for key in order]

    def _any_column(self, name: str) -> Column[Row]:
        column = self.columns.get(name) or self.hidden.get(name)
        if column is None:  # a schema naming an order over a column it lacks: a programming error
            raise KeyError(f"{self.what}: no column {name!r} for the order")
        return column

    def _predicate(self, name: str, function: int, values: list[str], *, where: str = "request.filters") -> Predicate:
        column = self._column(name, where=where)
        label = Function.Name(function) if function in Function.values() else str(function)
        if function in _REFUSED_FUNCTIONS or function not in Function.values():
            raise invalid_argument(f"{where}: the filter function {label} is not supported (on {name!r})")
        if function in _TEXT_FUNCTIONS and column.kind is not Kind.TEXT:
            raise invalid_argument(f"{where}: {label} needs a text field; {name!r} is {column.kind.value}")
        if function != Function.VALUE_IN and len(values) > 1 and all(len(v) == 1 for v in values):
            # the flyte SDK assigns a str to the repeated field for one value: "10" -> ["1", "0"]
            values = ["".join(values)]
        if not values:
            raise invalid_argument(f"{where}: the filter on {name!r} has no values")
        if function != Function.VALUE_IN and len(values) != 1:
            raise invalid_argument(f"{where}: {label} on {name!r} takes one value, not {len(values)}")
        wanted = [_read_value(column, name, value, where=where) for value in values]
        read = column.value
        kind = column.kind

        def test(row: Any) -> bool:
            stored = _plain(read(row), kind)
            if stored is None:
                return False  # SQL: a comparison with NULL is never true
            return _applies(function, stored, wanted)

        return test


def requested_sorts(request: list_pb2.ListRequest) -> list[list_pb2.Sort]:
    """``sort_by_fields``, else the deprecated ``sort_by`` when it names a key (Flyte's GetSortByFieldsV2)."""
    if request.sort_by_fields:
        return list(request.sort_by_fields)
    if request.HasField("sort_by") and request.sort_by.key:
        return [request.sort_by]
    return []


def list_page(
    schema: ListSchema[Row],
    request: list_pb2.ListRequest,
    rows: Callable[[], Iterable[Row]],
    *,
    tokens: PageTokens,
    scope: str,
    predicates: Sequence[Predicate] = (),
) -> Page[Row]:
    """One page of a list that takes a ListRequest: its limit (Flyte's: 50 by default, over 200
    refused), filters, sorts and token, all checked before ``rows()`` reads anything. ``scope``
    names what the rows are (a run, a project), so a token of one scope is refused in another;
    ``predicates`` are the scope's own conditions, ANDed with the request's filters."""
    limit = page_limit(request.limit)
    order = schema.order(requested_sorts(request))
    tests = [*predicates, *schema.predicates(request.filters)]
    query = query_of(scope, request)
    after = cursor(tokens, request.token, query=query, width=len(order))
    chosen, more, matched, last = schema.page(rows(), predicates=tests, order=order, limit=limit, after=after)
    token = tokens.issue(query=query, position={"after": last}) if more and last is not None else ""
    return Page(rows=chosen, token=token, matched=matched)


def query_of(scope: str, request: Any) -> str:
    """What a token is bound to: the scope and the request without its token and limit."""
    canonical = type(request)()
    canonical.CopyFrom(request)
    canonical.ClearField("token")
    canonical.ClearField("limit")
    return f"{scope}|{canonical.SerializeToString(deterministic=True).hex()}"


def cursor(tokens: PageTokens, token: str, *, query: str, width: int) -> list[Any] | None:
    """The sort key a token resumes after; None for the first page."""
    position = tokens.read(token, query=query)
    if position is None:
        return None
    after = position.get("after")
    if not isinstance(after, list) or len(after) != width:
        raise invalid_argument("request.token is malformed")
    return after


def _read_value(column: Column[Any], name: str, value: str, *, where: str) -> Any:
    if column.parse is not None:
        return column.parse(value)
    text = value.strip()
    if column.kind is Kind.INTEGER:
        try:
            return int(text)
        except ValueError:
            raise invalid_argument(f"{where}: {value!r} is not a valid {name} (an integer)") from None
    if column.kind is Kind.BOOLEAN:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise invalid_argument(f"{where}: {value!r} is not a valid {name} (true or false)")
    if column.kind is Kind.TIME:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise invalid_argument(f"{where}: {name} needs an ISO-8601 time, not {value!r}") from None
        return format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return value


def _plain(value: Any, kind: Kind) -> Any:
    """A stored value in the form filters and sort keys compare: times as fixed-width UTC text,
    which sorts as time does and survives a token's JSON."""
    if value is None:
        return None
    if kind is Kind.TIME and isinstance(value, datetime):
        return format_time(value)
    return value


def _applies(function: int, stored: Any, wanted: list[Any]) -> bool:
    target = wanted[0]
    if function == Function.EQUAL:
        return bool(stored == target)
    if function == Function.NOT_EQUAL:
        return bool(stored != target)
    if function == Function.GREATER_THAN:
        return bool(stored > target)
    if function == Function.GREATER_THAN_OR_EQUAL:
        return bool(stored >= target)
    if function == Function.LESS_THAN:
        return bool(stored < target)
    if function == Function.LESS_THAN_OR_EQUAL:
        return bool(stored <= target)
    if function == Function.VALUE_IN:
        return stored in wanted
    if function == Function.CONTAINS:
        return str(target) in str(stored)
    if function == Function.ENDS_WITH:
        return str(stored).endswith(str(target))
    if function == Function.NOT_ENDS_WITH:
        return not str(stored).endswith(str(target))
    if function == Function.CONTAINS_CASE_INSENSITIVE:
        return str(target).lower() in str(stored).lower()
    raise invalid_argument(f"the filter function {function} is not supported")  # refused before a test is built


def _compare(left: list[Any], right: list[Any], order: tuple[SortKey, ...]) -> int:
    """-1, 0 or 1: ``left`` before, with or after ``right`` in the order. A missing value is
    greater than any other (Postgres: NULLS LAST ascending, NULLS FIRST descending)."""
    for a, b, key in zip(left, right, order, strict=True):
        if a == b:
            continue
        if a is None:
            result = 1
        elif b is None:
            result = -1
        else:
            try:
                result = -1 if a < b else 1
            except TypeError:  # a forged cursor of another type: compare as text, never crash
                result = -1 if json.dumps(a) < json.dumps(b) else 1
        return result if key.ascending else -result
    return 0


def _sort_key(order: tuple[SortKey, ...]) -> Callable[[tuple[list[Any], Any]], Any]:
    return functools.cmp_to_key(lambda left, right: _compare(left[0], right[0], order))
