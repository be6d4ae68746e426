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
from functions.read_runs.handler import STREAMS as READ_RUNS_STREAMS
from functions.read_runs.handler import router as read_runs_router
from functions.update_action.handler import router as update_action_router
from local_stack.template import (
    TEMPLATE_PATH,
    http_api_authorizers,
    http_routes,
    load_template,
    stream_routes,
    table_definition,
)
from runplane.table.records import (
    FAMILY_INDEX_NAME,
    FAMILY_INDEX_PROJECTION,
    FAMILY_KEY,
    PREVIOUS_RUN_INDEX_NAME,
    RUN_INDEX_NAME,
    RUN_INDEX_PROJECTION,
)

MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaDynamoDBExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}

# What RunsByCreatedAt, the run index of earlier versions, projects.
PREVIOUS_RUN_INDEX_PROJECTION = [
    "project", "domain", "run_name", "name", "phase", "action_type", "run_source", "origin", "attempts",
    "cache_status", "task_project", "task_domain", "task_name", "task_version", "task_type", "task_short_name",
    "function_name", "environment_name", "error_kind", "error_message", "abort_reason", "trigger_name",
    "trigger_task_name", "trigger_revision", "abort_requested_at",
    "created_at", "start_time", "updated_at", "ended_at", "version",
]  # fmt: skip


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


def test_cfn_lint_passes_on_the_template_as_written():
    """What ``sam validate --lint`` runs: cfn-lint on template.yaml itself, its Fn::ForEach loops
    expanded by cfn-lint's own AWS::LanguageExtensions support, not by local_stack's."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE_PATH)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_is_in_the_observability_loop_and_its_names(cloudformation):
    """The loop that makes each function's log group and alarms runs over the ``Functions``
    mapping's keys: the functions, the loop and the mapping name the same set."""
    from samtranslator.yaml_helper import yaml_parse

    raw = yaml_parse(TEMPLATE_PATH.read_text())
    identifier, collection, _ = raw["Resources"]["Fn::ForEach::FunctionObservability"]
    assert identifier == "Function"
    functions = {name.removesuffix("Function") for name in _functions(cloudformation)}
    assert set(collection) == functions == set(raw["Mappings"]["Functions"])
    assert len(collection) == len(set(collection))


def test_the_functions_run_on_python313_arm64_with_the_shared_layer(cloudformation):
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    assert set(functions) == {
        "CreateRunFunction",
        "UpdateActionFunction",
        "ReadRunsFunction",
        "ReadRunsStreamFunction",
        "TaskRegistryFunction",
        "DataProxyFunction",
        "CacheServiceFunction",
        "AuthMetadataFunction",
        "ConsoleFunction",
        "ReconcileFunction",
        "MirrorStatusFunction",
    }
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["arm64"]
        assert properties["Layers"][0] == {"Ref": next(iter(resources_of(cloudformation, "AWS::Lambda::LayerVersion")))}


def test_table_keys_and_stream(cloudformation):
    table = resources_of(cloudformation, "AWS::DynamoDB::Table")["ActionsTable"]["Properties"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    index, family, previous = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == RUN_INDEX_NAME
    assert index["Projection"]["NonKeyAttributes"] == list(RUN_INDEX_PROJECTION)
    # a parent's children by their last status write: what a watch's poll reads
    assert family["IndexName"] == FAMILY_INDEX_NAME
    assert [(k["AttributeName"], k["KeyType"]) for k in family["KeySchema"]] == [
        (FAMILY_KEY, "HASH"),
        ("updated_at", "RANGE"),
    ]
    assert family["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(FAMILY_INDEX_PROJECTION)}
    # The previous run index, only while a stack moves off it, exactly as earlier versions created
    # it: CloudFormation cannot change an index, so any difference would fail that deploy.
    condition, kept, otherwise = previous["Fn::If"]
    assert condition == "WithPreviousRunIndex" and otherwise == {"Ref": "AWS::NoValue"}
    assert kept["IndexName"] == PREVIOUS_RUN_INDEX_NAME
    assert kept["KeySchema"] == index["KeySchema"]
    assert kept["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": PREVIOUS_RUN_INDEX_PROJECTION}
    variables = cloudformation["Resources"]["ReadRunsFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["RUN_INDEX_NAME"] == {"Fn::If": ["WithPreviousRunIndex", PREVIOUS_RUN_INDEX_NAME, RUN_INDEX_NAME]}


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
    assert all(
        method == "POST"
        for method, path in routes
        if path != "/{proxy+}" and path not in CONSOLE_PAGES | RUN_TOKEN_ISSUER
    )
    for path in RUN_TOKEN_ISSUER:  # the run tokens' issuer documents, GET only
        assert routes[("GET", path)] == "functions.auth_metadata.handler.handler", path
    assert routes[("ANY", "/{proxy+}")] == "functions.data_proxy.handler.handler"  # unimplemented, not 404
    for path in CONSOLE_PAGES:  # the web console: its page and assets, GET only
        assert routes[("GET", path)] == "functions.console.handler.handler", path


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
    # sqs:SendMessage: SAM's grant for the on-failure destination of failed ticks (that queue only)
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:GetObject",
        "sqs:SendMessage",
    }
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


# --- Observability, the failure path of ticks, the cluster side, secrets ---------------------------

# Actions that take no resource narrower than "*" (IAM's service authorization reference): the only
# ones a statement may grant on "*".
ACTIONS_WITHOUT_RESOURCE_LEVEL = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "cloudwatch:PutMetricData",
        "dynamodb:ListStreams",
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
    }
)


