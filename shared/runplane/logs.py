"""Every log line carries the service name of the function that wrote it, on Lambda and locally.

A function's handler module makes its Powertools logger with ``function_logger("<function>")``
and decorates its handler with ``@logger.inject_lambda_context`` as usual. Two kinds of records
then reach that logger's handler (the JSON lines with ``"service": "<function>"``):

- **the function's own modules** log through ``logging.getLogger(__name__)``, under
  ``functions.<function>``. That logger gets the function's handler and level and does not
  propagate, so its lines carry the function's service whatever else the process imported.
- **the shared layer** (``runplane``) is used by every function, so no single handler is right
  for its logger when several functions share one process, as in the local stack. It gets one
  handler, ``ToServingFunction``, which passes each record on to the handler of the function
  serving the current invocation: the function logger's ``inject_lambda_context`` sets a context
  variable for the duration of each call. A record from outside any invocation (at import time,
  or in a worker thread that did not copy the context) goes to the process's function if it has
  only one, as on Lambda, and otherwise to a handler of its own with the service ``runplane``.

This replaces Powertools' ``copy_config_to_registered_loggers``, which copied one function's
handler onto the shared top-level ``runplane`` and ``functions`` loggers: in one process the
function imported last won, and TaskService's errors were logged as reconcile's.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

LAYER_LOGGER = "runplane"
FUNCTIONS_PACKAGE = "functions"
UNATTRIBUTED_SERVICE = "runplane"

_serving: ContextVar[str | None] = ContextVar("runplane_serving_function", default=None)
_functions: dict[str, FunctionLogger] = {}  # service -> its logger, one per function in the process


class FunctionLogger(Logger):
    """A function's Powertools logger; its ``inject_lambda_context`` also marks the invocation
    as the function's, so the shared layer's records of that call carry its service."""

    def inject_lambda_context(
        self,
        lambda_handler: Callable[..., Any] | None = None,
        log_event: bool | None = None,
        correlation_id_path: str | None = None,
        clear_state: bool | None = False,
        flush_buffer_on_uncaught_error: bool = False,
    ) -> Any:
        options: dict[str, Any] = {
            "log_event": log_event,
            "correlation_id_path": correlation_id_path,
            "clear_state": clear_state,
            "flush_buffer_on_uncaught_error": flush_buffer_on_uncaught_error,
        }
        if lambda_handler is None:  # used as @logger.inject_lambda_context(...)
            return functools.partial(self.inject_lambda_context, **options)
        handler = lambda_handler

        @functools.wraps(handler)
        def serving(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            self.append_keys(name="%(name)s")  # again: clear_state dropped it
            token = _serving.set(self.service)
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                _serving.reset(token)

        return super().inject_lambda_context(serving, **options)


class ToServingFunction(logging.Handler):
    """The shared layer's handler: each record goes to the handler of the function serving the
    current invocation (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._unattributed: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        service = _serving.get()
        function = _functions.get(service) if service else None
        if function is None and len(_functions) == 1:
            function = next(iter(_functions.values()))
        if function is None:
            self._unattributed_handler().handle(record)
        elif record.levelno >= function.log_level:
            function.registered_handler.handle(record)

    def _unattributed_handler(self) -> logging.Handler:
        if self._unattributed is None:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(LambdaPowertoolsFormatter(service=UNATTRIBUTED_SERVICE))
            self._unattributed = handler
        return self._unattributed


def function_logger(service: str) -> FunctionLogger:
    """The Powertools logger of one function (``service`` is its folder under ``functions/``),
    with ``functions.<service>`` and the shared layer's records routed to it."""
    logger = FunctionLogger(service=service)
    logger.append_keys(name="%(name)s")  # which module wrote the line
    _functions[service] = logger

    own = logging.getLogger(f"{FUNCTIONS_PACKAGE}.{service}")
    own.handlers = [logger.registered_handler]
    own.setLevel(logger.log_level)
    own.propagate = False

    layer = logging.getLogger(LAYER_LOGGER)
    if not any(isinstance(handler, ToServingFunction) for handler in layer.handlers):
        layer.handlers = [ToServingFunction()]
    layer.setLevel(min(function.log_level for function in _functions.values()))
    layer.propagate = False
    return logger


def serving_function() -> str | None:
    """The function whose invocation the current context belongs to, if any."""
    return _serving.get()
