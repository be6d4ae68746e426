"""What a run-scoped data-plane token may touch: its own run, checked per request.

A task pod holds no data-plane-wide credential: it gets a token for its run (docs/security.md),
minted by the control plane with the claim ``flyte_run = "<project>/<domain>/<run>"`` and the
data-plane scope only. API Gateway's authorizer checks the token; this module checks the request
against the claim before the handler reads or writes anything: every run the decoded request names
(a ``RunIdentifier`` at any depth, so an ``ActionIdentifier``'s too) must be the token's run, and
every project and domain it names (a ``project``/``domain`` pair of any message, a
``ProjectIdentifier``) the run's. A request that names neither is refused, so a run token cannot
list or watch across runs. A refusal is ``permission_denied``.

A token without the claim (the executor's, the events relay's, a person's) is not limited here;
``access`` bounds a person's projects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from runplane.aws.run_tokens import RUN_CLAIM
from runplane.connect.errors import Code, ConnectError

_RUN_IDENTIFIER = "flyteidl2.common.RunIdentifier"
_PROJECT_IDENTIFIER = "flyteidl2.common.ProjectIdentifier"
__all__ = ["RUN_CLAIM", "RunScope", "check_run_scope", "run_scope_of"]


@dataclass(frozen=True, slots=True)
class RunScope:
    project: str
    domain: str
    run: str

    def __str__(self) -> str:
        return f"{self.project}/{self.domain}/{self.run}"


def run_scope_of(claims: Mapping[str, str]) -> RunScope | None:
    """The run a token is limited to; None for a token without the claim."""
    raw = claims.get(RUN_CLAIM)
    if raw is None:
        return None
    parts = str(raw).split("/")
    if len(parts) != 3 or not all(parts):
        # a malformed claim limits the token to nothing, never to everything
        return RunScope(project="", domain="", run="")
    return RunScope(project=parts[0], domain=parts[1], run=parts[2])


def check_run_scope(message: Message, claims: Mapping[str, str]) -> None:
    """Raise ``permission_denied`` if a run-scoped token's request names anything but its run."""
    scope = run_scope_of(claims)
    if scope is None:
        return
    named: list[tuple[str, str, str]] = []
    _collect(message, named)
    if not named:
        raise ConnectError(Code.PERMISSION_DENIED, f"this token is limited to run {scope} and the request names none")
    for project, domain, run in named:
        if (project and project != scope.project) or (domain and domain != scope.domain) or (run and run != scope.run):
            what = "/".join(part or "*" for part in (project, domain, run))
            raise ConnectError(
                Code.PERMISSION_DENIED, f"this token is limited to run {scope}: the request names {what}"
            )
    if not scope.run:
        raise ConnectError(Code.PERMISSION_DENIED, "this token's run claim is malformed")


def _collect(message: Message, found: list[tuple[str, str, str]]) -> None:
    """(project, domain, run) of every message that names any of them ("" for what it leaves out)."""
    full_name = message.DESCRIPTOR.full_name
    strings: dict[str, str] = {}
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                nested = [v for v in value.values() if isinstance(v, Message)]
            elif _is_repeated(field):
                nested = list(value)
            else:
                nested = [value]
            for item in nested:
                _collect(item, found)
        elif field.type == FieldDescriptor.TYPE_STRING and not _is_repeated(field):
            strings[field.name] = value
    if full_name == _RUN_IDENTIFIER:
        found.append((strings.get("project", ""), strings.get("domain", ""), strings.get("name", "")))
    elif full_name == _PROJECT_IDENTIFIER:
        found.append((strings.get("name", ""), strings.get("domain", ""), ""))
    elif strings.get("project") or strings.get("domain"):
        found.append((strings.get("project", ""), strings.get("domain", ""), ""))


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(getattr(field, "is_repeated", False) or getattr(field, "label", 0) == FieldDescriptor.LABEL_REPEATED)
