"""The ``AWS::LanguageExtensions`` transform, as far as template.yaml uses it: ``Fn::ForEach``.

CloudFormation runs this transform before SAM's, so everything that reads the template the way
a deployment sees it (the local front's routes, the table, the template tests' offline SAM
transform) reads it expanded. ``expand`` does the same: every ``Fn::ForEach::<Loop>`` key of
``Resources``, ``Outputs`` and ``Conditions`` (and those nested in a loop's fragment) becomes one
copy of its fragment per item of its collection, ``${Identifier}`` and ``&{Identifier}`` replaced
in keys and strings and ``{"Ref": Identifier}`` by the item; the transform is then dropped from
``Transform``. ``Fn::FindInMap`` and the other intrinsic functions are left for CloudFormation,
as the transform leaves them. A collection must be a literal list (the template names its
functions; a ``Ref`` to a list parameter is not supported here).
"""

from __future__ import annotations

import re
from typing import Any

LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
FOR_EACH = "Fn::ForEach::"
# The sections CloudFormation allows loops in.
LOOP_SECTIONS = ("Resources", "Outputs", "Conditions")


def expand(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` as CloudFormation hands it to the next transform; unchanged without this one."""
    transforms = template.get("Transform")
    listed = transforms if isinstance(transforms, list) else [transforms] if transforms else []
    if LANGUAGE_EXTENSIONS not in listed:
        return template
    expanded = dict(template)
    for section in LOOP_SECTIONS:
        if section in expanded:
            expanded[section] = _expand_loops(expanded[section], where=section)
    rest = [name for name in listed if name != LANGUAGE_EXTENSIONS]
    if rest:
        expanded["Transform"] = rest[0] if len(rest) == 1 else rest
    else:
        del expanded["Transform"]
    return expanded


def _expand_loops(entries: dict[str, Any], *, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in entries.items():
        if not key.startswith(FOR_EACH):
            _add(result, key, value, where=where)
            continue
        identifier, collection, fragment = _loop(key, value)
        for item in collection:
            copy = _substitute(fragment, identifier=identifier, item=item)
            for name, entry in _expand_loops(copy, where=where).items():
                _add(result, name, entry, where=where)
    return result


def _loop(key: str, value: Any) -> tuple[str, list[str], dict[str, Any]]:
    if not (isinstance(value, list) and len(value) == 3):
        raise ValueError(f"{key}: a loop is [identifier, collection, fragment]")
    identifier, collection, fragment = value
    if not isinstance(identifier, str) or not isinstance(fragment, dict):
        raise ValueError(f"{key}: a loop is [identifier, collection, fragment]")
    if not (isinstance(collection, list) and all(isinstance(item, str) for item in collection)):
        raise ValueError(f"{key}: only a literal list of strings is supported as the collection")
    return identifier, collection, fragment


def _add(result: dict[str, Any], key: str, value: Any, *, where: str) -> None:
    if key in result:
        raise ValueError(f"{where}: {key} is defined twice (a loop's output collides)")
    result[key] = value


def _substitute(value: Any, *, identifier: str, item: str) -> Any:
    if isinstance(value, str):
        alphanumeric = re.sub(r"[^A-Za-z0-9]", "", item)  # &{} is for keys: logical ids are alphanumeric
        return value.replace("${" + identifier + "}", item).replace("&{" + identifier + "}", alphanumeric)
    if isinstance(value, list):
        return [_substitute(entry, identifier=identifier, item=item) for entry in value]
    if isinstance(value, dict):
        if value == {"Ref": identifier}:
            return item
        return {
            _substitute(key, identifier=identifier, item=item): _substitute(entry, identifier=identifier, item=item)
            for key, entry in value.items()
        }
    return value
