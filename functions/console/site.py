"""The web console's files, and how each request for one is answered.

The console is a single-page app: one HTML document for ``/``, ``/v2`` and every ``/v2/...`` path
(the links the flyte CLI prints, ``/v2/domain/<d>/project/<p>/runs/<run>``), and plain ES modules
and a stylesheet under ``/console/``. The pages call the same Connect procedures as the SDK, from
the browser; this module serves files and nothing else. Sign-in is the pages' too (``js/login.js``:
PKCE against the identity provider the API names, as the flyte SDK does it); the provider sends
people back to ``CALLBACK_PATH``, one more ``/v2`` path.

Caching: the document names its assets under ``/console/<version>/``, where the version is a hash
of every file's content, so an asset URL never changes meaning: ``immutable`` with a year's
max-age. The document itself is ``no-cache`` (revalidated with its ETag on every load), so a deploy
is seen at the next load. An asset asked for under another version (a page loaded before a
deploy) or without one is answered with today's content, ``no-cache``: never cached as immutable
under a name it does not match.

Standard library only, read once per container: the files are a few tens of kilobytes, hashed and
gzip-compressed on the first request (well under a millisecond each); no protobuf, no AWS SDK.
"""

from __future__ import annotations

import hashlib
import os

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
DOCUMENT = "index.html"  # the single page; its "{{ASSETS}}" is the versioned asset prefix
ASSET_PREFIX = "/console/"
# Content-hashed names never change meaning: cache them for a year and never revalidate.
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"  # cache, but ask (ETag) before every use: a deploy is seen at the next load
VERSION_LENGTH = 12  # hex digits of the content hash in asset URLs: collisions are not a concern
# Smaller bodies gain nothing from gzip but its 20-byte header.
MIN_GZIP_BYTES = 1024
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CALLBACK_PATH = "/v2/callback"  # the redirect URI's path on the console's origin (js/login.js)
# The characters of a host (a name, an IPv4 or bracketed IPv6 address) and its port: anything else
# in the configured origin would be a second source, or a second directive, in the policy.
HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")


def security_headers(*, identity_provider: str = "") -> dict[str, str]:
    """The pages load only their own files and call only their own origin's API, and the identity
    provider's token endpoint (an origin) when signing in."""
    connect = f"'self' {identity_provider}" if identity_provider else "'self'"
    return {
        "content-security-policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        ),
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
    }


SECURITY_HEADERS = security_headers()


def identity_provider_origin(*, token_origin: str, issuer: str) -> str:
    """The origin of the token endpoint the pages exchange their sign-in code at: the configured
    one (``AUTH_TOKEN_ORIGIN``, for a provider whose token endpoint is not on the issuer's host,
    as Cognito's), else the issuer's (``AUTH_ISSUER``). Empty when neither is an http(s) URL."""
    scheme, separator, rest = (token_origin or issuer).partition("://")
    host = rest.split("/", 1)[0]
    if scheme not in ("http", "https") or not separator or not host or not set(host) <= HOST_CHARACTERS:
        return ""
    return f"{scheme}://{host}"


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, *, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class Asset:
    """A file's content, and its gzip-compressed content once asked for."""

    __slots__ = ("_gzipped", "body", "content_type", "name")

    def __init__(self, *, name: str, content_type: str, body: bytes) -> None:
        self.name, self.content_type, self.body = name, content_type, body
        self._gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes:
        if self._gzipped is None:
            import gzip  # only when a client asks for it: not on the cold start's path

            self._gzipped = gzip.compress(self.body, mtime=0)
        return self._gzipped


class ConsoleSite:
    def __init__(self, *, static_dir: str = STATIC_DIR, identity_provider: str = "") -> None:
        self._security_headers = security_headers(identity_provider=identity_provider)
        digest = hashlib.sha256()
        assets: dict[str, Asset] = {}
        for name in _files(static_dir):
            suffix = os.path.splitext(name)[1]
            with open(os.path.join(static_dir, name), "rb") as file:
                body = file.read()
            digest.update(name.encode() + b"\0" + body + b"\0")
            assets[name] = Asset(name=name, content_type=CONTENT_TYPES[suffix], body=body)
        self.version = digest.hexdigest()[:VERSION_LENGTH]
        document = assets.pop(DOCUMENT)
        self._document = Asset(
            name=DOCUMENT,
            content_type=document.content_type,
            body=document.body.replace(b"{{ASSETS}}", f"{ASSET_PREFIX}{self.version}/".encode()),
        )
        self._assets = assets

    def page(self, *, headers: dict[str, str]) -> Response:
        """The single page, for every console path (the app routes on the URL)."""
        return self._answer(self._document, cache=NO_CACHE, etag=self.version, headers=headers)

    def asset(self, *, path: str, headers: dict[str, str]) -> Response:
        """``path`` is what follows ``/console/``: ``<version>/<name>``, or a bare ``<name>``."""
        version, _, name = path.partition("/")
        if not name:
            version, name = "", version
        asset = self._assets.get(name)
        if asset is None:
            return not_found(f"no console file {path!r}")
        current = version == self.version
        return self._answer(asset, cache=IMMUTABLE if current else NO_CACHE, etag=self.version, headers=headers)

    def _answer(self, asset: Asset, *, cache: str, etag: str, headers: dict[str, str]) -> Response:
        tag = f'"{etag}"'
        common = {"cache-control": cache, "etag": tag, "vary": "accept-encoding", **self._security_headers}
        if tag in [t.strip() for t in headers.get("if-none-match", "").split(",")]:
            return Response(status=304, headers=common, body=b"")
        wants_gzip = "gzip" in headers.get("accept-encoding", "").lower()
        if wants_gzip and len(asset.body) >= MIN_GZIP_BYTES:
            return Response(
                status=200,
                headers={**common, "content-type": asset.content_type, "content-encoding": "gzip"},
                body=asset.gzipped,
            )
        return Response(status=200, headers={**common, "content-type": asset.content_type}, body=asset.body)


def _files(root: str) -> list[str]:
    """The servable files under ``root``, as sorted relative POSIX paths (os.walk, not pathlib:
    pathlib's imports would double this function's cold start)."""
    found = []
    for folder, _, names in os.walk(root):
        relative = os.path.relpath(folder, root)
        for name in names:
            if os.path.splitext(name)[1] in CONTENT_TYPES:
                found.append(name if relative == "." else f"{relative.replace(os.sep, '/')}/{name}")
    return sorted(found)


def not_found(message: str) -> Response:
    return Response(
        status=404,
        headers={"content-type": "text/plain; charset=utf-8", "cache-control": NO_CACHE, **SECURITY_HEADERS},
        body=f"Not found: {message}\n".encode(),
    )
