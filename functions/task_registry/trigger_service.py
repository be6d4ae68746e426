"""TriggerService: deploy, update (activate/deactivate), delete, get and list triggers; each
deployed trigger is an EventBridge schedule targeting create_run (docs/flyte-compat.md#trigger-service)."""

from __future__ import annotations

from flyteidl2.common import list_pb2
from flyteidl2.common.identifier_pb2 import TriggerIdentifier, TriggerName
from flyteidl2.task import common_pb2
from flyteidl2.trigger import trigger_definition_pb2 as td
from flyteidl2.trigger import trigger_service_pb2 as ts

from functions.task_registry.listings import TRIGGERS
from functions.task_registry.schedules import schedule_expression
from functions.task_registry.triggers import Schedules, StaleRevision, TriggerRecord, TriggerStore
from runplane.connect.errors import Code, ConnectError, invalid_argument, not_found
from runplane.connect.listing import list_page
from runplane.connect.pages import PageTokens
from runplane.flyte.identifiers import registry_key, validate_registry_name, validate_scope_name


def trigger_key(name: TriggerName, *, field: str = "name") -> tuple[str, str, str, str]:
    """(project, domain, task name, trigger name), validated."""
    return registry_key(name, field=field, names=("task_name", "name"))


class TriggerService:
    def __init__(self, *, triggers: TriggerStore, schedules: Schedules, tokens: PageTokens) -> None:
        """``tokens`` signs the page tokens of ListTriggers."""
        self._triggers = triggers
        self._schedules = schedules
        self._tokens = tokens

    def deploy_trigger(self, request: ts.DeployTriggerRequest) -> ts.DeployTriggerResponse:
        project, domain, task_name, name = trigger_key(request.name)
        automation = common_pb2.TriggerAutomationSpec()
        automation.CopyFrom(request.automation_spec)
        if not automation.HasField("schedule"):
            raise invalid_argument("automation_spec.schedule is required: only scheduled triggers are supported")
        automation.type = common_pb2.TriggerAutomationSpecType.TYPE_SCHEDULE
        expression = schedule_expression(automation)  # invalid_argument before anything is written
        if not request.spec.task_version:
            raise invalid_argument("spec.task_version is required")
        record = TriggerRecord(
            project=project,
            domain=domain,
            task_name=task_name,
            name=name,
            spec=request.spec.SerializeToString(deterministic=True),
            automation_spec=automation.SerializeToString(deterministic=True),
            task_version=request.spec.task_version,
            active=request.spec.active,
        )
        try:
            stored = self._triggers.put(record, expected_revision=request.revision or None)
        except StaleRevision as exc:
            raise ConnectError(Code.ABORTED, f"trigger {name}: {exc}; read it again and retry") from None
        self._schedules.put(
            stored, expression=expression.expression, timezone=expression.timezone, start=expression.start
        )
        return ts.DeployTriggerResponse(trigger=_details(stored))

    def get_trigger_details(self, request: ts.GetTriggerDetailsRequest) -> ts.GetTriggerDetailsResponse:
        return ts.GetTriggerDetailsResponse(trigger=_details(self._require(request.name)))

    def update_triggers(self, request: ts.UpdateTriggersRequest) -> ts.UpdateTriggersResponse:
        records = [self._require(name) for name in request.names]  # all found before any changes
        for record in records:
            if record.active != request.active:
                updated = self._triggers.set_active(record, request.active)
                automation = common_pb2.TriggerAutomationSpec.FromString(updated.automation_spec)
                expression = schedule_expression(automation)
                self._schedules.put(
                    updated, expression=expression.expression, timezone=expression.timezone, start=expression.start
                )
        return ts.UpdateTriggersResponse()

    def delete_triggers(self, request: ts.DeleteTriggersRequest) -> ts.DeleteTriggersResponse:
        records = [self._require(name) for name in request.names]
        for record in records:
            self._schedules.delete(record)  # the clock first: no tick for a trigger being deleted
            self._triggers.delete(record)
        return ts.DeleteTriggersResponse()

    def list_triggers(self, request: ts.ListTriggersRequest) -> ts.ListTriggersResponse:
        """The triggers of a project, of a task or of one task version, with Flyte's filters,
        sorts and defaults (``listings.TRIGGERS``)."""
        scope = request.WhichOneof("scope_by")
        scoped: list[list_pb2.Filter] = []
        if scope == "project_id":
            project, domain = request.project_id.name, request.project_id.domain
        elif scope in ("task_id", "task_name"):
            source = request.task_id if scope == "task_id" else request.task_name
            project, domain = source.project, source.domain
            scoped.append(_equal("task_name", validate_registry_name(source.name, field=f"{scope}.name")))
            if scope == "task_id":
                scoped.append(_equal("task_version", request.task_id.version))
        else:
            # Flyte lists every project's triggers without a scope: a read of every project's
            # partition here, refused as ListRuns refuses it (docs/flyte-compat.md#q11-org-scope).
            raise invalid_argument(
                f"scope {scope or 'none'} is not supported: list the triggers of a project_id, task_id or task_name"
            )
        project = validate_scope_name(project, field=f"{scope}.project")
        domain = validate_scope_name(domain, field=f"{scope}.domain")
        page = list_page(
            TRIGGERS,
            request.request,
            lambda: self._triggers.list(project=project, domain=domain),
            tokens=self._tokens,
            scope=f"triggers|{project}|{domain}|{[(f.field, list(f.values)) for f in scoped]}",
            predicates=TRIGGERS.predicates(scoped),
        )
        return ts.ListTriggersResponse(triggers=[_trigger(r) for r in page.rows], token=page.token)

    def _require(self, name: TriggerName) -> TriggerRecord:
        project, domain, task_name, trigger = trigger_key(name)
        record = self._triggers.get(project=project, domain=domain, task_name=task_name, name=trigger)
        if record is None:
            raise not_found(f"trigger {trigger} of task {task_name} not found in {project}/{domain}")
        return record


def _identifier(record: TriggerRecord) -> TriggerIdentifier:
    return TriggerIdentifier(
        name=TriggerName(project=record.project, domain=record.domain, name=record.name, task_name=record.task_name),
        revision=record.revision,
    )


def _equal(field: str, value: str) -> list_pb2.Filter:
    return list_pb2.Filter(function=list_pb2.Filter.EQUAL, field=field, values=[value])


def _trigger(record: TriggerRecord) -> td.Trigger:
    """Flyte's TriggerModelsToTriggers."""
    trigger = td.Trigger(
        id=_identifier(record),
        active=record.active,
        automation_spec=common_pb2.TriggerAutomationSpec.FromString(record.automation_spec),
    )
    trigger.status.deployed_at.FromDatetime(record.deployed_at or record.updated_at)
    trigger.status.updated_at.FromDatetime(record.updated_at)
    return trigger


def _details(record: TriggerRecord) -> td.TriggerDetails:
    spec = td.TriggerSpec.FromString(record.spec)
    spec.active = record.active
    return td.TriggerDetails(
        id=_identifier(record),
        spec=spec,
        automation_spec=common_pb2.TriggerAutomationSpec.FromString(record.automation_spec),
    )
