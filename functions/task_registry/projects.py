"""ProjectService: create, update, get and list projects, with Flyte's semantics
(docs/flyte-compat.md#project-service); the items are in ``runplane.table.projects``.

- CreateProject: ``project.id`` is required; an existing id is ``already_exists``. The id must be
  a valid project name (at most 63 letters, digits, '-', '_' or '.'): it becomes a label value
  and part of every run's key. Flyte accepts any id, in which no run could be created.
- UpdateProject: replaces the name, description, labels and state, as Flyte's UPDATE does (what
  the request leaves empty is cleared; the flyte SDK sends the whole project back); an unknown id
  is ``not_found``. Archiving is the state ARCHIVED, and unarchiving ACTIVE.
- GetProject: the project with the configured domains; an archived project is still found.
- ListProjects: Flyte's string filters (``eq(state,0)+contains(name,x)``) on Flyte's
  ``ProjectColumns`` and one sort key; without filters, archived projects are left out. A limit of
  0 lists every project, as in Flyte. Pages: signed keyset tokens, empty exactly when no page
  follows (``runplane.connect.listing``).

The ``org`` fields are ignored, as everywhere here.
"""

from __future__ import annotations

from flyteidl2.project import project_service_pb2 as pj
from flyteidl2.task import run_pb2

from runplane.connect.errors import already_exists, invalid_argument, not_found
from runplane.connect.listing import Column, Kind, ListSchema, SortKey, cursor, query_of
from runplane.connect.pages import PageTokens
from runplane.flyte.identifiers import validate_scope_name
from runplane.table.projects import STATE_ARCHIVED, ProjectRecord, ProjectStore

# Flyte's projects.description is VARCHAR(300): a longer one fails there (as an internal error).
MAX_DESCRIPTION_LENGTH = 300
# A project is one item; names and labels this large are a mistake, not a project.
MAX_PROJECT_BYTES = 64 * 1024


def _state(value: str) -> int:
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    for candidate in (text.upper(), "PROJECT_STATE_" + text.upper()):
        if candidate in pj.ProjectState.DESCRIPTOR.values_by_name:
            return int(pj.ProjectState.Value(candidate))
    raise invalid_argument(f"filters: {value!r} is not a valid state")


PROJECTS: ListSchema[ProjectRecord] = ListSchema(
    what="projects",
    columns={
        "identifier": Column(kind=Kind.TEXT, value=lambda p: p.id),
        "name": Column(kind=Kind.TEXT, value=lambda p: p.name),
        "description": Column(kind=Kind.TEXT, value=lambda p: p.description),
        "labels": Column(kind=Kind.TEXT, value=lambda p: None),
        "state": Column(kind=Kind.INTEGER, value=lambda p: p.state, parse=_state),
        "created_at": Column(kind=Kind.TIME, value=lambda p: p.created_at),
        "updated_at": Column(kind=Kind.TIME, value=lambda p: p.updated_at),
    },
    # Flyte leaves the order to the database; one that pages stably is by id.
    default_order=(SortKey("identifier", ascending=True),),
    tiebreakers=(SortKey("identifier", ascending=True),),
    refused={"labels": "labels are stored serialized, and Flyte compares their bytes with the text given"},
)


class ProjectService:
    def __init__(self, *, projects: ProjectStore, domains: tuple[str, ...], tokens: PageTokens) -> None:
        self._projects = projects
        self._domains = [pj.Domain(id=domain, name=domain.capitalize()) for domain in domains]
        self._tokens = tokens

    def create_project(self, request: pj.CreateProjectRequest) -> pj.CreateProjectResponse:
        record = _record(request.project)
        if not self._projects.create(record):
            raise already_exists(f"project {record.id!r} already exists")
        return pj.CreateProjectResponse()

    def update_project(self, request: pj.UpdateProjectRequest) -> pj.UpdateProjectResponse:
        record = _record(request.project)
        if not self._projects.update(record):
            raise not_found(f"project {record.id!r} not found")
        return pj.UpdateProjectResponse()

    def get_project(self, request: pj.GetProjectRequest) -> pj.GetProjectResponse:
        if not request.id:
            raise invalid_argument("id is required")
        record = self._projects.get(validate_scope_name(request.id, field="id"))
        if record is None:
            raise not_found(f"project {request.id!r} not found")
        return pj.GetProjectResponse(project=self._message(record))

    def list_projects(self, request: pj.ListProjectsRequest) -> pj.ListProjectsResponse:
        predicates = PROJECTS.string_predicates(request.filters)
        if not request.filters.strip():  # Flyte: "if no filters are supplied, hide archived projects"
            predicates = PROJECTS.string_predicates(f"ne(state,{STATE_ARCHIVED})")
        sorts = [request.sort_by] if request.HasField("sort_by") and request.sort_by.key else []
        order = PROJECTS.order(sorts, where="sort_by")
        query = query_of("projects", request)
        after = cursor(self._tokens, request.token, query=query, width=len(order))
        limit = request.limit or None  # Flyte: a limit of 0 is no limit
        rows, more, _, last = PROJECTS.page(
            self._projects.list(), predicates=predicates, order=order, limit=limit, after=after
        )
        token = self._tokens.issue(query=query, position={"after": last}) if more and last is not None else ""
        return pj.ListProjectsResponse(
            projects=pj.Projects(projects=[self._message(record) for record in rows], token=token)
        )

    def _message(self, record: ProjectRecord) -> pj.Project:
        project = pj.Project(
            id=record.id,
            name=record.name,
            description=record.description,
            state=pj.ProjectState.Name(record.state),  # a stored state is always a ProjectState
            domains=self._domains,
        )
        if record.labels:
            project.labels.CopyFrom(run_pb2.Labels.FromString(record.labels))
        return project


def _record(project: pj.Project) -> ProjectRecord:
    """The project a Create or Update asks for, checked before anything is written; its domains
    are the configured ones, whatever it says."""
    if not project.id:
        raise invalid_argument("project.id is required")
    if len(project.description) > MAX_DESCRIPTION_LENGTH:
        raise invalid_argument(f"project.description is longer than {MAX_DESCRIPTION_LENGTH} characters")
    if project.ByteSize() > MAX_PROJECT_BYTES:
        raise invalid_argument(f"project is larger than {MAX_PROJECT_BYTES} bytes")
    if project.state not in pj.ProjectState.values():
        raise invalid_argument(f"project.state {project.state} is not a ProjectState")
    return ProjectRecord(
        id=validate_scope_name(project.id, field="project.id"),
        name=project.name,
        description=project.description,
        labels=project.labels.SerializeToString(deterministic=True) if project.HasField("labels") else b"",
        state=project.state,
    )
