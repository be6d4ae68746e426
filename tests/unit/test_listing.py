"""Flyte's list semantics in memory (runplane.connect.listing): typed filters with SQL's NULL rules, the
refused functions and fields, orders with NULLs where Postgres puts them, keyset pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flyteidl2.common import list_pb2

from runplane.connect.errors import Code
from runplane.connect.listing import Column, Kind, ListSchema, SortKey, list_page
from runplane.connect.pages import PageTokens
from tests.refusals import REFUSED, code_of

F = list_pb2.Filter.Function


@dataclass
class Row:
    name: str
    phase: int
    created: datetime
    owner: str | None = None
    active: bool = True


SCHEMA: ListSchema[Row] = ListSchema(
    what="rows",
    columns={
        "phase": Column(kind=Kind.INTEGER, value=lambda r: r.phase),
        "created_at": Column(kind=Kind.TIME, value=lambda r: r.created),
        "owner": Column(kind=Kind.TEXT, value=lambda r: r.owner),
        "active": Column(kind=Kind.BOOLEAN, value=lambda r: r.active),
        "secret": Column(kind=Kind.TEXT, value=lambda r: None),
    },
    hidden={"name": Column(kind=Kind.TEXT, value=lambda r: r.name)},
    default_order=(SortKey("phase", True), SortKey("name", False)),
    tiebreakers=(SortKey("name", True),),
    refused={"secret": "it is not stored"},
)
ROWS = [
    Row("a", 4, datetime(2026, 1, 1, tzinfo=UTC), owner="ann"),
    Row("b", 1, datetime(2026, 1, 2, tzinfo=UTC), owner="bob", active=False),
    Row("c", 4, datetime(2026, 1, 3, tzinfo=UTC)),
    Row("d", 10, datetime(2026, 1, 4, tzinfo=UTC), owner="Anna"),
]
TOKENS = PageTokens(secret=b"unit")


def names(request: list_pb2.ListRequest, rows=ROWS, scope="s") -> list[str]:
    return [r.name for r in list_page(SCHEMA, request, lambda: rows, tokens=TOKENS, scope=scope).rows]


def request(
    *filters: tuple[str, list_pb2.Filter.Function, list[str]],
    sort: Sequence[tuple[str, list_pb2.Sort.Direction]] = (),
    limit: int = 0,
):
    return list_pb2.ListRequest(
        limit=limit,
        filters=[list_pb2.Filter(field=f, function=fn, values=v) for f, fn, v in filters],
        sort_by_fields=[list_pb2.Sort(key=k, direction=d) for k, d in sort],
    )


def test_default_order_and_requested_orders_with_nulls_as_postgres():
    assert names(request()) == ["b", "c", "a", "d"]  # phase ASC, then name DESC
    asc, desc = list_pb2.Sort.ASCENDING, list_pb2.Sort.DESCENDING
    assert names(request(sort=[("owner", asc)])) == ["d", "a", "b", "c"]  # NULLS LAST ascending
    assert names(request(sort=[("owner", desc)])) == ["c", "b", "a", "d"]  # NULLS FIRST descending
    assert names(request(sort=[("created_at", desc)])) == ["d", "c", "b", "a"]
    deprecated = list_pb2.ListRequest(sort_by=list_pb2.Sort(key="phase", direction=desc))
    assert names(deprecated) == ["d", "a", "c", "b"]  # ties broken by name ASC


@pytest.mark.parametrize(
    "filters, expected",
    [
        ([("phase", F.EQUAL, ["4"])], ["c", "a"]),
        ([("phase", F.EQUAL, ["1", "0"])], ["d"]),  # the SDK's str in a repeated field: "10"
        ([("phase", F.VALUE_IN, ["1", "10"])], ["b", "d"]),
        ([("phase", F.VALUE_IN, ["4"])], ["c", "a"]),  # one value works (docs/flyte-compat.md#q12)
        ([("phase", F.GREATER_THAN_OR_EQUAL, ["4"]), ("phase", F.LESS_THAN, ["10"])], ["c", "a"]),
        ([("owner", F.NOT_EQUAL, ["bob"])], ["a", "d"]),  # NULL matches nothing, NOT_EQUAL included
        ([("owner", F.CONTAINS, ["nn"])], ["a", "d"]),
        ([("owner", F.CONTAINS_CASE_INSENSITIVE, ["ANN"])], ["a", "d"]),
        ([("owner", F.ENDS_WITH, ["b"])], ["b"]),
        ([("owner", F.NOT_ENDS_WITH, ["b"])], ["a", "d"]),
        ([("active", F.EQUAL, ["false"])], ["b"]),
        ([("created_at", F.GREATER_THAN, ["2026-01-02T00:00:00Z"])], ["c", "d"]),
        ([("created_at", F.LESS_THAN_OR_EQUAL, ["2026-01-02"])], ["b", "a"]),
    ],
)
def test_filters_mean_what_they_mean_in_flytes_sql(filters, expected):
    assert names(request(*filters)) == expected


@pytest.mark.parametrize(
    "filters, sort, named",
    [
        ([("name", F.EQUAL, ["a"])], [], "'name'"),  # not in the allowlist, even if sortable inside
        ([("nope", F.EQUAL, ["a"])], [], "'nope'"),
        ([("secret", F.EQUAL, ["a"])], [], "'secret'"),
        ([("phase", F.VALUE_NOT_IN, ["1"])], [], "VALUE_NOT_IN"),
        ([("phase", F.EXISTS, ["1"])], [], "EXISTS"),
        ([("phase", F.CONTAINS, ["1"])], [], "CONTAINS"),
        ([("phase", F.EQUAL, ["one"])], [], "'one'"),
        ([("phase", F.EQUAL, [])], [], "no values"),
        ([("owner", F.EQUAL, ["ann", "bob"])], [], "one value"),
        ([("created_at", F.EQUAL, ["yesterday"])], [], "created_at"),
        ([("active", F.EQUAL, ["maybe"])], [], "active"),
        ([], [("name", 1)], "'name'"),
        ([], [("", 1)], "''"),
    ],
)
def test_what_flyte_refuses_is_invalid_argument_naming_it(filters, sort, named):
    with pytest.raises(REFUSED) as info:
        names(request(*filters, sort=sort))
    assert code_of(info.value) is Code.INVALID_ARGUMENT and named in info.value.message


def test_pages_resume_after_the_last_row_sent_and_tokens_bind_to_the_query():
    first = list_page(SCHEMA, request(limit=3), lambda: ROWS, tokens=TOKENS, scope="s")
    assert [r.name for r in first.rows] == ["b", "c", "a"] and first.token and first.matched == 4
    # a row added before the cursor neither repeats nor shifts what follows (unlike an offset)
    grown = [Row("aa", 0, datetime(2026, 1, 5, tzinfo=UTC)), *ROWS]
    follow = list_pb2.ListRequest(limit=3, token=first.token)
    last = list_page(SCHEMA, follow, lambda: grown, tokens=TOKENS, scope="s")
    assert [r.name for r in last.rows] == ["d"] and last.token == ""
    for changed in (request(("phase", F.EQUAL, ["4"])), request()):
        changed.token = first.token
        changed.limit = 3
        scope = "other" if not changed.filters else "s"
        with pytest.raises(REFUSED) as info:
            list_page(SCHEMA, changed, lambda: ROWS, tokens=TOKENS, scope=scope)
        assert code_of(info.value) is Code.INVALID_ARGUMENT and "token" in info.value.message
    forged = list_pb2.ListRequest(limit=3, token=first.token[:-2] + "00")
    with pytest.raises(REFUSED) as info:
        list_page(SCHEMA, forged, lambda: ROWS, tokens=TOKENS, scope="s")
    assert code_of(info.value) is Code.INVALID_ARGUMENT


def test_limits_are_flytes_and_bad_input_reads_nothing():
    def unread():
        raise AssertionError("rows read for a request that is refused")

    assert len(list_page(SCHEMA, request(), lambda: ROWS * 20, tokens=TOKENS, scope="s").rows) == 50
    for bad in (request(limit=201), request(("nope", F.EQUAL, ["x"])), list_pb2.ListRequest(token="x.y")):
        with pytest.raises(REFUSED) as info:
            list_page(SCHEMA, bad, unread, tokens=TOKENS, scope="s")
        assert code_of(info.value) is Code.INVALID_ARGUMENT


def test_string_filters_as_list_projects_takes_them():
    predicates = SCHEMA.string_predicates("eq(phase, 4)+contains(owner,nn)")
    assert [r.name for r in ROWS if all(p(r) for p in predicates)] == ["a"]
    predicates = SCHEMA.string_predicates("value_in(phase,1;10)")
    assert [r.name for r in ROWS if all(p(r) for p in predicates)] == ["b", "d"]
    for bad, named in (("gt(phase,1)", "'gt'"), ("eq(nope,1)", "'nope'"), ("eq phase", "eq phase")):
        with pytest.raises(REFUSED) as info:
            SCHEMA.string_predicates(bad)
        assert code_of(info.value) is Code.INVALID_ARGUMENT and named in info.value.message
