"""cache_service: Flyte's task cache (``flyteidl2.cacheservice.v2.CacheService``) on the actions
table, for the executor: look-ups, puts, and reservations for serializable tasks."""
