"""What the local stack takes from template.yaml: HTTP routes and the table definition.

Reading them from the deployment template (instead of restating them) means a route added to the
template is served locally, and the local table has exactly the deployed keys, index and stream.
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


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text())


def functions(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    template = template or load_template()
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def http_routes(template: dict[str, Any] | None = None) -> list[HttpRoute]:
    routes = []
    for name, resource in functions(template).items():
        properties = resource["Properties"]
        for event in (properties.get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            routes.append(
                HttpRoute(
                    method=event["Properties"]["Method"].upper(),
                    path=event["Properties"]["Path"],
                    function=name,
                    handler=properties["Handler"],
                )
            )
    return routes


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
    if properties.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    return definition
