"""Lambda entry point of create_run: API Gateway HTTP API -> RunService/CreateRun.

Thin by design: routing and observability here, CreateRun's semantics in ``service``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from flyteidl2.workflow.run_service_pb2 import CreateRunRequest, CreateRunResponse

from functions.create_run.service import CreateRunService
from runplane.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter
from runplane.settings import api_settings
from runplane.store import ActionStore
from runplane.tasks import TaskStore

logger = Logger(service="create_run")
copy_config_to_registered_loggers(source_logger=logger, include={"runplane", "functions"})

CREATE_RUN = "/flyteidl2.workflow.RunService/CreateRun"

router = ConnectRouter()


@cache
def create_run_service() -> CreateRunService:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    blobs = BlobStore()
    store = ActionStore(table_name=settings.actions_table, blobs=blobs, spec_prefix=settings.effective_storage_prefix)
    return CreateRunService(
        store=store, blobs=blobs, storage_prefix=settings.effective_storage_prefix, tasks=TaskStore(store)
    )


@router.unary(CREATE_RUN, CreateRunRequest)
def create_run(request: CreateRunRequest) -> CreateRunResponse:
    return create_run_service().create_run(request)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
