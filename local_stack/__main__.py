"""``python -m local_stack``: run the whole stack on loopback until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from local_stack.stack import LocalStack, StackAlreadyRunning, StackConfig

DEFAULT_STATE_DIR = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / "flyte-serverless-stack"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)), help="API front port (8080)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="logs, kubeconfig, etcd data")
    parser.add_argument(
        "--no-executor",
        action="store_true",
        help="no local executor and no status mirror: play Flyte's data plane yourself (UpdateActionStatus)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)

    stack = LocalStack(StackConfig(state_dir=args.state_dir, api_port=args.port, data_plane=not args.no_executor))
    try:
        stack.start()
    except StackAlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot start the local stack: {exc}", file=sys.stderr)
        return 1

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    endpoint = stack.endpoint
    print(
        f"""
Local Flyte control plane is up.
  API endpoint : {endpoint}
  kubeconfig   : {stack.kube.kubeconfig}   (kubectl --kubeconfig ... get taskactions -n flyte)
  AWS (moto)   : {stack.aws.endpoint}   table {stack.aws.table_name}, bucket {stack.aws.bucket}
  logs         : {args.state_dir}

Create a run:
  curl -sS -X POST {endpoint}/flyteidl2.workflow.RunService/CreateRun -H 'Content-Type: application/json' -d '{{"runId":{{"project":"flytesnacks","domain":"development","name":"hello-1"}},"taskSpec":{{"taskTemplate":{{"id":{{"name":"hello.main","version":"v1"}},"type":"python-task","container":{{"image":"python:3.12","args":["python","-c","print(1)"]}}}}}}}}'

Run a real Flyte task with the flyte SDK (the local executor runs it, the status mirror reports it):
  .venv/bin/python -c "import flyte; from tests.e2e.sdk_tasks.nested import fan_out; flyte.init(endpoint='{endpoint}', insecure=True, org='local', project='flytesnacks', domain='development'); run = flyte.with_runcontext(mode='remote').run(fan_out, n=2); run.wait(quiet=True); print(run.phase, run.outputs())"
{"(--no-executor: the data plane is off; post UpdateActionStatus yourself)" if args.no_executor else ""}
Ctrl-C stops everything.""",
        flush=True,
    )
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
