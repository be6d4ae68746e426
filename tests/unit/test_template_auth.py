"""How the local stack reads routes' authorization from a SAM template: SAM's rules for
``DefaultAuthorizer``, ``Authorizer: NONE`` and ``AuthorizationScopes``, parameters resolved."""

from __future__ import annotations

import pytest

from local_stack.template import http_api_authorizers, http_routes, parameter_values

TEMPLATE = {
    "Parameters": {
        "Issuer": {"Type": "String"},
        "Audiences": {"Type": "CommaDelimitedList", "Default": "a, b"},
        "UserScope": {"Type": "String", "Default": "api/user"},
        "AdminScope": {"Type": "String", "Default": "api/admin"},
    },
    "Resources": {
        "Api": {
            "Type": "AWS::Serverless::HttpApi",
            "Properties": {
                "Auth": {
                    "DefaultAuthorizer": "Jwt",
                    "Authorizers": {
                        "Jwt": {
                            "IdentitySource": "$request.header.X-Token",
                            "JwtConfiguration": {"issuer": {"Ref": "Issuer"}, "audience": {"Ref": "Audiences"}},
                            "AuthorizationScopes": [{"Ref": "UserScope"}],
                        }
                    },
                }
            },
        },
        "Function": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Handler": "functions.f.handler.handler",
                "Events": {
                    "Default": {
                        "Type": "HttpApi",
                        "Properties": {"ApiId": {"Ref": "Api"}, "Method": "post", "Path": "/a"},
                    },
                    "Admin": {
                        "Type": "HttpApi",
                        "Properties": {
                            "ApiId": {"Ref": "Api"},
                            "Method": "POST",
                            "Path": "/b",
                            "Auth": {"AuthorizationScopes": [{"Ref": "AdminScope"}, "literal/scope"]},
                        },
                    },
                    "Open": {
                        "Type": "HttpApi",
                        "Properties": {
                            "ApiId": {"Ref": "Api"},
                            "Method": "POST",
                            "Path": "/c",
                            "Auth": {"Authorizer": "NONE"},
                        },
                    },
                    "Stream": {"Type": "DynamoDB", "Properties": {}},
                },
            },
        },
    },
}


def test_routes_take_the_default_authorizer_its_scopes_or_their_own_or_none():
    routes = {route.path: route for route in http_routes(TEMPLATE)}
    assert set(routes) == {"/a", "/b", "/c"}
    assert (routes["/a"].method, routes["/a"].authorizer, routes["/a"].scopes) == ("POST", "Jwt", ("api/user",))
    assert (routes["/b"].authorizer, routes["/b"].scopes) == ("Jwt", ("api/admin", "literal/scope"))
    assert (routes["/c"].authorizer, routes["/c"].scopes) == (None, ())


def test_the_authorizer_resolves_parameters_and_overrides():
    (authorizer,) = http_api_authorizers({"Issuer": "https://idp.example.com"}, TEMPLATE).values()
    assert authorizer.issuer == "https://idp.example.com"
    assert authorizer.audience == ("a", "b")  # a CommaDelimitedList default, split
    assert authorizer.identity_header == "x-token"
    (overridden,) = http_api_authorizers({"Issuer": "https://i", "Audiences": ["z"]}, TEMPLATE).values()
    assert overridden.audience == ("z",)


def test_a_parameter_without_a_value_fails_clearly():
    assert "Issuer" not in parameter_values(TEMPLATE)
    with pytest.raises(KeyError, match="Issuer"):
        http_api_authorizers(None, TEMPLATE)
