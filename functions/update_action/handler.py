"""Lambda entry point of update_action: API Gateway HTTP API -> writes to existing runs.

Thin by design: the procedures it serves, then ``service`` does the work.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import queue_service_pb2 as queue
from flyteidl2.workflow import run_service_pb2 as runs

from functions.update_action.service import ActionLifecycleService
from functions.update_action.signals import SignalService
from runplane.aws.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter, Procedures
from runplane.flyte.data_scope import DataScope
from runplane.ops.logs import function_logger
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import api_settings
from runplane.table.actions import ActionStore

logger = function_logger("update_action")
metrics = function_metrics("update_action")  # EMF lines, written as each invocation ends

ACTIONS = "/flyteidl2.actions.ActionsService"
INTERNAL = "/flyteidl2.workflow.InternalRunService"
RUNS = "/flyteidl2.workflow.RunService"
QUEUE = "/flyteidl2.workflow.QueueService"
EVENTS = "/flyteidl2.workflow.EventsProxyService"

router = ConnectRouter()


@cache
def lifecycle() -> ActionLifecycleService:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    store = ActionStore(
        table_name=settings.actions_table, blobs=BlobStore(), spec_prefix=settings.effective_storage_prefix
    )
    data = DataScope.of(data_bucket=settings.data_bucket, storage_prefix=settings.storage_prefix)
    return ActionLifecycleService(store=store, data=data, namespace=settings.namespace)


# procedure -> (request message, service method)
PROCEDURES: Procedures[ActionLifecycleService] = {
    f"{ACTIONS}/Enqueue": (actions.EnqueueRequest, ActionLifecycleService.enqueue),
    f"{ACTIONS}/Update": (actions.UpdateRequest, ActionLifecycleService.update),
    f"{ACTIONS}/Abort": (actions.AbortRequest, ActionLifecycleService.abort),
    f"{INTERNAL}/RecordAction": (internal.RecordActionRequest, ActionLifecycleService.record_action),
    f"{INTERNAL}/UpdateActionStatus": (internal.UpdateActionStatusRequest, ActionLifecycleService.update_action_status),
    f"{INTERNAL}/RecordActionEvents": (internal.RecordActionEventsRequest, ActionLifecycleService.record_action_events),
    f"{RUNS}/AbortRun": (runs.AbortRunRequest, ActionLifecycleService.abort_run),
    f"{RUNS}/AbortAction": (runs.AbortActionRequest, ActionLifecycleService.abort_action),
    f"{QUEUE}/EnqueueAction": (queue.EnqueueActionRequest, ActionLifecycleService.enqueue_action),
    f"{QUEUE}/AbortQueuedAction": (queue.AbortQueuedActionRequest, ActionLifecycleService.abort_queued_action),
    f"{QUEUE}/AbortQueuedRun": (queue.AbortQueuedRunRequest, ActionLifecycleService.abort_queued_run),
}
# Record's batches mix projects: its handler checks each event's project itself (runplane.connect.calls).
BATCH_PROCEDURES: Procedures[ActionLifecycleService] = {
    f"{EVENTS}/Record": (events_proxy.RecordRequest, ActionLifecycleService.record_events),
}
router.mount(PROCEDURES, lifecycle)
router.mount(BATCH_PROCEDURES, lifecycle, with_call=True)


@cache
def signals() -> SignalService:
    settings = api_settings()
    return SignalService(store=ActionStore(table_name=settings.actions_table, blobs=BlobStore()))


router.mount({f"{RUNS}/SignalEvent": (runs.SignalEventRequest, SignalService.signal_event)}, signals)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
