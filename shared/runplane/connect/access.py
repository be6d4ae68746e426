"""Which projects a caller's token may touch: the optional ``projects`` claim, checked per request.

API Gateway's JWT authorizer checks the token (signature, issuer, audience, expiry) and the
route's scope before a handler runs; which projects a request names it cannot see. So the model
is: a token is project-agnostic unless it carries a ``projects`` claim (a JSON array of project
names, or one space- or comma-separated string; payload 2.0 hands an array over as
``"[a b]"``). With the claim, every project the decoded request names must be in it (any
``project`` field at any depth, a ``ProjectIdentifier``'s ``name``, a project's ``id``), and a
request that names no project at all is refused too, so a restricted token cannot list or watch
across projects. A refusal is ``permission_denied``, before the handler reads or writes anything.

Every item is keyed by project, so checking what a request names is enough: the answer of a
request for project A only ever holds project A's data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from runplane.connect.errors import Code, ConnectError
from runplane.connect.run_scope import RUN_CLAIM, check_run_scope

PROJECTS_CLAIM = "projects"
PROJECT_FIELD = "project"
# Messages that name a project in a field not called ``project``.
_PROJECT_FIELD_OF = {
    "flyteidl2.common.ProjectIdentifier": "name",
    "flyteidl2.project.Project": "id",
    "flyteidl2.project.GetProjectRequest": "id",
}
_SEPARATORS = re.compile(r"[\s,]+")


def allowed_projects(claims: Mapping[str, str]) -> frozenset[str] | None:
    """The projects the token is limited to; None for a token without the claim (any project)."""
    raw = claims.get(PROJECTS_CLAIM)
    if raw is None:
        return None
    text = str(raw).strip()
    if text.startswith("[") and text.endswith("]"):
        try:  # a JSON array (a claim passed on as JSON text) ...
            values = json.loads(text)
        except ValueError:  # ... or payload 2.0's "[a b]"
            values = text[1:-1]
        if isinstance(values, list):
            return frozenset(str(value) for value in values if str(value))
        text = str(values)
    return frozenset(value for value in _SEPARATORS.split(text) if value)


def named_projects(message: Message) -> set[str]:
    """Every project the message names, at any depth (only fields that are set)."""
    found: set[str] = set()
    _collect(message, found)
    return found


def check_project_access(message: Message, claims: Mapping[str, str]) -> None:
    """Raise ``permission_denied`` if the token's projects do not cover the request, or if a
    run-scoped token's request names anything but its run (``run_scope``)."""
    if RUN_CLAIM in claims:
        check_run_scope(message, claims)
    allowed = allowed_projects(claims)
    if allowed is None:
        return
    named = named_projects(message)
    if not named:
        raise ConnectError(Code.PERMISSION_DENIED, "this token is limited to named projects and the request names none")
    refused = sorted(named - allowed)
    if refused:
        raise ConnectError(Code.PERMISSION_DENIED, f"this token may not use project {', '.join(refused)}")


def _collect(message: Message, found: set[str]) -> None:
    special = _PROJECT_FIELD_OF.get(message.DESCRIPTOR.full_name)
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                values = [v for v in value.values() if isinstance(v, Message)]
            elif _is_repeated(field):
                values = list(value)
            else:
                values = [value]
            for nested in values:
                _collect(nested, found)
        elif field.type == FieldDescriptor.TYPE_STRING and (field.name == PROJECT_FIELD or field.name == special):
            if _is_repeated(field):
                found.update(v for v in value if v)
            elif value:
                found.add(value)


def _is_repeated(field: FieldDescriptor) -> bool:
    # protobuf 7 has only ``is_repeated``; earlier releases only ``label``
    return bool(getattr(field, "is_repeated", False) or getattr(field, "label", 0) == FieldDescriptor.LABEL_REPEATED)
