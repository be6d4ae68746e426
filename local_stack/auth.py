"""Authentication in the local stack: the issuer and its clients, TLS for the front, and what
each kind of caller is given to authenticate with.

The deployed template's authorizer trusts an identity provider (``AuthIssuer``, ``AuthAudiences``);
locally that is ``LocalIssuer``, and the front's authorizers are the template's, with those two
parameters pointed at it. Three clients, as an operator would register them with Cognito:

- ``local-browser``: the public client (PKCE, no secret) people sign in with in a browser: the web
  console (its callback on the front, over HTTP and HTTPS, registered once the front is bound) and
  the SDK's browser login (its callback on ``localhost:53593``); the user scope. It is the client
  GetPublicClientConfig names, as ``AuthClientId`` is on AWS;
- ``local-user``: the CLI, curl, the SDK on a laptop, with client credentials: the user scope;
- ``local-task``: the SDK inside task processes (the local executor's "pods"): the data-plane
  scope only; enqueuing, watching and aborting children is all a task's SDK calls. (A task that
  itself starts runs or reads other runs, with ``flyte.run``/``flyte.remote``, needs a client
  granted the user scope too.)
- ``local-data-plane``: the events relay (local_stack.relay, deploy/kubernetes/events-relay), which
  forwards the executor's unauthenticated events to the API: the data-plane scope only. Flyte's
  executor itself has no credentials, and neither has the local executor.

Tests playing the data plane by hand get data-plane tokens minted directly (``data_plane_token``). All of it starts with every stack (a key and a CA take a fraction of a second), so
enforcement can be switched on at any time; whether the front enforces is the front's switch.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from functions.console.site import CALLBACK_PATH
from local_stack.issuer import Client, LocalIssuer, PublicClient
from local_stack.jwt_authorizer import JwtAuthorizer
from local_stack.private import private_directory, write_secret
from local_stack.template import http_api_authorizers, parameter_values
from local_stack.tls import TlsFiles, create_certificates, server_context

LOCAL_AUDIENCE = "flyte-serverless-local"  # the local value of the template's AuthAudiences
USER_CLIENT = "local-user"
BROWSER_CLIENT = "local-browser"
SDK_REDIRECT_URI = "http://localhost:53593/callback"  # the flyte SDK's browser login (its default)
TASK_CLIENT = "local-task"
DATA_PLANE_CLIENT = "local-data-plane"  # the events relay's client
EXECUTOR_SUBJECT = "local-executor"
# A cached token is replaced this long before it expires, so none expires in flight.
TOKEN_RENEWAL_MARGIN_SECONDS = 300


class LocalAuth:
    def __init__(self, *, state_dir: Path, issuer_port: int = 0, saved: Mapping[str, Any] | None = None) -> None:
        """``saved``: what a previous stack's ``saved_state()`` returned (local_stack.state): the
        issuer keeps its key, its port (when free) and its clients' secrets, so earlier tokens hold."""
        self.state_dir = state_dir
        parameters = parameter_values()
        self.user_scope: str = parameters["AuthUserScope"]
        self.data_plane_scope: str = parameters["AuthDataPlaneScope"]
        kept: Mapping[str, str] = (saved or {}).get("secrets", {})
        clients = [
            Client(USER_CLIENT, kept.get(USER_CLIENT) or secrets.token_hex(16), (self.user_scope,)),
            Client(TASK_CLIENT, kept.get(TASK_CLIENT) or secrets.token_hex(16), (self.data_plane_scope,)),
            Client(DATA_PLANE_CLIENT, kept.get(DATA_PLANE_CLIENT) or secrets.token_hex(16), (self.data_plane_scope,)),
        ]
        key = (saved or {}).get("key")
        try:
            port = (saved or {}).get("port") or issuer_port
            self.issuer = LocalIssuer(audience=LOCAL_AUDIENCE, clients=clients, port=port, key=key)
        except OSError:  # the saved port is taken now: tokens issued before will not verify
            self.issuer = LocalIssuer(audience=LOCAL_AUDIENCE, clients=clients, port=issuer_port, key=key)
        self.tls_files: TlsFiles | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def start(self) -> LocalAuth:
        private_directory(self.state_dir)
        self.tls_files = create_certificates(self.state_dir / "tls")
        self.issuer.start()
        for client_id in (USER_CLIENT, TASK_CLIENT, DATA_PLANE_CLIENT):  # what a mounted secret is
            write_secret(self.secret_file(client_id), self.issuer.client(client_id).secret)
        write_secret(self.run_token_key_file, self.issuer.private_key_pem())  # reconcile's, as KMS on AWS
        return self

    @property
    def run_token_key_file(self) -> Path:
        return self.state_dir / "run-token-key.pem"

    def run_token_environment(self) -> dict[str, str]:
        """What template.yaml gives ReconcileFunction to mint run tokens (runplane.aws.run_tokens),
        with this issuer as the signer: the front's authorizers accept its tokens as any other."""
        return {
            "RUN_TOKEN_ISSUER": self.issuer.url,
            "RUN_TOKEN_AUDIENCE": LOCAL_AUDIENCE,
            "RUN_TOKEN_SCOPE": self.data_plane_scope,
            "RUN_TOKEN_KEY_FILE": str(self.run_token_key_file),
            "RUN_TOKEN_KEY_ID": self.issuer.key_id,
        }

    def task_flyte_config(self, *, endpoint: str) -> Path:
        """The flyte config of a task pod: no client secret; the SDK sends its run's token, which
        reconcile put in the pod's environment (``FLYTE_RUN_TOKEN``), as ExternalCommand prints it."""
        from runplane.aws.run_tokens import RUN_TOKEN_ENV

        document = {
            "admin": {
                "endpoint": endpoint,
                "insecure": False,
                "caCertFilePath": str(self.ca_cert),
                "authType": "ExternalCommand",
                "command": ["printenv", RUN_TOKEN_ENV],
                "disableKeyring": True,
            }
        }
        path = self.state_dir / "flyte-task-run-token.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def stop(self) -> None:
        self.issuer.stop()

    def saved_state(self) -> dict[str, Any]:
        """What a restarted stack needs to keep this one's tokens valid (see ``saved``)."""
        return {
            "key": self.issuer.signing_key(),
            "port": int(self.issuer.url.rsplit(":", 1)[1]),
            "secrets": {
                client_id: self.issuer.client(client_id).secret
                for client_id in (USER_CLIENT, TASK_CLIENT, DATA_PLANE_CLIENT)
            },
        }

    # --- the front ---------------------------------------------------------------------------

    def template_parameters(self) -> dict[str, object]:
        """The template parameters without defaults, as this stack's issuer answers them, and the
        run tokens' issuer: here the same issuer, whose key signs them (``run_token_settings``)."""
        return {"AuthIssuer": self.issuer.url, "AuthAudiences": [LOCAL_AUDIENCE], "RunTokenIssuer": self.issuer.url}

    def authorizers(self) -> dict[str, JwtAuthorizer]:
        return {
            name: JwtAuthorizer(config) for name, config in http_api_authorizers(self.template_parameters()).items()
        }

    def register_console(self, *, origins: Sequence[str]) -> None:
        """The browser client, with the console's callback on each of the front's origins (known
        once the front is bound) and the SDK's; ``localhost`` as well as the loopback address,
        since a person may type either."""
        redirect_uris = [SDK_REDIRECT_URI]
        for origin in origins:
            for name in (origin, origin.replace("://127.0.0.1:", "://localhost:")):
                if name + CALLBACK_PATH not in redirect_uris:
                    redirect_uris.append(name + CALLBACK_PATH)
        client = PublicClient(client_id=BROWSER_CLIENT, redirect_uris=tuple(redirect_uris), scopes=(self.user_scope,))
        self.issuer.register(client)

    def tls_context(self) -> ssl.SSLContext:
        assert self.tls_files is not None, "start() first"
        return server_context(self.tls_files)

    @property
    def ca_cert(self) -> Path:
        assert self.tls_files is not None, "start() first"
        return self.tls_files.ca_cert

    def function_environment(self) -> dict[str, str]:
        """What template.yaml gives AuthMetadataFunction and ConsoleFunction, with the local issuer's
        values, and reconcile's run-token settings."""
        return {
            **self.run_token_environment(),
            "AUTH_ISSUER": self.issuer.url,
            "AUTH_METADATA_PATH": ".well-known/openid-configuration",
            "AUTH_CLIENT_ID": BROWSER_CLIENT,
            "AUTH_REDIRECT_URI": SDK_REDIRECT_URI,
            "AUTH_SCOPES": self.user_scope,
            "AUTH_AUDIENCE": "",
            "AUTH_TOKEN_ORIGIN": "",  # the token endpoint is on the issuer's origin
        }

    # --- what callers authenticate with --------------------------------------------------------

    def secret_file(self, client_id: str) -> Path:
        return self.state_dir / f"{client_id}.secret"

    def client_token(self, client_id: str) -> str:
        """A token of a registered client with all its scopes, reused until close to its expiry."""
        return self._cached(client_id, lambda: self.issuer.token_for(client_id))

    def data_plane_token(self) -> str:
        """A data-plane token for tests that play the data plane by hand (the relay gets its own
        by client credentials)."""
        return self._cached(
            EXECUTOR_SUBJECT, lambda: self.issuer.mint(subject=EXECUTOR_SUBJECT, scopes=[self.data_plane_scope])
        )

    def flyte_config(self, client_id: str, *, endpoint: str, project: str = "", domain: str = "") -> Path:
        """A flyte config file for a client: https to ``endpoint`` trusting the local CA, client
        credentials from the secret file (Flyte's file-mounted client secret), scopes as
        registered, no keyring. ``init_from_config`` and the in-cluster SDK (FLYTECTL_CONFIG) read it."""
        client = self.issuer.client(client_id)
        document: dict[str, object] = {
            "admin": {
                "endpoint": endpoint,
                "insecure": False,
                "caCertFilePath": str(self.ca_cert),
                "authType": "ClientSecret",
                "clientId": client.client_id,
                "clientSecretLocation": str(self.secret_file(client_id)),
                "scopes": list(client.scopes),
                "disableKeyring": True,
            }
        }
        if project or domain:
            document["task"] = {"org": "local", "project": project, "domain": domain}
        path = self.state_dir / f"flyte-{client_id}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def _cached(self, key: str, mint: Callable[[], str]) -> str:
        with self._lock:
            token, expires_at = self._tokens.get(key, ("", 0.0))
            if time.time() > expires_at - TOKEN_RENEWAL_MARGIN_SECONDS:
                token = mint()
                self._tokens[key] = (token, time.time() + self.issuer.token_lifetime_seconds)
            return token
