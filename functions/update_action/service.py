"""Everything that happens to a run after CreateRun: child actions, status updates, events,
aborts. update_action is the single writer of these (docs/flyte-compat.md#abort-rpcs, #internal-rpcs, #enqueue).

Public RPCs (ActionsService, QueueService, EventsProxyService, RunService aborts) answer failures
with Connect errors. Flyte's internal RPCs (InternalRunService, called by its data plane) answer
OK and report the outcome in-band as a ``google.rpc.Status``, as Flyte does; a request that is
malformed is still a Connect error, so bad input never looks like success.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.core.catalog_pb2 import CatalogCacheStatus
from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import queue_service_pb2 as queue
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs
from google.rpc.status_pb2 import Status

from functions.update_action.actions import ChildRequest, child_record
from functions.update_action.events import REFUSED_HEADER, check_events, check_request_size, refusal_header
from runplane.connect.calls import Call
from runplane.connect.errors import (
    Code,
    ConnectError,
    already_exists,
    as_connect_error,
    failed_precondition,
    invalid_argument,
    not_found,
)
from runplane.errors import DomainError
from runplane.flyte import phases
from runplane.flyte.data_scope import DataScope, check_log_context
from runplane.flyte.identifiers import ActionKey, taskaction_name, validate_action_name, validate_run_name
from runplane.flyte.validation import action_key, known_phase, new_child_key, run_key
from runplane.ops import metrics
from runplane.table.actions import (
    ActionStore,
    ChildRefusal,
    EndResult,
    RecordTooLarge,
    StatusUpdate,
)
from runplane.table.records import ORIGIN_ENQUEUED, ORIGIN_RECORDED, EventRecord, utcnow

logger = logging.getLogger(__name__)

DEFAULT_ABORT_REASON = "User requested abort"  # Flyte's default
_CACHE_STATUSES = frozenset(CatalogCacheStatus.values())


class ActionLifecycleService:
    def __init__(
        self,
        *,
        store: ActionStore,
        clock: Callable[[], datetime] = utcnow,
        data: DataScope | None = None,
        namespace: str = "flyte",
    ) -> None:
        """``data``: where the pointers a request stores may lead (the handler always sets it;
        tests of other behaviour may leave it out); ``namespace``: the TaskAction namespace, the
        only one a recorded log context may name."""
        self._store = store
        self._clock = clock
        self._data = data
        self._namespace = namespace

    def _check_pointers(self, key: ActionKey, *, prefix: str, **uris: str) -> None:
        """Every stored pointer under the request's own project and domain, before anything is written."""
        if self._data is None:
            return
        for name, uri in uris.items():
            self._data.check_optional(uri, project=key.project, domain=key.domain, field=f"{prefix}{name}")

    # --- child actions ----------------------------------------------------------------------

    def enqueue(self, request: actions.EnqueueRequest) -> actions.EnqueueResponse:
        """ActionsService/Enqueue: a new child under a live parent of the same run."""
        action = request.action
        key = new_child_key(action.action_id, parent=action.parent_action_name, field="action.action_id")
        self._check_pointers(key, prefix="action.", input_uri=action.input_uri, run_output_base=action.run_output_base)
        child = ChildRequest(
            key=key,
            parent=action.parent_action_name,
            group=action.group,
            input_uri=action.input_uri,
            run_output_base=action.run_output_base,
            spec_kind=action.WhichOneof("spec"),
            task=action.task,
            trace=action.trace,
            condition=action.condition,
            run_spec=request.run_spec if request.HasField("run_spec") else None,
        )
        record = child_record(child, origin=ORIGIN_ENQUEUED, now=self._clock(), digest=_digest(request))
        try:
            outcome = self._store.create_child(record)
        except RecordTooLarge as exc:
            raise invalid_argument(str(exc)) from None
        if outcome.refusal is ChildRefusal.PARENT_MISSING:
            raise not_found(f"parent action {child.parent!r} not found in run {key.run_key}")
        if outcome.refusal is ChildRefusal.PARENT_ENDED:
            assert outcome.parent_phase is not None  # an ended parent comes with its phase
            raise failed_precondition(
                f"parent action {child.parent!r} already ended ({phases.phase_name(outcome.parent_phase)})"
            )
        if not outcome.created:
            assert outcome.record is not None  # not refused: the child that already existed
            if outcome.record.request_digest != record.request_digest:
                raise already_exists(f"action {key} already exists")
        return actions.EnqueueResponse()

    def enqueue_action(self, request: queue.EnqueueActionRequest) -> queue.EnqueueActionResponse:
        """QueueService/EnqueueAction (the SDK's path when it does not use ActionsService): the
        same request as an Enqueue, so the same checks, and the same duplicate detection: the
        same child again is OK whichever of the two procedures sent it."""
        try:
            self.enqueue(_as_enqueue(request))
        except (ConnectError, DomainError) as refusal:  # name the fields as this request has them
            error = as_connect_error(refusal)
            if "action.action_id" not in error.message:
                raise
            raise ConnectError(error.code, error.message.replace("action.action_id", "action_id")) from None
        return queue.EnqueueActionResponse()

    def record_action(self, request: internal.RecordActionRequest) -> internal.RecordActionResponse:
        """InternalRunService/RecordAction: idempotent create of an action already running in the
        cluster; its parent is promoted to RUNNING (attempts and cache status untouched, unlike
        docs/flyte-compat.md#q8-promotion-attempts)."""
        key = action_key(request.action_id)
        validate_action_name(key.name, field="action_id.name")
        validate_run_name(key.run)
        if request.parent:
            validate_action_name(request.parent, field="parent")
        self._check_pointers(key, prefix="", input_uri=request.input_uri)
        child = ChildRequest(
            key=key,
            parent=request.parent,
            group=request.group,
            input_uri=request.input_uri,
            run_output_base="",
            spec_kind=request.WhichOneof("spec"),
            task=request.task,
            trace=request.trace,
            condition=request.condition,
        )
        record = child_record(child, origin=ORIGIN_RECORDED, now=self._clock())

        def record_it() -> None:
            self._store.create_action(record)  # a duplicate is a no-op, as ON CONFLICT DO NOTHING
            if request.parent:
                parent = ActionKey(project=key.project, domain=key.domain, run=key.run, name=request.parent)
                self._store.update_status(parent, StatusUpdate(phase=phases.RUNNING), now=self._clock())

        return internal.RecordActionResponse(action_id=request.action_id, status=_in_band(record_it))

    # --- status -----------------------------------------------------------------------------

    def update_action_status(self, request: internal.UpdateActionStatusRequest) -> internal.UpdateActionStatusResponse:
        """InternalRunService/UpdateActionStatus; a transition the guard refuses is a silent OK."""
        key = action_key(request.action_id)
        update = _status_update(request.status, attempts=request.status.attempts or None)

        def apply() -> None:
            outcome = self._store.update_status(key, update, now=self._clock())
            if outcome.phase is None:
                raise not_found(f"action {key} not found")
            _count_status_update(applied=outcome.applied)
            if not outcome.applied:
                logger.info(
                    "status update refused by the phase guard",
                    extra={
                        "action": str(key),
                        "from": phases.phase_name(outcome.phase),
                        "to": phases.phase_name(update.phase),
                    },
                )

        return internal.UpdateActionStatusResponse(action_id=request.action_id, status=_in_band(apply))

    def update(self, request: actions.UpdateRequest) -> actions.UpdateResponse:
        """ActionsService/Update: the same guarded update, for a named attempt."""
        key = action_key(request.action_id)
        if request.attempt < 1:
            raise invalid_argument("attempt must be 1 or more")
        update = _status_update(request.status, attempts=request.attempt)
        outcome = self._store.update_status(key, update, now=self._clock())
        if outcome.phase is None:
            raise not_found(f"action {key} not found")
        _count_status_update(applied=outcome.applied)
        return actions.UpdateResponse()

    def record_action_events(self, request: internal.RecordActionEventsRequest) -> internal.RecordActionEventsResponse:
        """InternalRunService/RecordActionEvents: per-attempt history, first write wins; an internal
        RPC, so all or nothing (a malformed event is the data plane's bug)."""
        check_request_size(len(request.events), allow_empty=True)
        batch = check_events(request.events, now=self._clock())
        if batch.refused:
            raise invalid_argument(batch.refused[0].message)
        self._check_log_contexts(request.events, batch.records)

        def store() -> None:
            try:
                self._store.put_events(batch.records)
            except RecordTooLarge as exc:
                raise invalid_argument(str(exc)) from None

        return internal.RecordActionEventsResponse(status=_in_band(store))

    def record_events(
        self, request: events_proxy.RecordRequest, call: Call | None = None
    ) -> events_proxy.RecordResponse:
        """EventsProxyService/Record, as Flyte's executor batches it (``events``): each event
        checked on its own, the valid ones written (first write wins, so a redelivery is a
        no-op), the refused ones named in the ``x-flyte-refused-events`` response header, logged
        and counted. Only a malformed request as a whole is refused. Without ``call`` (a caller
        in this process), no token limits the projects."""
        call = call or Call()
        check_request_size(len(request.events))
        batch = check_events(request.events, claims=call.claims, now=self._clock())
        written = self._store.put_events(batch.records) if batch.records else 0
        metrics.count(metrics.EVENTS_RECORDED, value=written)
        if batch.refused:
            for refusal in batch.refused:
                metrics.count(metrics.EVENTS_REFUSED, Code=refusal.code)
            call.response_headers[REFUSED_HEADER] = refusal_header(batch.refused)
            logger.warning(
                "events refused",
                extra={
                    "refused": [f"{r.index} {r.code}: {r.message}" for r in batch.refused],
                    "accepted": len(batch.records),
                },
            )
        return events_proxy.RecordResponse()

    def _check_log_contexts(self, events, records: list[EventRecord]) -> None:
        """A log context may name only pods of its own action (TailLogs reads what it names)."""
        for i, (event, record) in enumerate(zip(events, records, strict=True)):
            if event.HasField("log_context"):
                check_log_context(
                    event.log_context,
                    namespace=self._namespace,
                    taskaction=taskaction_name(record.key),
                    field=f"events[{i}].log_context",
                )

    # --- aborts -----------------------------------------------------------------------------

    def abort_run(self, request: runs.AbortRunRequest) -> runs.AbortRunResponse:
        key = run_key(request.run_id).action("a0")
        self._abort(key, request.reason if request.HasField("reason") else "", what=f"run {key.run_key}")
        return runs.AbortRunResponse()

    def abort_action(self, request: runs.AbortActionRequest) -> runs.AbortActionResponse:
        key = action_key(request.action_id)
        self._abort(key, request.reason, what=f"action {key}")
        return runs.AbortActionResponse()

    def abort(self, request: actions.AbortRequest) -> actions.AbortResponse:
        key = action_key(request.action_id)
        self._abort(key, request.reason if request.HasField("reason") else "", what=f"action {key}")
        return actions.AbortResponse()

    def abort_queued_action(self, request: queue.AbortQueuedActionRequest) -> queue.AbortQueuedActionResponse:
        key = action_key(request.action_id)
        self._abort(key, request.reason if request.HasField("reason") else "", what=f"action {key}")
        return queue.AbortQueuedActionResponse()

    def abort_queued_run(self, request: queue.AbortQueuedRunRequest) -> queue.AbortQueuedRunResponse:
        key = run_key(request.run_id).action("a0")
        self._abort(key, request.reason if request.HasField("reason") else "", what=f"run {key.run_key}")
        return queue.AbortQueuedRunResponse()

    def _abort(self, key: ActionKey, reason: str, *, what: str) -> None:
        """DB-first: the action becomes ABORTED with the request recorded; the stream then lets
        reconcile delete its TaskAction. An action that already ended keeps its phase (unlike
        docs/flyte-compat.md#q6-abort-guard)."""
        result = self._store.request_abort(key, reason=reason or DEFAULT_ABORT_REASON, now=self._clock())
        if result is EndResult.MISSING:
            raise not_found(f"{what} not found")
        logger.info("abort", extra={"action": str(key), "result": result.value})


