"""Flyte's list semantics in memory (runplane.connect.listing) against SQL itself: for arbitrary
rows with NULLs, filters and sorts, every page of ``list_page``, followed token after token, is
what sqlite3 answers for the same query (Flyte runs it in Postgres: comparisons with NULL are
false, NULLs sort last ascending and first descending, LIKE is case-sensitive, ILIKE is not).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from flyteidl2.common import list_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from runplane.connect.listing import Column, Kind, ListSchema, SortKey, list_page
from runplane.connect.pages import PageTokens
from runplane.table.records import format_time

F = list_pb2.Filter.Function
START = datetime(2026, 1, 1, tzinfo=UTC)
# Few distinct values, so filters match some rows and sorts meet ties; both cases of a letter,
# so case-sensitive and case-insensitive matching differ.
LETTERS = "aAbB"
texts = st.text(alphabet=LETTERS, min_size=1, max_size=3)
counts = st.integers(min_value=-2, max_value=3)
times = st.integers(min_value=0, max_value=4).map(lambda minutes: START + timedelta(minutes=minutes))

rows = st.lists(
    st.fixed_dictionaries({"name": st.none() | texts, "count": st.none() | counts, "created": st.none() | times}),
    max_size=12,
).map(lambda drawn: [{"id": index, **row} for index, row in enumerate(drawn)])

SCHEMA: ListSchema[dict[str, Any]] = ListSchema(
    what="rows",
    columns={
        "name": Column(kind=Kind.TEXT, value=lambda row: row["name"]),
        "count": Column(kind=Kind.INTEGER, value=lambda row: row["count"]),
        "created": Column(kind=Kind.TIME, value=lambda row: row["created"]),
    },
    hidden={"id": Column(kind=Kind.INTEGER, value=lambda row: row["id"])},
    default_order=(SortKey("id", True),),
    tiebreakers=(SortKey("id", True),),
)

# function -> the SQL it means, over the column ``{c}`` and the parameter(s) ``?``
COMPARISONS = {
    F.EQUAL: "{c} = ?",
    F.NOT_EQUAL: "{c} != ?",
    F.GREATER_THAN: "{c} > ?",
    F.GREATER_THAN_OR_EQUAL: "{c} >= ?",
    F.LESS_THAN: "{c} < ?",
    F.LESS_THAN_OR_EQUAL: "{c} <= ?",
}
TEXT_MATCHES = {
    F.CONTAINS: "{c} LIKE '%' || ? || '%'",
    F.ENDS_WITH: "{c} LIKE '%' || ?",
    F.NOT_ENDS_WITH: "{c} NOT LIKE '%' || ?",
    F.CONTAINS_CASE_INSENSITIVE: "lower({c}) LIKE '%' || lower(?) || '%'",
}


def _filter(column: str, values: st.SearchStrategy[Any], text: bool) -> st.SearchStrategy[tuple]:
    functions = [*COMPARISONS, *(TEXT_MATCHES if text else ())]
    single = st.tuples(st.just(column), st.sampled_from(functions), values.map(lambda value: [value]))
    several = st.tuples(st.just(column), st.just(F.VALUE_IN), st.lists(values, min_size=1, max_size=3))
    return single | several


def _filters(*, min_size: int) -> st.SearchStrategy[list[tuple]]:
    return st.lists(
        _filter("name", texts, text=True)
        | _filter("count", counts, text=False)
        | _filter("created", times, text=False),
        min_size=min_size,
        max_size=2,
    )


sorts = st.lists(
    st.tuples(st.sampled_from(["name", "count", "created"]), st.booleans()), max_size=2, unique_by=lambda s: s[0]
)


def _as_text(value: Any) -> str:
    """A filter value as the wire carries it: text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _as_sql(value: Any) -> Any:
    return format_time(value) if isinstance(value, datetime) else value


def _sql(table: list[dict[str, Any]], chosen_filters: list[tuple], chosen_sorts: list[tuple]) -> list[int]:
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA case_sensitive_like = ON")  # Postgres' LIKE
    db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, name TEXT, count INTEGER, created TEXT)")
    db.executemany(
        "INSERT INTO rows VALUES (?, ?, ?, ?)",
        [(row["id"], row["name"], row["count"], _as_sql(row["created"])) for row in table],
    )
    where: list[str] = []
    parameters: list[Any] = []
    for column, function, values in chosen_filters:
        if function == F.VALUE_IN:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
        else:
            where.append({**COMPARISONS, **TEXT_MATCHES}[function].format(c=column))
        parameters.extend(_as_sql(value) for value in values)
    order = [f"{c} ASC NULLS LAST" if ascending else f"{c} DESC NULLS FIRST" for c, ascending in chosen_sorts]
    order.append("id ASC")  # the schema's tie-breaker
    query = f"SELECT id FROM rows {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {', '.join(order)}"
    return [identifier for (identifier,) in db.execute(query, parameters)]


def _request(chosen_filters: list[tuple], chosen_sorts: list[tuple], limit: int) -> list_pb2.ListRequest:
    request = list_pb2.ListRequest(limit=limit)
    for column, function, values in chosen_filters:
        request.filters.add(field=column, function=function, values=[_as_text(value) for value in values])
    for column, ascending in chosen_sorts:
        direction = list_pb2.Sort.ASCENDING if ascending else list_pb2.Sort.DESCENDING
        request.sort_by_fields.add(key=column, direction=direction)
    return request


def _all_pages(table: list[dict[str, Any]], request: list_pb2.ListRequest, limit: int) -> tuple[list[int], int]:
    """Every page, token after token: the rows' ids in order, and the count each page says matched."""
    tokens = PageTokens(secret=b"properties")
    listed: list[int] = []
    matched = set()
    for _ in range(len(table) + 1):  # a page per row at most, and the last one
        page = list_page(SCHEMA, request, lambda: table, tokens=tokens, scope="rows")
        assert len(page.rows) <= limit
        listed.extend(row["id"] for row in page.rows)
        matched.add(page.matched)
        if not page.token:
            break
        assert page.rows, "a token is issued only after a page with rows"
        request.token = page.token
    else:
        raise AssertionError("the pages never ended")
    assert len(matched) == 1, matched
    return listed, matched.pop()


@settings(max_examples=150, deadline=None)
@given(table=rows, chosen_filters=_filters(min_size=0), chosen_sorts=sorts, limit=st.integers(min_value=1, max_value=5))
def test_every_page_followed_to_the_end_is_what_sql_answers(table, chosen_filters, chosen_sorts, limit):
    expected = _sql(table, chosen_filters, chosen_sorts)
    listed, matched = _all_pages(table, _request(chosen_filters, chosen_sorts, limit), limit)
    assert listed == expected
    assert matched == len(expected)


@settings(max_examples=200, deadline=None)
@given(table=rows, chosen_filters=_filters(min_size=1))
def test_each_filter_keeps_exactly_the_rows_sql_keeps(table, chosen_filters):
    expected = _sql(table, chosen_filters, [])
    listed, _ = _all_pages(table, _request(chosen_filters, [], limit=200), limit=200)
    assert listed == expected
