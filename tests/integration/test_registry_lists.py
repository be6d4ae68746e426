"""The registry's lists and ProjectService against moto: ListTasks and ListTriggers with and without
each filter, paged as ListRuns is; projects created, updated, archived, got and listed as in Flyte;
CreateRun in an unknown project refused, as Flyte refuses it."""

from __future__ import annotations

import pytest
from flyteidl2.common import list_pb2
from flyteidl2.common.identifier_pb2 import ProjectIdentifier
from flyteidl2.project import project_service_pb2 as pj
from flyteidl2.task import common_pb2, run_pb2
from flyteidl2.task import task_definition_pb2 as td
from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.trigger import trigger_service_pb2 as tr
from google.protobuf import json_format

from functions.create_run.service import CreateRunService
from functions.task_registry.projects import ProjectService
from functions.task_registry.service import TaskRegistry
from functions.task_registry.trigger_service import TriggerService
from functions.task_registry.triggers import Schedules, ScheduleTarget, TriggerStore
from local_stack.aws import CREATE_RUN_ARN, SCHEDULE_GROUP, SCHEDULER_DEAD_LETTER_ARN, SCHEDULER_ROLE_ARN
from runplane.aws.blobs import BlobStore
from runplane.connect.errors import Code
from runplane.connect.pages import PageTokens
from runplane.flyte.identifiers import RunKey
from runplane.table.projects import ProjectStore
from runplane.table.tasks import TaskStore
from tests.builders import DOMAIN, create_run_request, task_spec
from tests.conftest import unique_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration

TOKENS = PageTokens(secret=b"registry-lists")


@pytest.fixture
def triggers(store):
    target = ScheduleTarget(
        function_arn=CREATE_RUN_ARN,
        role_arn=SCHEDULER_ROLE_ARN,
        dead_letter_arn=SCHEDULER_DEAD_LETTER_ARN,
        group=SCHEDULE_GROUP,
    )
    return TriggerService(triggers=TriggerStore(store), schedules=Schedules(target), tokens=TOKENS)


@pytest.fixture
def registry(store, triggers):
    return TaskRegistry(
        tasks=TaskStore(store), tokens=TOKENS, triggers=lambda: triggers, trigger_items=TriggerStore(store)
    )


@pytest.fixture
def project():
    return unique_name("p")  # a project of its own: the table is shared by the session's tests


def deploy(registry, project, name, version, *, environment="env", triggers=()):
    spec = task_spec(name=name)
    spec.environment.name = environment
    spec.documentation.short_description = f"does {name}"
    task_id = td.TaskIdentifier(project=project, domain=DOMAIN, name=name, version=version)
    registry.deploy_task(ts.DeployTaskRequest(task_id=task_id, spec=spec, triggers=list(triggers)))
    return task_id


def scheduled(name, *, active=True):
    return td.TaskTrigger(
        name=name,
        spec=td.TaskTriggerSpec(active=active),
        automation_spec=common_pb2.TriggerAutomationSpec(
            type=common_pb2.TriggerAutomationSpecType.TYPE_SCHEDULE,
            schedule=common_pb2.Schedule(cron=common_pb2.Cron(expression="0 1 * * *")),
        ),
    )


def list_request(**fields) -> list_pb2.ListRequest:
    return json_format.ParseDict(fields, list_pb2.ListRequest())


def list_tasks(registry, project, **fields):
    return registry.list_tasks(
        ts.ListTasksRequest(project_id=ProjectIdentifier(name=project, domain=DOMAIN), request=list_request(**fields))
    )


def test_list_tasks_without_a_filter_is_every_task_once_newest_first(registry, project):
    for name in ("env.a", "env.b", "env.c"):
        deploy(registry, project, name, "v1")
    deploy(registry, project, "env.a", "v2")  # env.a is now the newest
    response = list_tasks(registry, project)
    assert [(t.task_id.name, t.task_id.version) for t in response.tasks] == [
        ("env.a", "v2"),
        ("env.c", "v1"),
        ("env.b", "v1"),
    ]
    assert response.metadata.total == 3 and response.metadata.filtered_total == 3
    assert response.tasks[0].metadata.short_description == "does env.a"


