"""The task cache end to end: Flyte's examples/caching patterns through the real SDK, the local
executor and the CacheService (functions/cache_service), with the front enforcing its authorizers,
and the service's own guarantees over HTTP (reservations, refusals) as Flyte's executor calls it:
without credentials (its cache client is a plain http.DefaultClient), through the events relay,
which adds the data-plane token."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flyteidl2.cacheservice import cacheservice_pb2 as base
from flyteidl2.cacheservice.v2 import cacheservice_pb2 as v2
from flyteidl2.core.catalog_pb2 import CatalogCacheStatus

from local_stack.executor.cache import CacheCallFailed, CacheClient
from runplane.flyte.identifiers import RunKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT
from tests.conftest import unique_name, wait_for
from tests.e2e.sdk_login import init_flyte_as_user

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_plane(stack):
    """The executor on, with the front enforcing the routes' authorizers: its cache calls, made
    without credentials, get through only by the relay."""
    with stack.authentication(), stack.data_plane():
        yield stack


@pytest.fixture
def flyte_client(data_plane):
    return init_flyte_as_user(data_plane)


@pytest.fixture
def store(data_plane):
    return ActionStore(table_name=data_plane.aws.table_name)


def root_of(store: ActionStore, run: str):
    (root,) = [r for r in store.list_actions(RunKey(PROJECT, DOMAIN, run)) if r.key.name == "a0"]
    return root


def children_of(store: ActionStore, run: str) -> list:
    return [r for r in store.list_actions(RunKey(PROJECT, DOMAIN, run)) if r.parent == "a0"]


def test_a_cached_task_runs_once_and_the_second_call_is_a_cache_hit(flyte_client, data_plane):
    from tests.e2e.sdk_tasks.cached import marked, marked_v2

    seed = int(time.time() * 1000) % 1_000_000_000  # inputs no earlier test used
    forwarded = data_plane.relay.relay.forwarded
    first = flyte_client.with_runcontext(mode="remote").run(marked, seed=seed)
    first.wait(quiet=True)
    second = flyte_client.with_runcontext(mode="remote").run(marked, seed=seed)
    second.wait(quiet=True)
    assert (first.phase, second.phase) == ("succeeded", "succeeded")
    assert second.outputs()[0] == first.outputs()[0]  # the same marker: the body ran once
    assert (
        data_plane.executor.log_file(project=PROJECT, domain=DOMAIN, run=second.name, action="a0", attempt=1).exists()
        is False
    )  # no process
    store = ActionStore(table_name=data_plane.aws.table_name)
    assert root_of(store, first.name).cache_status == CatalogCacheStatus.CACHE_POPULATED
    assert wait_for(lambda: root_of(store, second.name).cache_status == CatalogCacheStatus.CACHE_HIT, timeout=10)
    assert data_plane.relay.relay.forwarded > forwarded  # the executor's cache calls and events, relayed

    other = flyte_client.with_runcontext(mode="remote").run(marked, seed=seed + 1)  # a changed input
    other.wait(quiet=True)
    assert other.outputs()[0] != first.outputs()[0]
    version = flyte_client.with_runcontext(mode="remote").run(marked_v2, seed=seed)  # another cache version
    version.wait(quiet=True)
    assert version.outputs()[0].split()[1] != first.outputs()[0].split()[1]


def test_a_serializable_task_started_three_times_at_once_runs_once(flyte_client, store, data_plane):
    from tests.e2e.sdk_tasks.cached import pipeline_serialized

    seed = int(time.time() * 1000) % 1_000_000_000
    run = flyte_client.with_runcontext(mode="remote").run(pipeline_serialized, n=3, seed=seed)
    run.wait(quiet=True)
    assert run.phase == "succeeded", run.phase
    results = run.outputs()[0]
    assert len(results) == 3 and len(set(results)) == 1, results  # one body ran, the others reused it
    statuses = sorted(r.cache_status for r in children_of(store, run.name))
    assert statuses.count(CatalogCacheStatus.CACHE_POPULATED) == 1, statuses
    assert statuses.count(CatalogCacheStatus.CACHE_HIT) == 2, statuses
    ran = [
        r
        for r in children_of(store, run.name)
        if data_plane.executor.log_file(
            project=PROJECT, domain=DOMAIN, run=run.name, action=r.key.name, attempt=1
        ).exists()
    ]
    assert len(ran) == 1


# --- the service as Flyte's executor calls it --------------------------------------------------


@pytest.fixture
def cache(data_plane):
    """What Flyte's executor has: no credentials, the relay as its cacheServiceURL."""
    return CacheClient(data_plane.events_endpoint)


def _identifier(project: str = PROJECT) -> v2.Identifier:
    return v2.Identifier(org="testorg", project=project, domain=DOMAIN)


def _reserve(cache: CacheClient, key: str, owner: str, *, heartbeat_ms: int = 10_000) -> base.Reservation:
    request = v2.GetOrExtendReservationRequest(
        base_request=base.GetOrExtendReservationRequest(key=key, owner_id=owner), identifier=_identifier()
    )
    request.base_request.heartbeat_interval.FromMilliseconds(heartbeat_ms)
    return cache.call("GetOrExtendReservation", request, base.GetOrExtendReservationResponse).reservation


