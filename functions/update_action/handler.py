"""Lambda entry point of update_action: API Gateway HTTP API -> writes to existing runs.

Child actions, guarded status updates and aborts arrive with the action lifecycle; until then
every procedure routed here answers the Connect code ``unimplemented``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter

logger = Logger(service="update_action")

router = ConnectRouter()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
