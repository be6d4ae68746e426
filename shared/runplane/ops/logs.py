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

**What a line is about.** ``inject_lambda_context`` puts the invocation's request id
(``function_request_id``) on every line. ``bind(run=..., action=...)`` adds the run
(``project/domain/run``) and the action (``project/domain/run/action``) the code is working on
to every later line *of the current thread* (Powertools' thread-safe keys: reconcile handles
records on worker threads, the local stack serves invocations on threads), until the next
``bind`` or the next invocation, which starts with none. The Connect router binds the identifiers
of each decoded request (``bind_request``); reconcile binds each record, the status mirror each
resource.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import (
    LambdaPowertoolsFormatter,
    clear_context_keys,
    set_context_keys,
)

if TYPE_CHECKING:
    from google.protobuf.message import Message

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
            clear_context_keys()  # no run or action of an earlier invocation on this thread
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


RUN_KEY = "run"  # project/domain/run
ACTION_KEY = "action"  # project/domain/run/action
# flyteidl2's identifier messages, by full name: a request's run and action are read from them.
_RUN_IDENTIFIER = "flyteidl2.common.RunIdentifier"
_ACTION_IDENTIFIER = "flyteidl2.common.ActionIdentifier"
# How deep bind_request looks for an identifier: the request's fields and theirs (e.g.
# EnqueueRequest.action.action_id); deeper ones are specs, not what the request is about.
_REQUEST_KEY_DEPTH = 2


def bind(*, run: str | None = None, action: str | None = None) -> None:
    """The run and action the current thread works on, on each of its later lines (replacing any
    bound before; None leaves the key off)."""
    clear_context_keys()
    # Any: Powertools annotates each keyword of set_context_keys as a dict
    keys: dict[str, Any] = {name: value for name, value in ((RUN_KEY, run), (ACTION_KEY, action)) if value}
    if keys:
        set_context_keys(**keys)


def bind_request(message: Message) -> None:
    """Bind the run and action a Connect request names (its first RunIdentifier or
    ActionIdentifier, at most two fields deep); a request about neither binds nothing."""
    bind(**_identifier_keys(message, depth=_REQUEST_KEY_DEPTH))


def _identifier_keys(message: Message, *, depth: int) -> dict[str, str]:
    name = message.DESCRIPTOR.full_name
    if name == _RUN_IDENTIFIER:
        return {RUN_KEY: _run_path(message)}
    if name == _ACTION_IDENTIFIER:
        run = _run_path(getattr(message, "run"))  # noqa: B009 - a protobuf field, typed as Any here
        return {RUN_KEY: run, ACTION_KEY: f"{run}/{getattr(message, 'name')}"}  # noqa: B009
    if depth == 0:
        return {}
    for field, value in message.ListFields():
        if field.message_type is not None and not _is_repeated(field):
            found = _identifier_keys(value, depth=depth - 1)
            if found:
                return found
    return {}


def _run_path(run: Any) -> str:
    return f"{run.project}/{run.domain}/{run.name}"


def _is_repeated(field: Any) -> bool:
    return bool(getattr(field, "is_repeated", False) or getattr(field, "label", 0) == field.LABEL_REPEATED)
