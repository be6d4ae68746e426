"""Each function's log lines carry its own service name when several functions share a process
(the local stack imports every handler into one), whichever handler was imported last."""

from __future__ import annotations

import importlib
import io
import json
import logging
from collections.abc import Iterator

import pytest

from local_stack.lambda_runtime import LambdaContext
from runplane.ops import logs

# reconcile last: before runplane.ops.logs, the last handler imported gave its name to every shared line
FUNCTIONS = ("task_registry", "create_run", "reconcile")


@pytest.fixture
def handlers() -> dict[str, object]:
    return {name: importlib.import_module(f"functions.{name}.handler") for name in FUNCTIONS}


@pytest.fixture
def lines(handlers: dict[str, object]) -> Iterator[io.StringIO]:
    """Every function's log output, and the unattributed handler's, into one buffer."""
    buffer = io.StringIO()
    streams = [module.logger.registered_handler for module in handlers.values()]  # type: ignore[attr-defined]
    layer = next(h for h in logging.getLogger(logs.LAYER_LOGGER).handlers if isinstance(h, logs.ToServingFunction))
    streams.append(layer._unattributed_handler())
    previous = [handler.setStream(buffer) for handler in streams]
    yield buffer
    for handler, stream in zip(streams, previous, strict=True):
        handler.setStream(stream)


def records(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_the_shared_layers_lines_carry_the_service_of_the_invoked_function(handlers, lines):
    # A malformed gateway event: runplane.connect.apigateway logs it, inside the function's invocation.
    for name in ("task_registry", "create_run"):
        response = handlers[name].handler({"requestContext": "not an object"}, LambdaContext(function_name=name))
        assert response["statusCode"] == 500

    logged = [r for r in records(lines) if r["message"] == "malformed API Gateway event"]
    assert [(r["service"], r["name"]) for r in logged] == [
        ("task_registry", "runplane.connect.apigateway"),
        ("create_run", "runplane.connect.apigateway"),
    ]
    assert [r["function_name"] for r in logged] == ["task_registry", "create_run"]  # the invocation's context too


def test_a_functions_own_modules_log_under_its_service(handlers, lines):
    logging.getLogger("functions.task_registry.triggers").warning("from the task registry")
    logging.getLogger("functions.reconcile.reconciler").warning("from reconcile")

    assert {r["message"]: r["service"] for r in records(lines)} == {
        "from the task registry": "task_registry",
        "from reconcile": "reconcile",
    }


def test_a_shared_line_outside_any_invocation_is_not_given_to_some_function(handlers, lines):
    assert logs.serving_function() is None
    logging.getLogger("runplane.table.actions").warning("at import time")

    assert [(r["message"], r["service"]) for r in records(lines)] == [("at import time", logs.UNATTRIBUTED_SERVICE)]


def test_the_invocation_mark_is_removed_after_the_call_even_when_it_raises(handlers):
    @handlers["reconcile"].logger.inject_lambda_context
    def failing(event, context):
        assert logs.serving_function() == "reconcile"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing({}, LambdaContext(function_name="reconcile"))
    assert logs.serving_function() is None
