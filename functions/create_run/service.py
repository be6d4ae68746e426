"""CreateRun with Flyte's semantics (docs/flyte-compat.md#create-run), made safe for at-least-once delivery.

The steps, in order:

1. Resolve the run: ``run_id`` (validated: <= 30 chars, DNS-1035) or ``project_id`` (a generated
   name). Every check happens before anything is written.
2. Resolve the task: an inline ``task_spec``, or a ``task_id`` deployed to the task registry
   (``not_found`` otherwise). Scheduled runs arrive as ticks (``schedule``) naming their task;
   firing a trigger by name through CreateRun is not supported (``not_found``). The run's project
   must exist (ProjectService; archived ones included), as in Flyte: ``not_found`` otherwise.
3. Inline inputs go to the data bucket at a content-addressed URI (``.../inputs/<sha>/inputs.pb``),
   so a different request for the same name can never overwrite the inputs of the run that wins
   (docs/flyte-compat.md#q5-duplicate-inputs). Offloaded inputs (the SDK's path) are adopted as
   they are: nothing to write.
4. The root action ``a0`` is written QUEUED with one conditional put; the stream then
   materialises it as a TaskAction (functions/reconcile). The put is also the duplicate check,
   with no read before it: when the run exists, its condition fails and returns the stored item
   (``ALL_OLD``). The same request again returns that run with OK (its inputs, the same bytes at
   the same content-addressed key, were rewritten unchanged); a different request for the name is
   ``already_exists``, and inputs it wrote at a key of its own are deleted again.

So the SDK's CreateRun is one PutItem; with inline inputs, one S3 PutObject before it. The
project check reads the project once per container (projects are never deleted).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flyteidl2.core.identifier_pb2 import Identifier
from flyteidl2.core.tasks_pb2 import TaskTemplate
from flyteidl2.task import common_pb2, run_pb2
from flyteidl2.task.task_definition_pb2 import TaskIdentifier, TaskSpec
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow.run_service_pb2 import CreateRunRequest, CreateRunResponse

from runplane.aws.blobs import BlobStore
from runplane.connect.errors import already_exists, invalid_argument, not_found
from runplane.connect.transformers import action_identifier, run_message
from runplane.flyte import phases
from runplane.flyte.data_scope import DataScope
from runplane.flyte.identifiers import (
    ROOT_ACTION_NAME,
    RunKey,
    generate_run_name,
    validate_run_name,
    validate_scope_name,
)
from runplane.ops import metrics
from runplane.table.actions import ActionStore, RecordTooLarge
from runplane.table.projects import ProjectStore
from runplane.table.records import ActionRecord, utcnow
from runplane.table.tasks import TaskStore, task_key

INPUTS_FILE = "inputs.pb"
# SDKs from this version on understand run_start_time (Flyte's meetsRunStartTimeSDKVersion).
RUN_START_TIME_MIN_SDK = (2, 3, 6)
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_VALID_SOURCES = frozenset(wf.RunSource.values())


def request_digest(request: CreateRunRequest) -> str:
    """Identity of a request for duplicate detection: org is ignored, as everywhere in Flyte."""
    canonical = CreateRunRequest()
    canonical.CopyFrom(request)
    canonical.run_id.ClearField("org")
    return hashlib.sha256(canonical.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True)
class TriggerFields:
    name: str
    task_name: str
    revision: int


class CreateRunService:
    def __init__(
        self,
        *,
        store: ActionStore,
        blobs: BlobStore,
        storage_prefix: str,
        clock: Callable[[], datetime] = utcnow,
        generate_name: Callable[[], str] = generate_run_name,
        tasks: TaskStore | None = None,
        projects: ProjectStore | None = None,
        data: DataScope | None = None,
    ) -> None:
        """``projects``: where a run's project must exist, as in Flyte (none: any valid name);
        ``data``: where the pointers a request names may lead (by default the storage prefix)."""
        self._data = data or DataScope(roots=(storage_prefix.rstrip("/"),))
        self._store = store
        self._tasks = tasks
        self._projects = projects
        self._blobs = blobs
        self._storage_prefix = storage_prefix.rstrip("/")
        self._clock = clock
        self._generate_name = generate_name

    def create_run(self, request: CreateRunRequest, *, trigger: TriggerFields | None = None) -> CreateRunResponse:
        """``trigger`` is set for runs a schedule starts (see ``schedule``)."""
        run = self._resolve_run(request)
        task_spec = self._resolve_task(request)
        if request.source not in _VALID_SOURCES:
            raise invalid_argument(f"source {request.source} is not a RunSource")
        if self._projects is not None and not self._projects.exists(run.project):
            raise not_found(f"project {run.project!r} not found")  # Flyte's validateProjectExists
        digest = request_digest(request)

        record, wrote_inputs = self._build_root(request, run=run, task_spec=task_spec, digest=digest)
        if trigger is not None:
            record = record.with_changes(
                trigger_name=trigger.name, trigger_task_name=trigger.task_name, trigger_revision=trigger.revision
            )
        try:
            outcome = self._store.create_action(record)
        except RecordTooLarge as exc:
            self._discard_inputs(record, wrote_inputs)
            raise invalid_argument(f"run is too large to store: {exc}") from None
        if not outcome.created:  # the run exists: a duplicate, or another request for its name
            if outcome.record.inputs_uri != record.inputs_uri:
                self._discard_inputs(record, wrote_inputs)
            return self._answer_duplicate(outcome.record, digest)
        metrics.count(metrics.RUNS_CREATED, Source="schedule" if trigger is not None else "api")
        return CreateRunResponse(run=run_message(outcome.record))

    # --- resolution -------------------------------------------------------------------------

    def _resolve_run(self, request: CreateRunRequest) -> RunKey:
        which = request.WhichOneof("id")
        if which == "run_id":
            run_id = request.run_id
            return RunKey(
                project=validate_scope_name(run_id.project, field="run_id.project"),
                domain=validate_scope_name(run_id.domain, field="run_id.domain"),
                name=validate_run_name(run_id.name),
            )
        if which == "project_id":
            project = request.project_id
            return RunKey(
                project=validate_scope_name(project.name, field="project_id.name"),
                domain=validate_scope_name(project.domain, field="project_id.domain"),
                name=self._generate_name(),
            )
        raise invalid_argument("a run_id or a project_id is required")

    def _resolve_task(self, request: CreateRunRequest) -> TaskSpec:
        which = request.WhichOneof("task")
        if which == "task_spec":
            spec = request.task_spec
            template = spec.task_template
            if not template.type:
                raise invalid_argument("task_spec.task_template.type is required")
            if not template.id.name:
                raise invalid_argument("task_spec.task_template.id.name is required")
            return spec
        if which == "task_id":
            project, domain, name, version = task_key(request.task_id)
            record = (
                self._tasks.get(project=project, domain=domain, name=name, version=version) if self._tasks else None
            )
            if record is None:
                raise not_found(f"task {name} version {version} is not deployed in {project}/{domain}")
            spec = TaskSpec.FromString(record.spec)
            if not spec.task_template.id.name:  # the deployed spec names its task by the id it was deployed under
                spec.task_template.id.CopyFrom(Identifier(project=project, domain=domain, name=name, version=version))
            return spec
        if which == "trigger_name":
            trigger = request.trigger_name
            raise not_found(
                f"trigger {trigger.project}/{trigger.domain}/{trigger.name}: runs of triggers are started by their schedules"
            )
        raise invalid_argument("a task_spec is required")

    def _answer_duplicate(self, existing: ActionRecord, digest: str) -> CreateRunResponse:
        if existing.request_digest == digest:
            return CreateRunResponse(run=run_message(existing))
        raise already_exists(f"run {existing.key.run_key} already exists")

    # --- the root action --------------------------------------------------------------------

    def _build_root(
        self, request: CreateRunRequest, *, run: RunKey, task_spec: TaskSpec, digest: str
    ) -> tuple[ActionRecord, bool]:
        """The root action record, and whether inputs were written for it."""
        now = self._clock()
        run_spec = run_pb2.RunSpec()
        run_spec.CopyFrom(request.run_spec)
        if _understands_run_start_time(task_spec) and not run_spec.HasField("run_start_time"):
            if request.HasField("run_start_time"):
                run_spec.run_start_time.CopyFrom(request.run_start_time)
            else:
                run_spec.run_start_time.FromDatetime(now)
        if not run_spec.raw_data_storage.raw_data_prefix:
            run_spec.raw_data_storage.raw_data_prefix = self._storage_prefix

        run_base = (run_spec.run_base_dir or self._storage_prefix).rstrip("/")
        if run_base not in self._data.roots:  # a base of its own: within the run's project and domain
            self._data.check(run_base, project=run.project, domain=run.domain, field="run_spec.run_base_dir")
        run_dir = f"{run_base}/{run.project}/{run.domain}/{run.name}"
        input_dir, wrote_inputs = self._store_inputs(request, run=run, task_spec=task_spec, run_dir=run_dir)
        inputs_uri = f"{input_dir}/{INPUTS_FILE}"
        run_output_base = f"{run_dir}/"

        template = task_spec.task_template
        task_id = _task_identifier(template, run)
        action_spec = wf.ActionSpec(
            action_id=action_identifier(run.action(ROOT_ACTION_NAME)),
            run_spec=run_spec,
            input_uri=inputs_uri,
            run_output_base=run_output_base,
            task=wf.TaskAction(
                id=task_id,
                spec=task_spec,
            ),
        )
        record = ActionRecord(
            key=run.action(ROOT_ACTION_NAME),
            phase=phases.QUEUED,
            action_type=wf.ActionType.ACTION_TYPE_TASK,
            run_source=wf.RunSource.Name(request.source),
            attempts=1,
            task_project=task_id.project,
            task_domain=task_id.domain,
            task_name=task_id.name,
            task_version=task_id.version,
            task_type=template.type,
            task_short_name=task_spec.short_name or template.id.name,
            function_name=template.id.name,
            environment_name=task_spec.environment.name,
            action_spec=action_spec.SerializeToString(),
            run_spec=run_spec.SerializeToString(),
            inputs_uri=inputs_uri,
            run_output_base=run_output_base,
            request_digest=digest,
            created_at=now,
        )
        return record, wrote_inputs

    def _store_inputs(
        self, request: CreateRunRequest, *, run: RunKey, task_spec: TaskSpec, run_dir: str
    ) -> tuple[str, bool]:
        """Write the inputs (or adopt the offloaded ones); returns the input directory URI and
        whether this call wrote it."""
        if request.WhichOneof("input_wrapper") == "offloaded_input_data":
            uri = request.offloaded_input_data.uri.rstrip("/")
            self._data.check(uri, project=run.project, domain=run.domain, field="offloaded_input_data.uri")
            return uri, False
        inputs = common_pb2.Inputs()
        inputs.CopyFrom(request.inputs)
        _fill_default_inputs(inputs, task_spec)
        data = inputs.SerializeToString(deterministic=True)
        input_dir = f"{run_dir}/inputs/{hashlib.sha256(data).hexdigest()[:32]}"
        self._blobs.put(f"{input_dir}/{INPUTS_FILE}", data)
        return input_dir, True

    def _discard_inputs(self, record: ActionRecord, wrote_inputs: bool) -> None:
        """Inputs written for a run that was not stored are referenced by nothing: remove them."""
        if wrote_inputs:
            self._blobs.delete(record.inputs_uri)


def _fill_default_inputs(inputs: common_pb2.Inputs, task_spec: TaskSpec) -> None:
    """Add the task's declared defaults for inputs the request left out; never override one."""
    provided = {literal.name for literal in inputs.literals}
    for parameter in task_spec.default_inputs:
        if parameter.name not in provided and parameter.parameter.HasField("default"):
            inputs.literals.add(name=parameter.name, value=parameter.parameter.default)


def _understands_run_start_time(task_spec: TaskSpec) -> bool:
    match = _VERSION.search(task_spec.task_template.metadata.runtime.version)
    return match is not None and tuple(int(part) for part in match.groups()) >= RUN_START_TIME_MIN_SDK


def _task_identifier(template: TaskTemplate, run: RunKey) -> TaskIdentifier:
    return TaskIdentifier(
        project=template.id.project or run.project,
        domain=template.id.domain or run.domain,
        name=template.id.name,
        version=template.id.version,
    )
