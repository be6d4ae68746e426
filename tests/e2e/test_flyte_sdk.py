"""Flyte's own SDK (the `flyte` package from PyPI, unmodified) against the local stack: it fetches a
run created through the API, lists runs, and waits for a run the data plane drives to SUCCEEDED.

Every test runs twice: over plain HTTP with the front's authorizers off (``insecure``), and with
them enforced (``authenticated``): the SDK over TLS with client credentials, discovering the local
identity provider through AuthMetadataService and fetching its token as it does against Flyte.
What the tests post themselves for the data plane carries a data-plane token.
"""

from __future__ import annotations

import threading
import time

import pytest
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf

from runplane.flyte import phases
from tests.builders import DOMAIN, PROJECT, action_id, create_run_request, resource_name
from tests.conftest import unique_name
from tests.e2e.sdk_login import init_flyte_as_user
from tests.e2e.test_create_run_http import post_proto_gzip

pytestmark = pytest.mark.e2e

UPDATE_STATUS = "/flyteidl2.workflow.InternalRunService/UpdateActionStatus"


@pytest.fixture(params=["insecure", "authenticated"])
def flyte_client(stack, request):
    import flyte

    if request.param == "insecure":
        flyte.init(endpoint=stack.endpoint, insecure=True, org="testorg", project=PROJECT, domain=DOMAIN)
        yield flyte
        return
    with stack.authentication():
        yield init_flyte_as_user(stack)


def test_the_sdk_gets_lists_and_waits_for_a_run(stack, flyte_client):
    import flyte.remote

    name = unique_name()
    assert post_proto_gzip(stack, create_run_request(name), headers=stack.user_headers())[0] == 200

    run = flyte.remote.Run.get(name=name)
    assert run.name == name and run.phase == "queued"

    listed = [r.name for r in flyte.remote.Run.listall(limit=500)]
    assert name in listed

    def data_plane():  # what Flyte's executor reports, through the control plane's internal API
        for phase in (phases.RUNNING, phases.SUCCEEDED):
            time.sleep(1.0)
            request = internal.UpdateActionStatusRequest(
                action_id=action_id(name, "a0"), status=wf.ActionStatus(phase=phase, attempts=1)
            )
            assert post_proto_gzip(stack, request, UPDATE_STATUS, headers=stack.data_plane_headers())[0] == 200

    driver = threading.Thread(target=data_plane)
    driver.start()
    run.wait(quiet=True)
    driver.join()
    assert run.phase == "succeeded" and run.done()
    assert flyte.remote.Run.get(name=name).phase == "succeeded"


def test_the_sdk_runs_a_task_remotely_and_reads_its_outputs(stack, flyte_client, get_taskaction):
    from flyteidl2.core import literals_pb2
    from flyteidl2.task import common_pb2

    from runplane.aws.blobs import BlobStore
    from runplane.flyte.output_paths import action_output_path
    from tests.conftest import wait_for
    from tests.e2e.sdk_tasks.hello import double

    run = flyte_client.with_runcontext(mode="remote").run(double, x=21)
    resource = wait_for(lambda: get_taskaction(resource_name(run.name)), timeout=20, what="the run's TaskAction")
    assert resource["spec"]["taskType"] and resource["spec"]["inputUri"].startswith("s3://")

    # play the data plane: the executor writes the outputs where Flyte's layout puts them ...
    outputs = common_pb2.Outputs(
        literals=[
            common_pb2.NamedLiteral(
                name="o0",
                value=literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=42))),
            )
        ]
    )
    path = action_output_path(
        namespace="flyte",
        project=PROJECT,
        domain=DOMAIN,
        run=run.name,
        action="a0",
        run_output_base=resource["spec"]["runOutputBase"],
        attempt=1,
    )
    BlobStore().put(f"{path}/outputs.pb", outputs.SerializeToString())
    # ... and reports the phases
    for phase in (phases.RUNNING, phases.SUCCEEDED):
        request = internal.UpdateActionStatusRequest(
            action_id=action_id(run.name, "a0"), status=wf.ActionStatus(phase=phase, attempts=1)
        )
        assert post_proto_gzip(stack, request, UPDATE_STATUS, headers=stack.data_plane_headers())[0] == 200

    run.wait(quiet=True)
    assert run.phase == "succeeded"
    assert "42" in str(run.outputs())
    inputs = run.inputs()
    assert "21" in str(inputs)


def test_deploy_then_run_the_deployed_task_by_reference(stack, flyte_client, get_taskaction):
    import flyte.remote

    from tests.conftest import wait_for
    from tests.e2e.sdk_tasks.hello import env

    version = unique_name("v")
    flyte_client.deploy(env, version=version)
    flyte_client.deploy(env, version=version)  # again: already there, not an error

    task = flyte.remote.Task.get("hello_env.double", auto_version="latest")
    run = flyte_client.with_runcontext(mode="remote").run(task, x=5)
    resource = wait_for(lambda: get_taskaction(resource_name(run.name)), timeout=20, what="the run's TaskAction")
    assert resource["spec"]["taskType"]
    details = flyte.remote.Run.get(name=run.name)
    assert details.name == run.name


def test_a_duplicate_run_name_is_the_sdks_already_exists(stack, flyte_client):
    from tests.e2e.sdk_tasks.hello import double

    name = unique_name()
    flyte_client.with_runcontext(mode="remote", name=name).run(double, x=1)
    with pytest.raises(Exception, match="already exists"):
        flyte_client.with_runcontext(mode="remote", name=name).run(double, x=2)


def test_an_abort_through_the_sdk_reaches_the_cluster(stack, flyte_client, get_taskaction):
    from tests.conftest import wait_for
    from tests.e2e.sdk_tasks.hello import double

    run = flyte_client.with_runcontext(mode="remote").run(double, x=3)
    wait_for(lambda: get_taskaction(resource_name(run.name)), timeout=20, what="the run's TaskAction")
    run.abort(reason="not needed")
    wait_for(lambda: get_taskaction(resource_name(run.name)) is None, timeout=20, what="the TaskAction to be deleted")
    import flyte.remote

    assert flyte.remote.Run.get(name=run.name).phase == "aborted"
