"""Lambda entry point of create_run: API Gateway HTTP API -> RunService/CreateRun, and
EventBridge Scheduler ticks -> the runs of triggers.

Thin by design: routing and observability here, CreateRun's semantics in ``service``, ticks in
``schedule``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flyteidl2.workflow.run_service_pb2 import CreateRunRequest, CreateRunResponse

from functions.create_run.schedule import MalformedTick, is_tick, tick_from_event
from functions.create_run.service import CreateRunService, TriggerFields
from runplane.aws.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter
from runplane.flyte.data_scope import DataScope
from runplane.ops.logs import bind_request, function_logger
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import api_settings, page_token_secret, project_settings
from runplane.table.actions import ActionStore
from runplane.table.projects import ProjectStore
from runplane.table.tasks import TaskStore

logger = function_logger("create_run")
metrics = function_metrics("create_run")  # EMF lines, written as each invocation ends

CREATE_RUN = "/flyteidl2.workflow.RunService/CreateRun"

router = ConnectRouter()


@cache
def create_run_service() -> CreateRunService:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    blobs = BlobStore()
    store = ActionStore(table_name=settings.actions_table, blobs=blobs, spec_prefix=settings.effective_storage_prefix)
    return CreateRunService(
        store=store,
        blobs=blobs,
        storage_prefix=settings.effective_storage_prefix,
        tasks=TaskStore(store),
        projects=ProjectStore(store, seeds=project_settings().seed_projects),
        data=DataScope.of(data_bucket=settings.data_bucket, storage_prefix=settings.storage_prefix),
    )


@router.unary(CREATE_RUN, CreateRunRequest)
def create_run(request: CreateRunRequest) -> CreateRunResponse:
    return create_run_service().create_run(request)


def run_tick(event: dict[str, Any]) -> dict[str, Any]:
    """A scheduled tick, invoked asynchronously by Scheduler; an exception (malformed tick, or a
    failure worth retrying) fails the invocation: Lambda retries it twice, then sends the event
    to create_run's on-failure queue (Scheduler's dead-letter queue only gets undelivered ticks)."""
    try:
        tick = tick_from_event(event, secret=page_token_secret())
    except MalformedTick as exc:
        logger.error(
            "malformed scheduler event: goes to the on-failure queue after Lambda's retries",
            extra={"reason": str(exc)},
        )
        raise
    bind_request(tick.request)  # the run's name is Flyte's deterministic one, known before it exists
    trigger = TriggerFields(name=tick.trigger_name, task_name=tick.trigger_task_name, revision=tick.trigger_revision)
    response = create_run_service().create_run(tick.request, trigger=trigger)
    run = response.run.action.id.run
    logger.info("scheduled run", extra={"run": f"{run.project}/{run.domain}/{run.name}", "trigger": tick.trigger_name})
    return {"run": run.name}


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_tick(event):
        return run_tick(event)
    return handle_http_event(router, event)
