"""``python -m local_stack``: run the whole stack on loopback until Ctrl-C, authentication on
unless ``--no-auth``; the banner prints the endpoints, a token and ready-to-paste commands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from local_stack.auth import BROWSER_CLIENT, USER_CLIENT
from local_stack.kube import ControlPlaneError
from local_stack.stack import LocalStack, StackAlreadyRunning, StackConfig
from local_stack.state import FRESH_HINT, StateUnreadable

DEFAULT_STATE_DIR = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / "flyte-serverless-stack"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)), help="API front port (8080)")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the state kept across restarts, logs, kubeconfig"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="discard the state of the previous stack (runs, data, etcd) and start empty",
    )
    parser.add_argument(
        "--no-executor",
        action="store_true",
        help="no local executor and no status mirror: play Flyte's data plane yourself (UpdateActionStatus)",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="no authentication: the front does not check tokens (as an API without authorizers)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)

    stack = LocalStack(
        StackConfig(
            state_dir=args.state_dir,
            api_port=args.port,
            data_plane=not args.no_executor,
            auth=not args.no_auth,
            keep_state=True,
        )
    )
    try:
        if args.fresh:
            stack.discard_state()
        stack.start()
    except (StackAlreadyRunning, StateUnreadable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # during the start: start() has stopped what it started
        return 130
    except ControlPlaneError as exc:
        print(f"error: the cluster did not start on its saved state: {exc}; {FRESH_HINT}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot start the local stack: {exc}", file=sys.stderr)
        return 1

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:  # Ctrl-C while the banner prints stops the stack as well
        print(banner(stack, state_dir=args.state_dir, no_executor=args.no_executor), flush=True)
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping...", flush=True)
        stopping = time.monotonic()
        stack.stop()
        print(f"stopped in {time.monotonic() - stopping:.1f}s (state kept in {args.state_dir})", flush=True)
    # Every component has stopped. What may be left are worker threads still blocked on a call to
    # one of them (a reconcile pool's Kubernetes request), which the interpreter would join at
    # exit for seconds: leave without waiting for them.
    logging.shutdown()
    os._exit(0)


def banner(stack: LocalStack, *, state_dir: Path, no_executor: bool) -> str:
    """What the stack prints once up: where everything is and how to call it, with a token."""
    assert stack.kube is not None and stack.aws is not None and stack.auth is not None  # started
    endpoint = stack.endpoint
    run = (
        '{"runId":{"project":"flytesnacks","domain":"development","name":"hello-1"},"taskSpec":{"taskTemplate":'
        '{"id":{"name":"hello.main","version":"v1"},"type":"python-task","container":{"image":"python:3.12",'
        '"args":["python","-c","print(1)"]}}}}'
    )
    sdk_run = (
        "from tests.e2e.sdk_tasks.nested import fan_out; run = flyte.with_runcontext(mode='remote').run(fan_out, n=2); "
        "run.wait(quiet=True); print(run.phase, run.outputs())"
    )
    lines = [
        "",
        "Local Flyte control plane is up.",
        f"  API endpoint : {endpoint}   (and {stack.tls_endpoint}, CA {stack.ca_cert})",
        f"  console      : {endpoint}/v2   (runs, tasks and triggers in the browser"
        + ("; Sign in at the local issuer, or give Token the token below)" if stack.authenticating else ")"),
        f"  kubeconfig   : {stack.kube.kubeconfig}   (kubectl --kubeconfig ... get taskactions -n flyte)",
        f"  AWS (moto)   : {stack.aws.endpoint}   table {stack.aws.table_name}, bucket {stack.aws.bucket}",
        f"  logs         : {state_dir}",
    ]
    if stack.authenticating:
        issuer = stack.auth.issuer
        user = issuer.client(USER_CLIENT)
        config = stack.auth.flyte_config(
            USER_CLIENT, endpoint=stack.tls_endpoint, project="flytesnacks", domain="development"
        )
        lines += [
            f"  auth         : on (--no-auth turns it off): issuer {issuer.url}, audience {issuer.audience}",
            f"  user client  : {user.client_id}, secret {user.secret}   (scope {stack.auth.user_scope})",
            f"  sign-in      : {BROWSER_CLIENT} (PKCE, no secret) as {issuer.person}: the console's Sign in, "
            "the SDK's browser login",
            f"  consent code : {issuer.consent_code}   (the sign-in page asks for it)",
            "",
            f"A token (scope {stack.auth.user_scope}, valid {issuer.token_lifetime_seconds // 60} minutes):",
            f"  export TOKEN={stack.auth.client_token(USER_CLIENT)}",
            f"  # a fresh one (its access_token): curl -sS -u {user.client_id}:{user.secret} "
            f"-d grant_type=client_credentials {issuer.token_endpoint}",
            "",
            "Create a run:",
            f'  curl -sS -X POST {endpoint}/flyteidl2.workflow.RunService/CreateRun -H "Authorization: Bearer $TOKEN" '
            f"-H 'Content-Type: application/json' -d '{run}'",
            "",
            "Run a real Flyte task with the flyte SDK, over TLS with client credentials (the local executor runs it,",
            "the status mirror reports it):",
            f"  .venv/bin/python -c \"import flyte; flyte.init_from_config('{config}'); {sdk_run}\"",
        ]
    else:
        lines += [
            "  auth         : off (--no-auth): no route checks a token",
            "",
            "Create a run:",
            f"  curl -sS -X POST {endpoint}/flyteidl2.workflow.RunService/CreateRun "
            f"-H 'Content-Type: application/json' -d '{run}'",
            "",
            "Run a real Flyte task with the flyte SDK (the local executor runs it, the status mirror reports it):",
            f"  .venv/bin/python -c \"import flyte; flyte.init(endpoint='{endpoint}', insecure=True, org='local', "
            f"project='flytesnacks', domain='development'); {sdk_run}\"",
        ]
    if no_executor:
        lines.append("(--no-executor: the data plane is off; post UpdateActionStatus yourself)")
    lines += ["", "Ctrl-C stops everything."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