def _put(cache: CacheClient, key: str, uri: str, owner: str = "") -> None:
    metadata = base.Metadata()
    if owner:
        metadata.key_map.values["flyte.org/cache-owner"] = owner
    request = v2.PutCacheRequest(
        base_request=base.PutCacheRequest(key=key, output=base.CachedOutput(output_uri=uri, metadata=metadata)),
        identifier=_identifier(),
    )
    cache.call("Put", request, base.PutCacheResponse)


def _get(cache: CacheClient, key: str, project: str = PROJECT) -> base.GetCacheResponse:
    request = v2.GetCacheRequest(base_request=base.GetCacheRequest(key=key), identifier=_identifier(project))
    return cache.call("Get", request, base.GetCacheResponse)


def test_a_reservation_is_held_extended_released_and_taken_over_once_expired(cache):
    key = unique_name("key")
    assert _reserve(cache, key, "flyte/a").owner_id == "flyte/a"
    assert _reserve(cache, key, "flyte/b").owner_id == "flyte/a"  # held: b waits
    assert _reserve(cache, key, "flyte/a").owner_id == "flyte/a"  # the heartbeat extends it
    release = v2.ReleaseReservationRequest(
        base_request=base.ReleaseReservationRequest(key=key, owner_id="flyte/b"), identifier=_identifier()
    )
    cache.call("ReleaseReservation", release, base.ReleaseReservationResponse)  # not b's: nothing happens
    assert _reserve(cache, key, "flyte/b").owner_id == "flyte/a"
    release.base_request.owner_id = "flyte/a"
    cache.call("ReleaseReservation", release, base.ReleaseReservationResponse)
    assert _reserve(cache, key, "flyte/b").owner_id == "flyte/b"  # released: b takes it

    expiring = unique_name("key")
    assert _reserve(cache, expiring, "flyte/a", heartbeat_ms=300).owner_id == "flyte/a"  # 3 x 0.3 s
    assert _reserve(cache, expiring, "flyte/b").owner_id == "flyte/a"
    time.sleep(1.2)
    assert _reserve(cache, expiring, "flyte/b").owner_id == "flyte/b"  # expired: taken over


def test_a_put_for_a_key_reserved_by_another_owner_is_refused_and_writes_nothing(cache):
    key = unique_name("key")
    _reserve(cache, key, "flyte/a")
    with pytest.raises(CacheCallFailed) as refused:
        _put(cache, key, "s3://flyte-data/b/outputs.pb", owner="flyte/b")
    assert refused.value.code == "failed_precondition"
    with pytest.raises(CacheCallFailed) as missing:
        _get(cache, key)
    assert missing.value.code == "not_found"
    _put(cache, key, "s3://flyte-data/a/outputs.pb", owner="flyte/a")
    assert _get(cache, key).output.output_uri == "s3://flyte-data/a/outputs.pb"
    with pytest.raises(CacheCallFailed) as again:
        _put(cache, key, "s3://flyte-data/c/outputs.pb")
    assert again.value.code == "already_exists"  # no overwrite: the executor counts it as populated
    assert _get(cache, key).output.metadata.HasField("last_updated_at")


def test_entries_are_scoped_to_their_project_and_bad_requests_are_invalid_argument(cache):
    key = unique_name("key")
    _put(cache, key, "s3://flyte-data/x/outputs.pb")
    with pytest.raises(CacheCallFailed) as elsewhere:
        _get(cache, key, project="another")
    assert elsewhere.value.code == "not_found"
    for request in (
        v2.GetCacheRequest(base_request=base.GetCacheRequest(key=key)),  # no identifier
        v2.GetCacheRequest(identifier=_identifier()),  # no base request
        v2.GetCacheRequest(base_request=base.GetCacheRequest(key=""), identifier=_identifier()),
    ):
        with pytest.raises(CacheCallFailed) as bad:
            cache.call("Get", request, base.GetCacheResponse)
        assert bad.value.code == "invalid_argument"
    with pytest.raises(CacheCallFailed) as no_owner:
        _reserve(cache, key, "")
    assert no_owner.value.code == "invalid_argument"


def test_the_executors_unauthenticated_get_works_through_the_relay_only(data_plane):
    key = unique_name("key")
    with pytest.raises(CacheCallFailed) as direct:
        _get(CacheClient(data_plane.endpoint), key)  # straight to the API: no token, refused
    assert direct.value.code in ("401", "unauthenticated")
    forwarded = data_plane.relay.relay.forwarded
    relayed = CacheClient(data_plane.events_endpoint, authorization=lambda: "Bearer not-a-token")
    with pytest.raises(CacheCallFailed) as missing:
        _get(relayed, key)  # the caller's Authorization dropped, the relay's token used
    assert missing.value.code == "not_found"  # the service answered: a miss, not a refusal
    assert data_plane.relay.relay.forwarded == forwarded + 1


def test_the_routes_want_a_data_plane_token(data_plane):
    with data_plane.authentication():
        user = CacheClient(data_plane.endpoint, authorization=lambda: data_plane.user_headers()["Authorization"])
        with pytest.raises(CacheCallFailed) as refused:
            _get(user, "k")
        assert refused.value.code in ("403", "permission_denied")
        with ThreadPoolExecutor(1) as pool:  # and the executor's token passes
            allowed = CacheClient(data_plane.endpoint, authorization=data_plane.data_plane_authorization)
            with pytest.raises(CacheCallFailed) as missing:
                pool.submit(_get, allowed, unique_name("key")).result()
            assert missing.value.code == "not_found"
