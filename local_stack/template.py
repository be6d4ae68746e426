"""What the local stack takes from template.yaml: HTTP routes, their authorizers, and the table.

Reading them from the deployment template (instead of restating them) means a route added to the
template is served locally with the authorizer and scopes it has on AWS, and the local table has
exactly the deployed keys, index and stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str
    function: str  # logical id in the template
    handler: str  # dotted path of the Lambda handler, e.g. functions.create_run.handler.handler
    authorizer: str | None = None  # the HttpApi authorizer's name; None: no authorization (Authorizer: NONE)
    scopes: tuple[str, ...] = ()  # AuthorizationScopes: the token must carry at least one


@dataclass(frozen=True)
class StreamRoute:
    """A path CloudFront sends to a streaming function URL instead of the HTTP API."""

    path: str
    function: str  # logical id in the template
    entry: str  # dotted path of the function's in-process entry (its Metadata ``LocalStreamEntry``)


@dataclass(frozen=True)
class JwtAuthorizerConfig:
    """An HttpApi ``Auth.Authorizers`` entry with a ``JwtConfiguration``, parameters resolved."""

    name: str
    issuer: str
    audience: tuple[str, ...]
    identity_header: str  # the header of ``$request.header.<Name>``, lower-cased


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as SAM's transform receives it: its Fn::ForEach loops expanded."""
    from samtranslator.yaml_helper import yaml_parse

    from local_stack.language_extensions import expand

    return expand(yaml_parse(path.read_text()))


