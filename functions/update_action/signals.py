"""RunService/SignalEvent: resolve a paused condition action, as Flyte's runs service does by way
of its actions service (``runs/service/run_service.go`` SignalEvent, ``actions/k8s/client.go``
Signal): the payload becomes a primitive Literal of the condition's declared type, written once
on the condition's item with who sent it and when (``runplane.table.signals``); reconcile relays it
to the TaskAction's status, where the executor resolves the condition.

Refusals: a payload of another type than the condition declares is ``invalid_argument``; an action
that is not a condition, has ended or was signalled with another value is ``failed_precondition``;
an unknown one ``not_found``. A token limited to other projects is refused by the router first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flyteidl2.core import literals_pb2
from flyteidl2.core.types_pb2 import SimpleType
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from runplane.connect.caller import caller_subject
from runplane.errors import FailedPrecondition, InvalidArgument, NotFound
from runplane.flyte.validation import action_key
from runplane.table.actions import ActionStore
from runplane.table.records import ACTION_TYPE_CONDITION, utcnow
from runplane.table.signals import record_signal

# EventPayload's oneof -> the SimpleType it satisfies, and the Primitive field it becomes.
PAYLOAD_TYPES = {
    "bool_value": (SimpleType.BOOLEAN, "boolean"),
    "int_value": (SimpleType.INTEGER, "integer"),
    "float_value": (SimpleType.FLOAT, "float_value"),
    "string_value": (SimpleType.STRING, "string_value"),
}


class SignalService:
    def __init__(self, *, store: ActionStore, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    def signal_event(self, request: runs.SignalEventRequest) -> runs.SignalEventResponse:
        if not request.HasField("action_id"):
            raise InvalidArgument("action_id is required")
        key = action_key(request.action_id)
        kind = request.payload.WhichOneof("value")
        if kind is None:
            raise InvalidArgument("payload is required: a bool, int, float or string value")
        simple, field = PAYLOAD_TYPES[kind]
        record = self._store.get_action(key)
        if record is None:
            raise NotFound(f"condition action {key.name} of run {key.run} not found")
        if record.action_type != ACTION_TYPE_CONDITION:
            raise FailedPrecondition(f"action {key.name} is not a condition")
        declared = wf.ActionSpec.FromString(record.action_spec).condition.type.simple
        if declared != simple:
            raise InvalidArgument(
                f"signal value type {SimpleType.Name(simple)} does not match declared condition type "
                f"{SimpleType.Name(declared)}"
            )
        primitive = literals_pb2.Primitive(**{field: getattr(request.payload, kind)})
        value = literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=primitive))
        record_signal(
            self._store.client,
            table_name=self._store.table_name,
            key=key,
            value=value.SerializeToString(deterministic=True),
            signalled_by=caller_subject(),
            now=self._clock(),
        )
        return runs.SignalEventResponse()