def test_list_tasks_with_each_filter_and_sort(registry, project):
    deploy(registry, project, "env.alpha", "v1", triggers=[scheduled("nightly")])
    deploy(registry, project, "env.beta", "v1", environment="other")
    deploy(registry, project, "env.alpha", "v2")

    def names(**fields):
        return [(t.task_id.name, t.task_id.version) for t in list_tasks(registry, project, **fields).tasks]

    equal = {"function": "EQUAL", "field": "name", "values": ["env.alpha"]}
    assert names(filters=[equal]) == [("env.alpha", "v2")]
    assert names(filters=[{"function": "CONTAINS", "field": "name", "values": ["bet"]}]) == [("env.beta", "v1")]
    # filters apply before the latest version is picked, as in Flyte's query
    assert names(filters=[{"function": "EQUAL", "field": "version", "values": ["v1"]}]) == [
        ("env.beta", "v1"),
        ("env.alpha", "v1"),
    ]
    assert names(filters=[{"function": "EQUAL", "field": "environment", "values": ["other"]}]) == [("env.beta", "v1")]
    assert names(filters=[{"function": "EQUAL", "field": "function_name", "values": ["alpha"]}]) == [
        ("env.alpha", "v2")
    ]
    # the version the trigger is attached to (filters come before the latest version is picked)
    assert names(filters=[{"function": "EQUAL", "field": "total_triggers", "values": ["1"]}]) == [("env.alpha", "v1")]
    assert names(filters=[equal, {"function": "EQUAL", "field": "version", "values": ["v1"]}]) == [("env.alpha", "v1")]
    assert names(sortByFields=[{"key": "name", "direction": "ASCENDING"}]) == [("env.alpha", "v2"), ("env.beta", "v1")]
    assert names(sortBy={"key": "created_at", "direction": "ASCENDING"}) == [("env.beta", "v1"), ("env.alpha", "v2")]
    v1 = list_tasks(registry, project, filters=[{"function": "EQUAL", "field": "version", "values": ["v1"]}])
    alpha = next(t for t in v1.tasks if t.task_id.name == "env.alpha")
    assert alpha.metadata.triggers_summary.details.name == "nightly" and alpha.metadata.triggers_summary.details.active


def test_task_pages_follow_each_other_with_signed_tokens(registry, project):
    for i in range(5):
        deploy(registry, project, f"env.t{i}", "v1")
    seen, token = [], ""
    while True:
        response = list_tasks(registry, project, limit=2, token=token)
        seen.extend(t.task_id.name for t in response.tasks)
        token = response.token
        if not token:
            break
    assert seen == [f"env.t{i}" for i in reversed(range(5))]
    first = list_tasks(registry, project, limit=2)
    with pytest.raises(REFUSED) as info:  # a token of another project's list
        list_tasks(registry, unique_name("p"), limit=2, token=first.token)
    assert code_of(info.value) is Code.INVALID_ARGUMENT and "token" in info.value.message


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"filters": [{"field": "owner", "values": ["x"]}]}, "'owner'"),
        ({"sortByFields": [{"key": "spec"}]}, "'spec'"),
        ({"token": "not.a-token"}, "request.token"),
        ({"limit": 500}, "request.limit"),
    ],
)
def test_bad_task_lists_name_the_field(registry, project, fields, named):
    with pytest.raises(REFUSED) as info:
        list_tasks(registry, project, **fields)
    assert code_of(info.value) is Code.INVALID_ARGUMENT and named in info.value.message


def test_list_tasks_needs_a_project(registry):
    with pytest.raises(REFUSED) as info:
        registry.list_tasks(ts.ListTasksRequest(org="o"))
    assert code_of(info.value) is Code.INVALID_ARGUMENT and "project_id" in info.value.message