def functions(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    template = template or load_template()
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def http_routes(template: dict[str, Any] | None = None) -> list[HttpRoute]:
    template = template or load_template()
    parameters = parameter_values(template)
    routes = []
    for name, resource in functions(template).items():
        properties = resource["Properties"]
        for event in (properties.get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            authorizer, scopes = _route_authorization(template, event["Properties"], parameters)
            routes.append(
                HttpRoute(
                    method=event["Properties"]["Method"].upper(),
                    path=event["Properties"]["Path"],
                    function=name,
                    handler=properties["Handler"],
                    authorizer=authorizer,
                    scopes=scopes,
                )
            )
    return routes


def stream_routes(template: dict[str, Any] | None = None) -> list[StreamRoute]:
    """The CloudFront behaviours whose origin is a function URL (``FunctionUrlOrigin``), with the
    function that serves them (the origin's ``Metadata.Function``)."""
    template = template or load_template()
    routes = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudFront::Distribution":
            continue
        config = resource["Properties"]["DistributionConfig"]
        origins = {origin["Id"]: origin for origin in config.get("Origins", [])}
        for behaviour in config.get("CacheBehaviors", []):
            function = (resource.get("Metadata") or {}).get("StreamOrigins", {}).get(behaviour["TargetOriginId"])
            if function is None or behaviour["TargetOriginId"] not in origins:
                continue
            entry = functions(template)[function]["Metadata"]["LocalStreamEntry"]
            routes.append(StreamRoute(path="/" + behaviour["PathPattern"].lstrip("/"), function=function, entry=entry))
    return routes


def parameter_values(template: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's value: the override, else the default (a CommaDelimitedList as a list);
    parameters with neither are left out, and resolving a reference to one fails."""
    values: dict[str, Any] = {}
    for name, parameter in ((template or load_template()).get("Parameters") or {}).items():
        if overrides and name in overrides:
            values[name] = overrides[name]
        elif "Default" in parameter:
            default = parameter["Default"]
            is_list = parameter.get("Type") == "CommaDelimitedList"
            values[name] = [item.strip() for item in str(default).split(",") if item.strip()] if is_list else default
    return values


def resolve(value: Any, parameters: dict[str, Any], conditions: dict[str, bool] | None = None) -> Any:
    """A template value with the intrinsics the routes' auth uses resolved: ``!Ref <Parameter>``,
    and ``!If [<Condition>, a, b]`` (``conditions``: the template's, evaluated)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        if name not in parameters:
            raise KeyError(f"template parameter {name} has no value (no default and no override)")
        return parameters[name]
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        if conditions is None or condition not in conditions:
            raise KeyError(f"template condition {condition} is not evaluated")
        return resolve(when_true if conditions[condition] else when_false, parameters, conditions)
    if isinstance(value, list):
        return [item for element in value for item in _as_list(resolve(element, parameters, conditions))]
    return value


def condition_values(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, bool]:
    """The template's conditions built of ``Fn::Equals`` and ``Fn::Not`` over parameters (the ones
    the routes' auth uses); others are left out, and an ``!If`` on one fails to resolve."""
    values: dict[str, bool] = {}
    for name, condition in (template.get("Conditions") or {}).items():
        try:
            values[name] = _condition(condition, parameters)
        except (KeyError, TypeError, ValueError):
            continue
    return values


def _condition(condition: Any, parameters: dict[str, Any]) -> bool:
    if isinstance(condition, dict) and set(condition) == {"Fn::Not"}:
        (inner,) = condition["Fn::Not"]
        return not _condition(inner, parameters)
    if isinstance(condition, dict) and set(condition) == {"Fn::Equals"}:
        left, right = condition["Fn::Equals"]
        if isinstance(left, (dict, list)) and not (isinstance(left, dict) and set(left) == {"Ref"}):
            raise ValueError("only parameters are compared locally")
        return bool(str(resolve(left, parameters)) == str(resolve(right, parameters)))
    raise ValueError("only Fn::Not and Fn::Equals are evaluated locally")


def http_api_authorizers(
    overrides: dict[str, Any] | None = None, template: dict[str, Any] | None = None
) -> dict[str, JwtAuthorizerConfig]:
    """The JWT authorizers of the template's HttpApi resources, by name, with parameters resolved
    (``overrides`` supply the ones without defaults: the issuer and the audiences)."""
    template = template or load_template()
    parameters = parameter_values(template, overrides)
    conditions = condition_values(template, parameters)
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::HttpApi":
            continue
        for name, authorizer in (
            ((resource.get("Properties") or {}).get("Auth") or {}).get("Authorizers") or {}
        ).items():
            jwt = authorizer.get("JwtConfiguration")
            if jwt is None:
                continue
            source = authorizer.get("IdentitySource", "$request.header.Authorization")
            if not source.startswith("$request.header."):
                raise ValueError(f"authorizer {name}: only header identity sources are served locally")
            found[name] = JwtAuthorizerConfig(
                name=name,
                issuer=str(resolve(jwt["issuer"], parameters, conditions)),
                audience=tuple(str(a) for a in _as_list(resolve(jwt["audience"], parameters, conditions))),
                identity_header=source.removeprefix("$request.header.").lower(),
            )
    return found


def _route_authorization(
    template: dict[str, Any], event: dict[str, Any], parameters: dict[str, Any]
) -> tuple[str | None, tuple[str, ...]]:
    """SAM's rules: an event's ``Auth.Authorizer`` (``NONE``: none), else the API's
    ``DefaultAuthorizer``; the event's ``AuthorizationScopes``, else the authorizer's."""
    api_id = event.get("ApiId")
    api_name = api_id.get("Ref") if isinstance(api_id, dict) else None
    api = template["Resources"].get(api_name, {}) if api_name else {}
    api_auth = (api.get("Properties") or {}).get("Auth") or {}
    route_auth = event.get("Auth") or {}
    authorizer = route_auth.get("Authorizer", api_auth.get("DefaultAuthorizer"))
    if authorizer is None or authorizer == "NONE":
        return None, ()
    default_scopes = ((api_auth.get("Authorizers") or {}).get(authorizer) or {}).get("AuthorizationScopes") or []
    scopes = route_auth.get("AuthorizationScopes", default_scopes)
    return authorizer, tuple(str(scope) for scope in resolve(scopes, parameters))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def function_handler(logical_id: str, template: dict[str, Any] | None = None) -> str:
    return functions(template)[logical_id]["Properties"]["Handler"]


def function_timeout(logical_id: str, template: dict[str, Any] | None = None) -> float:
    template = template or load_template()
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return float(functions(template)[logical_id]["Properties"].get("Timeout", default))


@dataclass(frozen=True)
class ScheduledInvocation:
    function: str  # logical id
    expression: str  # rate(...) or cron(...)
    input: dict[str, Any]


def scheduled_invocations(template: dict[str, Any] | None = None) -> list[ScheduledInvocation]:
    """The functions' ``ScheduleV2`` events: EventBridge Scheduler schedules that invoke them."""
    import json

    found = []
    for name, resource in functions(template).items():
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "ScheduleV2":
                properties = event["Properties"]
                found.append(
                    ScheduledInvocation(
                        name, properties["ScheduleExpression"], json.loads(properties.get("Input") or "{}")
                    )
                )
    return found


def stream_settings(logical_id: str = "ReconcileFunction", template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The DynamoDB event source properties of a function (batch size, retries, ...)."""
    for event in (functions(template)[logical_id]["Properties"].get("Events") or {}).values():
        if event["Type"] == "DynamoDB":
            return event["Properties"]
    raise KeyError(f"{logical_id} has no DynamoDB event")


def table_definition(logical_id: str = "ActionsTable", template: dict[str, Any] | None = None) -> dict[str, Any]:
    """CreateTable arguments equivalent to the template's table (name excluded)."""
    properties = (template or load_template())["Resources"][logical_id]["Properties"]
    definition: dict[str, Any] = {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        "StreamSpecification": {"StreamEnabled": True, **properties["StreamSpecification"]},
    }
    # Conditional indexes (``!If``: the previous run index, kept only while a deployed stack moves
    # off it) are left out: a local table is always new.
    indexes = [index for index in properties.get("GlobalSecondaryIndexes") or [] if "IndexName" in index]
    if indexes:
        definition["GlobalSecondaryIndexes"] = indexes
    return definition


# Lambda's retries of an asynchronous invocation when the function configures none.
DEFAULT_ASYNC_RETRIES = 2


def async_retries(logical_id: str, template: dict[str, Any] | None = None) -> int:
    """How often Lambda retries a failed asynchronous invocation of the function (its
    ``EventInvokeConfig.MaximumRetryAttempts``) before the on-failure destination gets it."""
    config = functions(template)[logical_id]["Properties"].get("EventInvokeConfig") or {}
    return int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES))
