"""template.yaml, transformed offline to CloudFormation (samtranslator) and linted (cfn-lint).

`sam validate` passes templates with dangling references; the transform plus cfn-lint on its
output is the check that catches them (aws-stack.md §3.1). The assertions then read the
resources as CloudFormation will create them.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.create_run.handler import router as create_run_router
from functions.read_runs.handler import router as read_runs_router
from functions.update_action.handler import router as update_action_router
from local_stack.template import TEMPLATE_PATH, http_routes, load_template, table_definition
from runplane.records import RUN_INDEX_NAME, RUN_INDEX_PROJECTION

MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaDynamoDBExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}


class _PolicyLoader:
    def load(self):
        return MANAGED_POLICIES


@pytest.fixture(scope="module")
def cloudformation(tmp_path_factory):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(load_template())
    for resource in template["Resources"].values():  # local paths are S3 URIs once packaged
        properties = resource.get("Properties", {})
        for field in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(field), str) and not properties[field].startswith("s3://"):
                properties[field] = f"s3://artifacts/{properties[field].strip('./') or 'root'}"
    output = transform(template, {}, _PolicyLoader())
    path = tmp_path_factory.mktemp("cfn") / "template.json"
    path.write_text(json.dumps(output))
    output["__path__"] = path
    return output


def resources_of(cloudformation, kind):
    return {name: r for name, r in cloudformation["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_passes_on_the_transformed_template(cloudformation):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(cloudformation["__path__"])], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_functions_run_on_python313_arm64_with_the_shared_layer(cloudformation):
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    assert set(functions) == {
        "CreateRunFunction",
        "UpdateActionFunction",
        "ReadRunsFunction",
        "TaskRegistryFunction",
        "DataProxyFunction",
        "ReconcileFunction",
        "MirrorStatusFunction",
    }
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["arm64"]
        assert properties["Layers"] == [{"Ref": next(iter(resources_of(cloudformation, "AWS::Lambda::LayerVersion")))}]


def test_table_keys_and_stream(cloudformation):
    table = resources_of(cloudformation, "AWS::DynamoDB::Table")["ActionsTable"]["Properties"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == RUN_INDEX_NAME
    assert index["Projection"]["NonKeyAttributes"] == list(RUN_INDEX_PROJECTION)


def test_stream_mapping_reports_partial_failures_and_has_a_destination(cloudformation):
    (mapping,) = resources_of(cloudformation, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] > 0
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ReconcileFailureQueue", "Arn"]
    }
    assert properties["MaximumRecordAgeInSeconds"] > 0 and properties["MaximumBatchingWindowInSeconds"] >= 0
    # reconcile records a failure on the action before the mapping gives up on the record
    variables = cloudformation["Resources"]["ReconcileFunction"]["Properties"]["Environment"]["Variables"]
    assert int(variables["RECONCILE_MAX_ATTEMPTS"]) < properties["MaximumRetryAttempts"]


def test_every_route_is_served_by_its_handler():
    routes = {(r.method, r.path): r.handler for r in http_routes()}
    for path in create_run_router.paths:
        assert routes[("POST", path)] == "functions.create_run.handler.handler"
    for path in update_action_router.paths:
        assert routes[("POST", path)] == "functions.update_action.handler.handler"
    for path in read_runs_router.paths:
        assert routes[("POST", path)] == "functions.read_runs.handler.handler"
    assert all(method == "POST" for method, path in routes if path != "/{proxy+}")
    assert routes[("ANY", "/{proxy+}")] == "functions.data_proxy.handler.handler"  # unimplemented, not 404


def test_local_table_is_the_deployed_table():
    definition = table_definition()
    assert definition["KeySchema"] == load_template()["Resources"]["ActionsTable"]["Properties"]["KeySchema"]
    assert definition["StreamSpecification"]["StreamEnabled"] is True


def test_create_run_may_only_read_and_put_items(cloudformation):
    role = cloudformation["Resources"]["CreateRunFunctionRole"]["Properties"]
    actions = {
        action
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert actions == {"dynamodb:GetItem", "dynamodb:PutItem", "s3:PutObject", "s3:DeleteObject", "s3:GetObject"}
    assert TEMPLATE_PATH.exists()


def test_the_read_function_cannot_write(cloudformation):
    role = cloudformation["Resources"]["ReadRunsFunctionRole"]["Properties"]
    actions = {
        action
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert actions == {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "s3:GetObject"}


def test_scheduler_may_only_invoke_create_run(cloudformation):
    role = cloudformation["Resources"]["SchedulerRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    invoke = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    assert [s["Resource"] for s in invoke] == [{"Fn::GetAtt": ["CreateRunFunction", "Arn"]}]
    registry = cloudformation["Resources"]["TaskRegistryFunctionRole"]["Properties"]
    schedule_rights = [
        s
        for p in registry["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if any(a.startswith("scheduler:") for a in s["Action"])
    ]
    assert all("schedule/${TriggerScheduleGroup}/*" in s["Resource"]["Fn::Sub"] for s in schedule_rights)
