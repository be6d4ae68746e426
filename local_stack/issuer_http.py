"""The local identity provider over HTTP: its paths, the request handler the issuer's server runs,
and the two pages a browser sees (the consent page, and the error page of a request that cannot
be sent back). What each path answers is ``local_stack.issuer``'s.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from local_stack.oauth import CHALLENGE_METHOD, AuthorizationError, AuthorizationRequest, OAuthError, form_fields

if TYPE_CHECKING:
    from local_stack.issuer import LocalIssuer

logger = logging.getLogger("local_stack.issuer")

DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth2/token"
AUTHORIZE_PATH = "/oauth2/authorize"
MAX_FORM_BYTES = 64 * 1024  # a token request is a few hundred bytes


def request_handler_class(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    """The issuer's HTTP handler: every request is answered from ``issuer``."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path in DISCOVERY_PATHS:
                self._send(200, issuer.discovery_document())
            elif path == JWKS_PATH:
                self._send(200, issuer.key_set())
            elif path == AUTHORIZE_PATH:
                self._authorize(form_fields(query), decision=None)
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            path = self.path.partition("?")[0]
            if path not in (TOKEN_PATH, AUTHORIZE_PATH):
                self._send(404, {"error": "not_found"})
                return
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_FORM_BYTES:
                self._send(413, {"error": "invalid_request", "error_description": "request too large"})
                self.close_connection = True
                return
            form = form_fields(self.rfile.read(length).decode("utf-8", errors="replace"))
            if path == AUTHORIZE_PATH:  # the consent page's buttons
                self._authorize(form, decision=form.get("decision", ""), code=form.get("consent_code", ""))
                return
            origin = self.headers.get("origin", "")
            cors = {"access-control-allow-origin": origin, "vary": "origin"} if origin in issuer.cors_origins() else {}
            try:
                answer = issuer.grant(form, self.headers.get("authorization"))
            except OAuthError as error:
                extra = {"www-authenticate": 'Basic realm="token"'} if error.status == 401 else {}
                body = {"error": error.error, "error_description": error.description}
                self._send(error.status, body, {**extra, **cors})
                return
            self._send(200, answer, {"cache-control": "no-store", **cors})

        def _authorize(self, params: Mapping[str, str], *, decision: str | None, code: str = "") -> None:
            """The consent page (``decision`` None), or the redirect its buttons lead to; approving
            needs the banner's consent code, else the page again (403), saying so."""
            try:
                request = issuer.authorization_request(params)
            except AuthorizationError as error:
                if error.location is not None:
                    self._redirect(error.location)
                else:
                    self._page(400, error_page(error))
                return
            if decision is None:
                self._page(200, consent_page(request, person=issuer.person))
            elif decision == "approve" and not issuer.consents(code):
                self._page(403, consent_page(request, person=issuer.person, wrong_code=True))
            else:
                self._redirect(issuer.approve(request) if decision == "approve" else issuer.deny(request))

        def _send(self, status: int, document: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
            self._answer(status, json.dumps(document).encode(), {"content-type": "application/json", **(headers or {})})

        def _page(self, status: int, page: str) -> None:
            headers = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store", **PAGE_HEADERS}
            self._answer(status, page.encode(), headers)

        def _redirect(self, location: str) -> None:
            # 303: the browser follows with a GET, also after the consent form's POST
            self._answer(303, b"", {"location": location, "cache-control": "no-store"})

        def _answer(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("issuer: %s - %s", self.address_string(), format % args)

    return RequestHandler


# The consent page: no script, its own inline style; nobody may frame it (a click on it is consent).
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
PAGE_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;background:#f3f4f6;margin:0}"
    "main{max-width:30rem;margin:12vh auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;"
    "box-shadow:0 1px 3px #0002}button{font:inherit;padding:.4rem 1rem;margin-right:.5rem;cursor:pointer}"
    "code{font-size:13px}.note{color:#6b7280;font-size:13px}"
)


def consent_page(request: AuthorizationRequest, *, person: str, wrong_code: bool = False) -> str:
    fields = {
        "client_id": request.client_id,
        "redirect_uri": request.redirect_uri,
        "response_type": "code",
        "state": request.state,
        "code_challenge": request.code_challenge,
        "code_challenge_method": CHALLENGE_METHOD,
        "scope": " ".join(request.scopes),
    }
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">' for name, value in fields.items()
    )
    return _page(
        "Sign in",
        f"<p><strong>{html.escape(request.client_id)}</strong> asks to act as <strong>{html.escape(person)}</strong>"
        f" with <code>{html.escape(' '.join(request.scopes))}</code>.</p>"
        f'<form method="post" action="{AUTHORIZE_PATH}">{hidden}'
        '<p><label for="consent-code">Consent code (printed in the local stack\'s banner)</label> '
        '<input id="consent-code" name="consent_code" autocomplete="off" inputmode="numeric"></p>'
        + ('<p class="error" id="wrong-code">That is not the consent code.</p>' if wrong_code else "")
        + f'<button id="approve" name="decision" value="approve" type="submit">Sign in as {html.escape(person)}</button>'
        '<button id="deny" name="decision" value="deny" type="submit">Cancel</button></form>'
        f'<p class="note">You will be sent back to {html.escape(request.redirect_uri)}</p>',
    )


def error_page(error: AuthorizationError) -> str:
    return _page(
        "Sign-in refused",
        f"<p><code>{html.escape(error.error)}</code>: {html.escape(error.description)}</p>"
        '<p class="note">The request names a client or a redirect URI this identity provider does not know, '
        "so it is not sent back anywhere.</p>",
    )


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}: local identity provider</title>'
        f'<link rel="icon" href="data:,"><style>{PAGE_STYLE}</style></head>'
        f"<body><main><h1>{title}</h1>{body}</main></body></html>"
    )