def _statements(cloudformation):
    """Every IAM statement the template defines: roles' inline policies and policy resources."""
    for name, resource in cloudformation["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [resource["Properties"]["PolicyDocument"]]
        else:
            continue
        for document in documents:
            for statement in document["Statement"]:
                yield name, statement


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_no_iam_statement_grants_a_wildcard_resource_where_a_narrower_one_exists(cloudformation):
    statements = list(_statements(cloudformation))
    assert len(statements) > 10
    for name, statement in statements:
        resources = _as_list(statement.get("Resource", []))
        actions = _as_list(statement["Action"])
        if "*" in resources:
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCE_LEVEL, f"{name} grants {actions} on *"
        assert not any(action == "*" or action.endswith(":*") for action in actions), f"{name}: {actions}"


def _functions(cloudformation):
    return resources_of(cloudformation, "AWS::Lambda::Function")


def test_every_function_logs_to_a_group_of_its_own_with_retention(cloudformation):
    groups = resources_of(cloudformation, "AWS::Logs::LogGroup")
    for name, function in _functions(cloudformation).items():
        reference = function["Properties"]["LoggingConfig"]["LogGroup"]
        group = groups[reference["Ref"]]["Properties"]  # created before the function: retention from the start
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert _substituted(cloudformation, group["LogGroupName"]).startswith("/aws/lambda/${AWS::StackName}/"), name
    named = [
        _substituted(cloudformation, g["Properties"]["LogGroupName"])
        for g in groups.values()
        if "LogGroupName" in g["Properties"]
    ]
    assert len(named) == len(set(named))
    assert load_template()["Parameters"]["LogRetentionDays"]["Default"] == 30


def _substituted(cloudformation, value):
    """A ``Fn::Sub`` whose variables are ``Fn::FindInMap`` lookups, with the lookups made (as
    CloudFormation makes them); pseudo parameters left as they are."""
    if isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    text, variables = value["Fn::Sub"]
    for name, variable in variables.items():
        mapping, key, attribute = variable["Fn::FindInMap"]
        text = text.replace("${" + name + "}", cloudformation["Mappings"][mapping][key][attribute])
    return text


def _reference(value):
    """``{"Ref": X}`` for a dimension naming a resource, whether by Ref or by ``Fn::Sub: ${X}``."""
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        inner = value["Fn::Sub"]
        if inner.startswith("${") and inner.endswith("}") and inner.count("${") == 1:
            return {"Ref": inner[2:-1]}
    return value


def _alarms(cloudformation):
    return resources_of(cloudformation, "AWS::CloudWatch::Alarm").values()


def _alarmed(cloudformation, namespace, metric, dimension):
    return [
        _reference(dimensions[0]["Value"])
        for alarm in _alarms(cloudformation)
        if alarm["Properties"]["Namespace"] == namespace
        and alarm["Properties"]["MetricName"] == metric
        and (dimensions := alarm["Properties"]["Dimensions"])[0]["Name"] == dimension
    ]


def test_every_function_and_queue_has_its_alarms_and_they_notify_the_topic(cloudformation):
    functions = [{"Ref": name} for name in _functions(cloudformation)]
    for metric in ("Errors", "Throttles"):
        alarmed = _alarmed(cloudformation, "AWS/Lambda", metric, "FunctionName")
        assert sorted(map(str, alarmed)) == sorted(map(str, functions)), metric
    queues = [{"Fn::GetAtt": [name, "QueueName"]} for name in resources_of(cloudformation, "AWS::SQS::Queue")]
    assert len(queues) == 3  # reconcile's on-failure, Scheduler's dead letters, create_run's on-failure
    alarmed = _alarmed(cloudformation, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    assert sorted(map(str, alarmed)) == sorted(map(str, queues))
    assert _alarmed(cloudformation, "AWS/Lambda", "IteratorAge", "FunctionName") == [{"Ref": "ReconcileFunction"}]
    assert _alarmed(cloudformation, "AWS/ApiGateway", "5xx", "ApiId") == [{"Ref": "HttpApi"}]
    notify = {"Fn::If": ["WithAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for alarm in _alarms(cloudformation):
        assert alarm["Properties"]["AlarmActions"] == notify and alarm["Properties"]["OKActions"] == notify
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"  # an idle stack is healthy
    assert cloudformation["Conditions"]["WithAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }


def test_the_dashboard_shows_the_api_the_functions_the_stream_the_queues_and_the_custom_metrics(cloudformation):
    from runplane.ops import metrics

    (dashboard,) = resources_of(cloudformation, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body)["widgets"]  # valid JSON once substituted (no ${} inside strings' quotes)
    text = json.dumps(widgets)
    for metric in ("Count", "Latency", "4xx", "5xx", "Errors", "Duration", "IteratorAge"):
        assert f'"{metric}"' in text, metric
    for function in _functions(cloudformation):
        assert "${" + function + "}" in text, function
    for queue in resources_of(cloudformation, "AWS::SQS::Queue"):
        assert "${" + queue + ".QueueName}" in text, queue
    for metric in (
        metrics.RUNS_CREATED,
        metrics.ACTIONS_MATERIALISED,
        metrics.RECONCILE_OUTCOMES,
        metrics.STATUS_UPDATES_APPLIED,
        metrics.STATUS_UPDATES_REJECTED,
        metrics.CONNECT_ERRORS,
    ):
        assert metric in text, metric
    namespace = load_template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    assert f'"{namespace["Fn::Sub"]}"' in text or namespace["Fn::Sub"] in text
    assert load_template()["Globals"]["Function"]["Tracing"] == "Active"


def test_failed_ticks_go_to_an_on_failure_queue_after_lambdas_two_retries(cloudformation):
    (config,) = [
        r["Properties"]
        for r in resources_of(cloudformation, "AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == {"Ref": "CreateRunFunction"}
    ]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["CreateRunFailureQueue", "Arn"]}


def test_the_cluster_facing_roles_are_mapped_to_the_group_deploy_kubernetes_binds(cloudformation):
    import yaml

    entries = resources_of(cloudformation, "AWS::EKS::AccessEntry")
    assert {str(e["Properties"]["PrincipalArn"]) for e in entries.values()} == {
        str({"Fn::GetAtt": [role, "Arn"]}) for role in ("ReconcileFunctionRole", "MirrorStatusFunctionRole")
    }
    groups = {"ReconcileAccessEntry": "ReconcileGroup", "MirrorStatusAccessEntry": "MirrorGroup"}
    for name, entry in entries.items():
        assert entry["Condition"] == "WithAccessEntries"
        assert entry["Properties"]["KubernetesGroups"] == [{"Ref": groups[name]}]  # one group each
        assert "AccessPolicies" not in entry["Properties"]  # the Role in rbac.yaml is all they get
    bindings = [
        d
        for d in yaml.safe_load_all((TEMPLATE_PATH.parent / "deploy" / "kubernetes" / "rbac.yaml").read_text())
        if d["kind"] == "RoleBinding"
    ]
    parameters = load_template()["Parameters"]
    assert [s["name"] for b in bindings for s in b["subjects"]] == [
        parameters["ReconcileGroup"]["Default"],
        parameters["MirrorGroup"]["Default"],
    ]
    for binding in bindings:
        assert binding["metadata"]["namespace"] == parameters["TaskActionNamespace"]["Default"]
    # a private endpoint: both cluster-facing functions in the VPC, only when subnets are given
    for name in ("ReconcileFunction", "MirrorStatusFunction"):
        assert cloudformation["Resources"][name]["Properties"]["VpcConfig"]["Fn::If"][0] == "InClusterVpc"


def test_the_page_token_key_is_generated_per_stack(cloudformation):
    (secret,) = resources_of(cloudformation, "AWS::SecretsManager::Secret").values()
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    resolved = {"Fn::Sub": "{{resolve:secretsmanager:${PageTokenSecret}:SecretString}}"}
    # create_run keys the scheduled runs' names with it (an outsider cannot predict one); WatchRuns lists runs
    signers = {"ReadRunsFunction", "ReadRunsStreamFunction", "TaskRegistryFunction", "CreateRunFunction"}
    for name in signers:
        assert (
            cloudformation["Resources"][name]["Properties"]["Environment"]["Variables"]["PAGE_TOKEN_SECRET"] == resolved
        )
    others = set(_functions(cloudformation)) - signers
    for name in others:  # only the functions that sign page tokens or name scheduled runs see the key
        variables = cloudformation["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {})
        assert "PAGE_TOKEN_SECRET" not in variables, name


# --- Authentication: a JWT authorizer on every route but discovery, scopes, the stage -------------

DISCOVERY_PROCEDURES = {
    "/flyteidl2.auth.AuthMetadataService/GetOAuth2Metadata",
    "/flyteidl2.auth.AuthMetadataService/GetPublicClientConfig",
}
# The web console's page and assets: public, as a sign-in page is; the API calls they make are not.
CONSOLE_PAGES = {"/", "/v2", "/v2/{proxy+}", "/console/{proxy+}"}
# The run tokens' issuer, which API Gateway's RunToken authorizer reads without a token.
RUN_TOKEN_ISSUER = {"/run-tokens/.well-known/openid-configuration", "/run-tokens/.well-known/jwks.json"}
# What the data plane calls (Flyte's executor, the SDK inside task pods): the data-plane scope.
DATA_PLANE_PROCEDURES = {
    "/flyteidl2.workflow.InternalRunService/RecordAction",
    "/flyteidl2.workflow.InternalRunService/UpdateActionStatus",
    "/flyteidl2.workflow.InternalRunService/RecordActionEvents",
    "/flyteidl2.workflow.EventsProxyService/Record",
    "/flyteidl2.actions.ActionsService/Enqueue",
    "/flyteidl2.actions.ActionsService/Update",
    "/flyteidl2.actions.ActionsService/Abort",
    "/flyteidl2.actions.ActionsService/WatchForUpdates",
    "/flyteidl2.workflow.QueueService/EnqueueAction",
    "/flyteidl2.workflow.QueueService/AbortQueuedAction",
    "/flyteidl2.workflow.QueueService/AbortQueuedRun",
    "/flyteidl2.workflow.StateService/Watch",
    # Flyte's executor's task cache (functions/cache_service)
    "/flyteidl2.cacheservice.v2.CacheService/Get",
    "/flyteidl2.cacheservice.v2.CacheService/Put",
    "/flyteidl2.cacheservice.v2.CacheService/Delete",
    "/flyteidl2.cacheservice.v2.CacheService/GetOrExtendReservation",
    "/flyteidl2.cacheservice.v2.CacheService/ReleaseReservation",
}
# What only task pods call: the RunToken authorizer (the run tokens' issuer); the relay's Record
# and the executor's cache keep OAuth2 (the identity provider's client-credentials tokens).
POD_PROCEDURES = (
    DATA_PLANE_PROCEDURES
    - {"/flyteidl2.workflow.EventsProxyService/Record"}
    - {path for path in DATA_PLANE_PROCEDURES if "CacheService" in path}
)


def _route_security(cloudformation):
    """(method, path) -> the OpenAPI security of the route, as the HTTP API is created with it."""
    body = cloudformation["Resources"]["HttpApi"]["Properties"]["Body"]
    return {
        ("ANY" if method == "x-amazon-apigateway-any-method" else method.upper(), path): operation.get("security")
        for path, operations in body["paths"].items()
        for method, operation in operations.items()
    }


def test_every_route_but_discovery_has_the_jwt_authorizer_with_its_scope(cloudformation):
    security = _route_security(cloudformation)
    assert set(security) == {(route.method, route.path) for route in http_routes()}
    assert {path for _, path in security} >= DISCOVERY_PROCEDURES | DATA_PLANE_PROCEDURES
    for (method, path), requirement in security.items():
        if path in DISCOVERY_PROCEDURES | CONSOLE_PAGES | RUN_TOKEN_ISSUER:
            assert requirement == [{"NONE": []}], path
        elif path in POD_PROCEDURES:
            assert requirement == [{"RunToken": [{"Ref": "AuthDataPlaneScope"}]}], path
        elif path in DATA_PLANE_PROCEDURES:
            assert requirement == [{"OAuth2": [{"Ref": "AuthDataPlaneScope"}]}], path
        else:  # user procedures, the unimplemented fallback included
            assert requirement == [{"OAuth2": [{"Ref": "AuthUserScope"}]}], (method, path)


def test_the_local_front_reads_the_same_authorizers_and_scopes():
    parameters = load_template()["Parameters"]
    user, data_plane = parameters["AuthUserScope"]["Default"], parameters["AuthDataPlaneScope"]["Default"]
    assert user != data_plane
    for route in http_routes():
        if route.path in DISCOVERY_PROCEDURES | CONSOLE_PAGES | RUN_TOKEN_ISSUER:
            assert (route.authorizer, route.scopes) == (None, ()), route.path
        else:
            expected = data_plane if route.path in DATA_PLANE_PROCEDURES else user
            name = "RunToken" if route.path in POD_PROCEDURES else "OAuth2"
            assert (route.authorizer, route.scopes) == (name, (expected,)), route.path
    identity = {"AuthIssuer": "https://issuer.example.com", "AuthAudiences": ["a", "b"]}
    authorizers = http_api_authorizers(identity)
    assert (authorizers["OAuth2"].issuer, authorizers["OAuth2"].audience, authorizers["OAuth2"].identity_header) == (
        "https://issuer.example.com",
        ("a", "b"),
        "authorization",
    )
    # run tokens off: the pods' routes trust the identity provider; on: the run tokens' issuer only
    assert (authorizers["RunToken"].issuer, authorizers["RunToken"].audience) == (
        "https://issuer.example.com",
        ("a", "b"),
    )
    on = http_api_authorizers({**identity, "RunTokenIssuer": "https://api.example/run-tokens"})
    assert (on["RunToken"].issuer, on["OAuth2"].issuer) == (
        "https://api.example/run-tokens",
        "https://issuer.example.com",
    )


def test_run_tokens_are_signed_by_reconcile_alone_and_published_by_auth_metadata(cloudformation):
    resources = cloudformation["Resources"]
    key = resources["RunTokenKey"]
    assert key["Condition"] == "WithRunTokens"
    assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == ("RSA_2048", "SIGN_VERIFY")
    reconcile = resources["ReconcileFunction"]["Properties"]["Environment"]["Variables"]
    assert reconcile["RUN_TOKEN_ISSUER"] == {"Ref": "RunTokenIssuer"}
    assert reconcile["RUN_TOKEN_KMS_KEY_ID"] == {"Fn::If": ["WithRunTokens", {"Ref": "RunTokenKey"}, ""]}
    metadata = resources["AuthMetadataFunction"]["Properties"]["Environment"]["Variables"]
    assert metadata["RUN_TOKEN_KMS_KEY_ID"] == reconcile["RUN_TOKEN_KMS_KEY_ID"]  # the kid the tokens carry
    signers = [
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role" and "kms:Sign" in json.dumps(resource["Properties"])
    ]
    assert signers == ["ReconcileFunctionRole"]


def test_the_authorizer_trusts_the_issuer_and_audiences_of_the_parameters(cloudformation):
    schemes = cloudformation["Resources"]["HttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    authorizer = schemes["OAuth2"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt" and authorizer["identitySource"] == "$request.header.Authorization"
    assert authorizer["jwtConfiguration"] == {"issuer": {"Ref": "AuthIssuer"}, "audience": {"Ref": "AuthAudiences"}}
    parameters = load_template()["Parameters"]
    assert "Default" not in parameters["AuthIssuer"] and "Default" not in parameters["AuthAudiences"]  # asked for


def test_the_stage_is_throttled_and_logs_every_request_as_json(cloudformation):
    (stage,) = resources_of(cloudformation, "AWS::ApiGatewayV2::Stage").values()
    properties = stage["Properties"]
    assert properties["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    logs = properties["AccessLogSettings"]
    assert logs["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    line = json.loads(logs["Format"])
    assert {"requestId", "status", "route", "sub", "authorizerError"} <= set(line)
    assert cloudformation["Resources"]["ApiAccessLogs"]["Properties"]["RetentionInDays"] > 0


def test_the_discovery_function_reads_no_table_and_no_bucket(cloudformation):
    role = cloudformation["Resources"]["AuthMetadataFunctionRole"]["Properties"]
    actions = {
        action
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert not any(action.startswith(("dynamodb:", "s3:")) for action in actions)
    variables = cloudformation["Resources"]["AuthMetadataFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["AUTH_ISSUER"] == {"Ref": "AuthIssuer"}


def test_the_watches_stream_from_a_function_url_behind_the_apis_host(cloudformation):
    """Every watch read_runs serves is also a CloudFront behaviour sent to the streaming function's
    URL (RESPONSE_STREAM, under the Lambda Web Adapter), the rest to the HTTP API; the function
    checks the JWT itself with the HTTP API authorizer's issuer, audiences and scopes."""
    resources = cloudformation["Resources"]
    function = resources["ReadRunsStreamFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert "LambdaAdapterLayerArm64" in json.dumps(function["Layers"][1])
    assert float(variables["WATCH_WINDOW_SECONDS"]) < function["Timeout"] <= 900
    assert variables["AUTH_ISSUER"] == {"Ref": "AuthIssuer"}
    assert variables["AUTH_USER_SCOPE"] == {"Ref": "AuthUserScope"}
    assert variables["AUTH_DATA_PLANE_SCOPE"] == {"Ref": "AuthDataPlaneScope"}
    (url,) = [r["Properties"] for r in resources_of(cloudformation, "AWS::Lambda::Url").values()]
    assert url["InvokeMode"] == "RESPONSE_STREAM" and url["AuthType"] == "NONE"
    (distribution,) = resources_of(cloudformation, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == "HttpApi"
    streamed = {b["PathPattern"] for b in config["CacheBehaviors"] if b["TargetOriginId"] == "ReadRunsStream"}
    assert streamed == set(READ_RUNS_STREAMS)
    # the local front streams the same paths, with the function's in-process entry
    assert {r.path for r in stream_routes()} == set(READ_RUNS_STREAMS)
    assert {r.entry for r in stream_routes()} == {"functions.read_runs.stream.serve"}
    # the buffered fallback stays on the HTTP API (it cannot stream), with the same scopes
    routes = {r.path: r for r in http_routes()}
    assert set(READ_RUNS_STREAMS) <= set(routes)


LONG_CALLS = (
    "/flyteidl2.workflow.RunService/WatchActionDetails",
    "/flyteidl2.workflow.RunService/WatchRunDetails",
    "/flyteidl2.workflow.RunService/WatchRuns",
    "/flyteidl2.workflow.RunService/WatchActions",
    "/flyteidl2.actions.ActionsService/WatchForUpdates",
    "/flyteidl2.workflow.StateService/Watch",
    "/flyteidl2.dataproxy.DataProxyService/TailLogs",
)


def test_the_long_calls_cannot_take_the_accounts_concurrency(cloudformation):
    """Issue 22: watches and TailLogs hold executions for 20-28 s; their functions have reserved
    concurrency, and their routes a throttle of their own under the stage's."""
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    assert functions["ReadRunsFunction"]["Properties"]["ReservedConcurrentExecutions"] == {"Ref": "ReadRunsConcurrency"}
    assert functions["ReadRunsStreamFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "ReadRunsConcurrency"
    }
    assert functions["DataProxyFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "DataProxyConcurrency"
    }
    (stage,) = resources_of(cloudformation, "AWS::ApiGatewayV2::Stage").values()
    route_settings = stage["Properties"]["RouteSettings"]
    for path in LONG_CALLS:
        assert route_settings[f"POST {path}"] == {
            "ThrottlingRateLimit": {"Ref": "LongCallThrottlingRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "LongCallThrottlingRateLimit"},
        }
    assert {("POST", path) for path in LONG_CALLS} <= set(_route_security(cloudformation))  # each route exists
