"""The console function: the single page for every console path, assets under a content-hash
version with immutable caching, the page itself revalidated, and a cold start without protobuf."""

from __future__ import annotations

import base64
import gzip
import re
import subprocess
import sys
from typing import Any

import pytest

from functions.console.handler import handler
from functions.console.site import CALLBACK_PATH, IMMUTABLE, NO_CACHE, ConsoleSite, identity_provider_origin

REPO_PATHS = [
    "/",
    "/v2",
    "/v2/domain/development/project/flytesnacks/runs/r1",
    "/v2/domain/d/project/p/tasks",
    CALLBACK_PATH + "?code=c&state=s",
]


def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    answer: dict[str, Any] = handler(
        {"rawPath": path, "headers": headers or {}, "requestContext": {"http": {"method": "GET"}}}, None
    )
    assert answer["isBase64Encoded"] is True
    return answer["statusCode"], answer["headers"], base64.b64decode(answer["body"])


@pytest.mark.parametrize("path", REPO_PATHS)
def test_every_console_path_is_the_single_page_never_cached_without_asking(path):
    status, headers, body = get(path)
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == NO_CACHE and headers["etag"]
    assert b'<div id="app">' in body and b"{{ASSETS}}" not in body
    assert "script-src 'self'" in headers["content-security-policy"]  # nothing from another host


def test_assets_are_named_by_their_content_and_cached_for_good():
    _, _, page = get("/")
    assets = re.findall(rb'(?:href|src)="(/console/[^"]+)"', page)
    assert any(a.endswith(b"/js/app.js") for a in assets) and any(a.endswith(b"console.css") for a in assets)
    version = ConsoleSite().version
    for asset in assets:
        assert asset.startswith(f"/console/{version}/".encode())
        status, headers, body = get(asset.decode())
        assert status == 200 and headers["cache-control"] == IMMUTABLE and body, asset
    status, headers, _ = get(f"/console/{version}/js/app.js")
    assert headers["content-type"] == "text/javascript; charset=utf-8"


def test_an_asset_of_another_version_or_none_is_served_but_not_as_immutable():
    for path in ("/console/000000000000/js/app.js", "/console/console.css"):
        status, headers, body = get(path)
        assert status == 200 and headers["cache-control"] == NO_CACHE and body


def test_unknown_files_and_traversal_are_not_found():
    version = ConsoleSite().version
    for path in (f"/console/{version}/nope.js", f"/console/{version}/../site.py", "/console/", "/elsewhere"):
        status, headers, body = get(path)
        assert status == 404 and headers["content-type"].startswith("text/plain"), path
        assert b"Not found" in body


def test_gzip_when_asked_and_a_304_for_a_known_etag():
    version = ConsoleSite().version
    status, headers, body = get(f"/console/{version}/js/run.js", {"Accept-Encoding": "gzip, br"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert b"WatchActions" in gzip.decompress(body)
    status, headers, _ = get("/v2", {"If-None-Match": headers["etag"]})
    assert status == 304 and headers["cache-control"] == NO_CACHE


def test_the_pages_may_call_the_token_endpoints_origin_and_no_other(monkeypatch):
    monkeypatch.setenv("AUTH_ISSUER", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool")
    monkeypatch.delenv("AUTH_TOKEN_ORIGIN", raising=False)
    _, headers, _ = get(CALLBACK_PATH)
    assert "connect-src 'self' https://cognito-idp.eu-west-1.amazonaws.com;" in headers["content-security-policy"]
    monkeypatch.setenv("AUTH_TOKEN_ORIGIN", "https://pool.auth.eu-west-1.amazoncognito.com")  # Cognito's domain
    _, headers, _ = get("/v2")
    assert "connect-src 'self' https://pool.auth.eu-west-1.amazoncognito.com;" in headers["content-security-policy"]
    for issuer in ("", "not a url", "https://idp.example; script-src *", "javascript://x"):
        assert identity_provider_origin(token_origin="", issuer=issuer) == "", issuer


def test_the_cold_start_imports_neither_protobuf_nor_the_aws_sdk():
    probe = (
        "import sys; import functions.console.handler as h; h.site(); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('google', 'flyteidl2', 'boto3', 'botocore', "
        "'aws_lambda_powertools', 'runplane')]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
