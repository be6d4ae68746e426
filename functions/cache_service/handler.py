"""Lambda entry point of cache_service: API Gateway HTTP API -> CacheService (the executor's
look-ups, puts and reservations; data-plane scope). Thin: ``service`` does the work."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from flyteidl2.cacheservice.v2 import cacheservice_pb2 as v2

from functions.cache_service.service import CacheService
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter, Procedures
from runplane.ops.logs import function_logger
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import SettingsError
from runplane.table.cache import DEFAULT_ENTRY_TTL_SECONDS, CacheStore

logger = function_logger("cache_service")
metrics = function_metrics("cache_service")  # EMF lines, written as each invocation ends

CACHE = "/flyteidl2.cacheservice.v2.CacheService"
# template.yaml: CacheEntryTtlDays; entries older than this are deleted by TTL.
ENTRY_TTL_ENV = "CACHE_ENTRY_TTL_DAYS"
SECONDS_A_DAY = 86400

router = ConnectRouter()


@cache
def cache_service() -> CacheService:
    """Built on the first request of a container and reused by every later one."""
    days = os.environ.get(ENTRY_TTL_ENV, "")
    if days and not (days.isdigit() and int(days) > 0):
        raise SettingsError(f"environment variable {ENTRY_TTL_ENV}={days!r} is invalid: a number of days")
    table = os.environ.get("ACTIONS_TABLE", "")
    if not table:
        raise SettingsError("environment variable ACTIONS_TABLE is required")
    return CacheService(
        store=CacheStore(
            table_name=table, entry_ttl_seconds=int(days) * SECONDS_A_DAY if days else DEFAULT_ENTRY_TTL_SECONDS
        )
    )


PROCEDURES: Procedures[CacheService] = {
    f"{CACHE}/Get": (v2.GetCacheRequest, CacheService.get),
    f"{CACHE}/Put": (v2.PutCacheRequest, CacheService.put),
    f"{CACHE}/Delete": (v2.DeleteCacheRequest, CacheService.delete),
    f"{CACHE}/GetOrExtendReservation": (v2.GetOrExtendReservationRequest, CacheService.get_or_extend_reservation),
    f"{CACHE}/ReleaseReservation": (v2.ReleaseReservationRequest, CacheService.release_reservation),
}
router.mount(PROCEDURES, cache_service)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