def test_list_triggers_without_and_with_each_scope_and_filter(registry, triggers, project):
    deploy(registry, project, "env.a", "v1", triggers=[scheduled("one"), scheduled("two", active=False)])
    deploy(registry, project, "env.b", "v1", triggers=[scheduled("three")])
    deploy(registry, project, "env.a", "v2", triggers=[scheduled("four")])

    def names(**scope_and_request):
        fields = scope_and_request.pop("request", {})
        response = triggers.list_triggers(tr.ListTriggersRequest(request=list_request(**fields), **scope_and_request))
        return [t.id.name.name for t in response.triggers]

    project_id = ProjectIdentifier(name=project, domain=DOMAIN)
    # active first, then the most recently updated (Flyte's default)
    assert names(project_id=project_id) == ["four", "three", "one", "two"]
    assert names(task_name=td.TaskName(project=project, domain=DOMAIN, name="env.a")) == ["four", "one", "two"]
    assert names(task_id=td.TaskIdentifier(project=project, domain=DOMAIN, name="env.a", version="v1")) == [
        "one",
        "two",
    ]
    assert names(project_id=project_id, request={"filters": [{"field": "active", "values": ["false"]}]}) == ["two"]
    assert names(
        project_id=project_id, request={"filters": [{"field": "automation_type", "values": ["TYPE_SCHEDULE"]}]}
    ) == ["four", "three", "one", "two"]
    assert names(project_id=project_id, request={"sortByFields": [{"key": "name", "direction": "ASCENDING"}]}) == [
        "four",
        "one",
        "three",
        "two",
    ]
    first = triggers.list_triggers(tr.ListTriggersRequest(project_id=project_id, request=list_request(limit=3)))
    rest = triggers.list_triggers(
        tr.ListTriggersRequest(project_id=project_id, request=list_request(limit=3, token=first.token))
    )
    assert [t.id.name.name for t in [*first.triggers, *rest.triggers]] == ["four", "three", "one", "two"]
    assert not rest.token and first.triggers[0].status.HasField("deployed_at")
    for bad in ({"filters": [{"field": "spec", "values": ["x"]}]}, {"filters": [{"field": "active", "values": ["?"]}]}):
        with pytest.raises(REFUSED) as info:
            names(project_id=project_id, request=bad)
        assert code_of(info.value) is Code.INVALID_ARGUMENT


def test_list_triggers_needs_a_scope(triggers):
    with pytest.raises(REFUSED) as info:
        triggers.list_triggers(tr.ListTriggersRequest(org="o"))
    assert code_of(info.value) is Code.INVALID_ARGUMENT


# --- projects ----------------------------------------------------------------------------------


@pytest.fixture
def projects(store):
    return ProjectService(
        projects=ProjectStore(store, seeds=("flytesnacks",)), domains=("development", "production"), tokens=TOKENS
    )


def test_a_project_is_created_updated_archived_and_found_as_in_flyte(projects, project):
    labels = run_pb2.Labels(values={"team": "ml"})
    projects.create_project(pj.CreateProjectRequest(project=pj.Project(id=project, name="Mine", labels=labels)))
    with pytest.raises(REFUSED) as info:
        projects.create_project(pj.CreateProjectRequest(project=pj.Project(id=project, name="Again")))
    assert code_of(info.value) is Code.ALREADY_EXISTS

    got = projects.get_project(pj.GetProjectRequest(id=project)).project
    assert got.name == "Mine" and got.labels.values["team"] == "ml"
    assert [d.id for d in got.domains] == ["development", "production"] and got.domains[0].name == "Development"
    assert got.state == pj.PROJECT_STATE_ACTIVE

    archived = pj.Project()
    archived.CopyFrom(got)
    archived.state = pj.PROJECT_STATE_ARCHIVED
    archived.ClearField("labels")  # UpdateProject replaces: what the request leaves out is cleared
    projects.update_project(pj.UpdateProjectRequest(project=archived))
    got = projects.get_project(pj.GetProjectRequest(id=project)).project  # archived projects are still found
    assert got.state == pj.PROJECT_STATE_ARCHIVED and not got.HasField("labels") and got.name == "Mine"

    def listed(filters=""):
        return [p.id for p in projects.list_projects(pj.ListProjectsRequest(filters=filters)).projects.projects]

    assert project not in listed() and "flytesnacks" in listed()  # no filters: archived ones hidden
    assert project in listed(f"eq(state, {pj.PROJECT_STATE_ARCHIVED})")  # what `--archived` sends
    assert project not in listed(f"eq(state, {pj.PROJECT_STATE_ACTIVE})")
    assert listed(f"eq(identifier,{project})") == [project]

    with pytest.raises(REFUSED) as info:
        projects.update_project(pj.UpdateProjectRequest(project=pj.Project(id=unique_name("p"), name="x")))
    assert code_of(info.value) is Code.NOT_FOUND