def _count_status_update(*, applied: bool) -> None:
    """StatusUpdatesApplied / StatusUpdatesRejected (the phase guard refused it; runplane.ops.metrics)."""
    metrics.count(metrics.STATUS_UPDATES_APPLIED if applied else metrics.STATUS_UPDATES_REJECTED)


def _status_update(status: wf.ActionStatus, *, attempts: int | None) -> StatusUpdate:
    phase = known_phase(status.phase, field="status.phase")
    if status.cache_status not in _CACHE_STATUSES:
        raise invalid_argument(f"status.cache_status {status.cache_status} is not a CatalogCacheStatus")
    return StatusUpdate(
        phase=phase,
        attempts=attempts,
        cache_status=status.cache_status or None,
        start_time=status.start_time.ToDatetime(tzinfo=UTC) if status.HasField("start_time") else None,
        end_time=status.end_time.ToDatetime(tzinfo=UTC) if status.HasField("end_time") else None,
    )


def _as_enqueue(request: queue.EnqueueActionRequest) -> actions.EnqueueRequest:
    """QueueService's EnqueueActionRequest as the ActionsService EnqueueRequest it stands for."""
    action = actions.Action(
        action_id=request.action_id,
        input_uri=request.input_uri,
        run_output_base=request.run_output_base,
        group=request.group,
        subject=request.subject,
    )
    if request.HasField("parent_action_name"):
        action.parent_action_name = request.parent_action_name
    spec = request.WhichOneof("spec")
    if spec is not None:
        getattr(action, spec).CopyFrom(getattr(request, spec))
    enqueue = actions.EnqueueRequest(action=action)
    if request.HasField("run_spec"):
        enqueue.run_spec.CopyFrom(request.run_spec)
    return enqueue


def _in_band(operation: Callable[[], None]) -> Status:
    """Run an internal RPC's operation; its failure travels in the response, as in Flyte."""
    try:
        operation()
    except (ConnectError, DomainError) as refusal:
        error = as_connect_error(refusal)
        if error.code is Code.INVALID_ARGUMENT:
            raise  # malformed input is the caller's bug: a Connect error, never a quiet 200
        return Status(code=error.code.rpc_number, message=error.message)
    except Exception:
        logger.exception("internal RPC failed")
        return Status(code=Code.INTERNAL.rpc_number, message="internal error")
    return Status(code=0)


def _digest(request) -> str:
    """Identity of a request for duplicate detection; org is ignored, as everywhere in Flyte."""
    canonical = type(request)()
    canonical.CopyFrom(request)
    canonical.action.action_id.run.ClearField("org")
    return hashlib.sha256(canonical.SerializeToString(deterministic=True)).hexdigest()
