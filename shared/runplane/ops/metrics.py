"""The control plane's own metrics, as CloudWatch embedded metric format (EMF) lines written by
Powertools Metrics: no API call, no extra IAM right; CloudWatch extracts them from the log group.

A function's handler module makes its metrics with ``function_metrics("<function>")`` and wraps its
handler with ``@metrics.flush_after`` (outside ``@logger.inject_lambda_context``). Code anywhere in
the function or the shared layer then counts with ``count("RunsCreated")`` (optionally with
dimensions, e.g. ``count("ConnectErrors", Code="not_found")``); each count goes to the function
serving the current invocation (``runplane.ops.logs.serving_function``), or to the process's only
function (as on Lambda), and is dropped when neither is known (unit tests, tools).

Counts are summed in memory under a lock (reconcile and the local stack count from several
threads; Powertools' own metric set is neither thread-safe nor per function) and written as one
EMF line per dimension set when the invocation ends, and at least every ``FLUSH_INTERVAL_SECONDS``
during long invocations (a status-mirror watch lasts up to 15 minutes). A failure to write a
metric is logged and never fails the invocation.

Import cost: Powertools' package ``__init__`` already imports its Metrics with the Logger every
handler uses (measured with ``python -X importtime``: ``aws_lambda_powertools.metrics`` ~3 ms,
inside the logger's import); the EMF provider is imported on the first flush anyway.

The metrics (namespace ``POWERTOOLS_METRICS_NAMESPACE``, dimension ``service`` = the function):

| metric | dimensions | counted by |
|---|---|---|
| ``RunsCreated`` | ``Source`` (``api``, ``schedule``) | create_run, a new run (not a duplicate) |
| ``ActionsMaterialised`` | | reconcile, a TaskAction created |
| ``ReconcileOutcomes`` | ``Outcome`` (``created``, ``already_present``, ``retried``, ``failed``, ``aborted``) | reconcile, per record |
| ``StatusUpdatesApplied`` / ``StatusUpdatesRejected`` | | update_action (UpdateActionStatus, ActionsService/Update) and mirror_status: the guarded update changed the item / the phase guard refused it |
| ``ConnectErrors`` | ``Code`` | every API function, each Connect error answered (``runplane.connect.router``) |
| ``EventsRecorded`` | | update_action (EventsProxyService/Record), events new to the table (replays not counted) |
| ``EventsRefused`` | ``Code`` (``invalid_argument``, ``permission_denied``) | update_action (EventsProxyService/Record), each event of a batch refused on its own |
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from runplane.ops.logs import serving_function

logger = logging.getLogger(__name__)

# The namespace when the environment names none (the template names one per stack).
DEFAULT_NAMESPACE = "FlyteServerless"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
# CloudWatch's standard resolution is a minute: a long invocation writes its counts at least this
# often, so a dashboard never lags a 15-minute watch.
FLUSH_INTERVAL_SECONDS = 60.0
COUNT_UNIT = "Count"

RUNS_CREATED = "RunsCreated"
ACTIONS_MATERIALISED = "ActionsMaterialised"
RECONCILE_OUTCOMES = "ReconcileOutcomes"
STATUS_UPDATES_APPLIED = "StatusUpdatesApplied"
STATUS_UPDATES_REJECTED = "StatusUpdatesRejected"
CONNECT_ERRORS = "ConnectErrors"
EVENTS_RECORDED = "EventsRecorded"
EVENTS_REFUSED = "EventsRefused"

_Key = tuple[str, tuple[tuple[str, str], ...]]  # (metric, sorted dimensions)
_HandlerT = TypeVar("_HandlerT", bound=Callable[..., Any])
_registry: dict[str, FunctionMetrics] = {}
_registry_lock = threading.Lock()


class FunctionMetrics:
    """The counts of one function, written as EMF lines with the dimension ``service``."""

    def __init__(self, service: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[_Key] = Counter()
        self._since = clock()

    def count(self, name: str, *, value: int = 1, **dimensions: str) -> None:
        with self._lock:
            self._counts[(name, tuple(sorted(dimensions.items())))] += value
            due = self._clock() - self._since >= FLUSH_INTERVAL_SECONDS
        if due:
            self.flush()

    def pending(self) -> dict[_Key, int]:
        """The counts not written yet."""
        with self._lock:
            return dict(self._counts)

    def flush(self) -> None:
        """Write what was counted since the last flush: one EMF line per dimension set."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            self._since = self._clock()
        if not counts:
            return
        groups: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
        for (name, dimensions), value in counts.items():
            groups.setdefault(dimensions, {})[name] = value
        try:
            from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

            namespace = os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE
            for dimensions, metrics in groups.items():
                # A provider of its own per line: Powertools' ``Metrics`` shares one metric set
                # between every instance in the process (all functions, in the local stack).
                provider = AmazonCloudWatchEMFProvider(namespace=namespace, service=self.service)
                for dimension, dimension_value in dimensions:
                    provider.add_dimension(name=dimension, value=dimension_value)
                for name, value in metrics.items():
                    provider.add_metric(name=name, unit=COUNT_UNIT, value=value)
                provider.flush_metrics()
        except Exception:  # metrics must never fail the invocation that counted them
            logger.exception("metrics not written", extra={"metrics": {k[0]: v for k, v in counts.items()}})

    def flush_after(self, handler: _HandlerT) -> _HandlerT:
        """Decorate a Lambda handler: the counts of each invocation are written when it ends,
        whether it returned or raised."""

        @functools.wraps(handler)
        def flushing(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return flushing  # type: ignore[return-value]  # same signature as the handler


def function_metrics(service: str) -> FunctionMetrics:
    """The metrics of one function (``service`` is its folder under ``functions/``), one per process."""
    with _registry_lock:
        if service not in _registry:
            _registry[service] = FunctionMetrics(service)
        return _registry[service]


def count(name: str, *, value: int = 1, **dimensions: str) -> None:
    """Count for the function serving the current invocation (see the module docstring)."""
    service = serving_function()
    metrics = _registry.get(service) if service else None
    if metrics is None and len(_registry) == 1:
        metrics = next(iter(_registry.values()))
    if metrics is None:
        logger.debug("metric dropped: no function to attribute it to", extra={"metric": name})
        return
    metrics.count(name, value=value, **dimensions)