def test_projects_page_and_refuse_bad_input(projects):
    made = sorted(unique_name("pg") for _ in range(3))
    for name in made:
        projects.create_project(pj.CreateProjectRequest(project=pj.Project(id=name, name=name)))
    mine = f"contains(identifier,{made[0][:2]})+value_in(identifier,{';'.join(made)})"
    sort = list_pb2.Sort(key="identifier", direction=list_pb2.Sort.DESCENDING)
    first = projects.list_projects(pj.ListProjectsRequest(limit=2, filters=mine, sort_by=sort)).projects
    rest = projects.list_projects(
        pj.ListProjectsRequest(limit=2, filters=mine, sort_by=sort, token=first.token)
    ).projects
    assert [p.id for p in [*first.projects, *rest.projects]] == list(reversed(made)) and not rest.token
    bad = [
        pj.CreateProjectRequest(project=pj.Project(name="no id")),
        pj.CreateProjectRequest(project=pj.Project(id="bad id!")),
        pj.CreateProjectRequest(project=pj.Project(id=unique_name("p"), description="x" * 301)),
    ]
    for request in bad:
        with pytest.raises(REFUSED) as info:
            projects.create_project(request)
        assert code_of(info.value) is Code.INVALID_ARGUMENT
    for request in (
        pj.ListProjectsRequest(filters="eq(nope,1)"),
        pj.ListProjectsRequest(filters="gt(state,1)"),
        pj.ListProjectsRequest(sort_by=list_pb2.Sort(key="domains")),
        pj.ListProjectsRequest(token="forged.token"),
        pj.ListProjectsRequest(filters="eq(labels,x)"),
    ):
        with pytest.raises(REFUSED) as info:
            projects.list_projects(request)
        assert code_of(info.value) is Code.INVALID_ARGUMENT
    with pytest.raises(REFUSED) as info:
        projects.get_project(pj.GetProjectRequest(id=unique_name("p")))
    assert code_of(info.value) is Code.NOT_FOUND


def test_create_run_needs_the_project_to_exist_as_in_flyte(store, aws, projects, project):
    creator = CreateRunService(
        store=store,
        blobs=BlobStore(),
        storage_prefix=f"s3://{aws.bucket}",
        projects=ProjectStore(store, seeds=("flytesnacks",)),
    )
    run = unique_name()
    with pytest.raises(REFUSED) as info:
        creator.create_run(create_run_request(run, project=project))
    assert code_of(info.value) is Code.NOT_FOUND and project in info.value.message
    assert store.get_action(_root(project, run)) is None  # nothing written

    projects.create_project(pj.CreateProjectRequest(project=pj.Project(id=project, name=project)))
    assert creator.create_run(create_run_request(run, project=project)).run.action.id.run.project == project
    assert creator.create_run(create_run_request(unique_name())).run.action.id.run.project == "flytesnacks"  # a seed


def _root(project, run):
    return RunKey(project, DOMAIN, run).action("a0")
