"""CacheService as Flyte's cache service answers it (``cache_service/service`` and ``manager``):
entries by key within a project and domain, the output's URI and metadata, and reservations so one
owner at a time populates a ``cache_serializable`` task's entry.

What differs, on purpose: a put may name its owner (the metadata's ``key_map`` entry
``OWNER_METADATA_KEY``, as the local executor sends it); a put by one owner while another holds a
live reservation is refused (``failed_precondition``) and writes nothing. Flyte's executor names
no owner, and its puts behave as Flyte's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flyteidl2.cacheservice import cacheservice_pb2 as base
from flyteidl2.cacheservice.v2 import cacheservice_pb2 as v2

from runplane.errors import InvalidArgument
from runplane.table.cache import CacheScope, CacheStore

OWNER_METADATA_KEY = "flyte.org/cache-owner"  # who populated the entry (a put names itself here)


def _now() -> datetime:
    return datetime.now(UTC)


class CacheService:
    def __init__(self, *, store: CacheStore, clock: Callable[[], datetime] = _now) -> None:
        self._store = store
        self._clock = clock

    def get(self, request: v2.GetCacheRequest) -> base.GetCacheResponse:
        scope = _scope(request.identifier, present=request.HasField("identifier"))
        entry = self._store.get(scope, _base(request).key)
        metadata = base.Metadata.FromString(entry.metadata) if entry.metadata else base.Metadata()
        return base.GetCacheResponse(output=base.CachedOutput(output_uri=entry.output_uri, metadata=metadata))

    def put(self, request: v2.PutCacheRequest) -> base.PutCacheResponse:
        scope = _scope(request.identifier, present=request.HasField("identifier"))
        put = _base(request)
        if not put.HasField("output"):
            raise InvalidArgument("base_request.output is required")
        if put.output.WhichOneof("output") != "output_uri":
            raise InvalidArgument("base_request.output.output_uri is required: this cache stores URIs, not literals")
        metadata = base.Metadata()
        metadata.CopyFrom(put.output.metadata)
        now = self._clock()
        if not metadata.HasField("created_at"):
            metadata.created_at.FromDatetime(now)
        metadata.last_updated_at.FromDatetime(now)
        max_age = put.overwrite.max_age.ToTimedelta().total_seconds() if put.overwrite.HasField("max_age") else None
        self._store.put(
            scope,
            put.key,
            output_uri=put.output.output_uri,
            metadata=metadata.SerializeToString(deterministic=True),
            overwrite=put.overwrite.overwrite,
            max_age_seconds=max_age,
            owner=metadata.key_map.values.get(OWNER_METADATA_KEY, ""),
        )
        return base.PutCacheResponse()

    def delete(self, request: v2.DeleteCacheRequest) -> base.DeleteCacheResponse:
        scope = _scope(request.identifier, present=request.HasField("identifier"))
        self._store.delete(scope, _base(request).key)
        return base.DeleteCacheResponse()

    def get_or_extend_reservation(
        self, request: v2.GetOrExtendReservationRequest
    ) -> base.GetOrExtendReservationResponse:
        scope = _scope(request.identifier, present=request.HasField("identifier"))
        ask = _base(request)
        heartbeat = ask.heartbeat_interval.ToTimedelta().total_seconds() if ask.HasField("heartbeat_interval") else None
        held = self._store.get_or_extend_reservation(scope, ask.key, owner=ask.owner_id, heartbeat_seconds=heartbeat)
        reservation = base.Reservation(key=ask.key, owner_id=held.owner)
        reservation.heartbeat_interval.FromMilliseconds(int(held.heartbeat_seconds * 1000))
        reservation.expires_at.FromMilliseconds(held.expires_at_ms)
        return base.GetOrExtendReservationResponse(reservation=reservation)

    def release_reservation(self, request: v2.ReleaseReservationRequest) -> base.ReleaseReservationResponse:
        scope = _scope(request.identifier, present=request.HasField("identifier"))
        release = _base(request)
        self._store.release_reservation(scope, release.key, owner=release.owner_id)
        return base.ReleaseReservationResponse()


def _base(request):  # type: ignore[no-untyped-def]  # every v2 request wraps its base request the same way
    if not request.HasField("base_request"):
        raise InvalidArgument("base_request is required")
    return request.base_request


def _scope(identifier: v2.Identifier, *, present: bool) -> CacheScope:
    """buf.validate's rules of the v2 Identifier: required, org, project and domain non-empty."""
    if not present:
        raise InvalidArgument("identifier is required")
    for field in ("org", "project", "domain"):
        value = getattr(identifier, field)
        if not value:
            raise InvalidArgument(f"identifier.{field} is required")
        if "#" in value or len(value) > 255:
            raise InvalidArgument(f"identifier.{field} {value[:64]!r} is not a valid name")
    return CacheScope(org=identifier.org, project=identifier.project, domain=identifier.domain)
