"""Tasks the flyte CLI runs, deploys and schedules in the end-to-end tests (tests/e2e/test_flyte_cli.py)."""

import datetime

import flyte

env = flyte.TaskEnvironment(name="cli_env", image="python:3.12-slim")


@env.task
async def shout(text: str) -> str:
    print(f"shouting {text}", flush=True)  # what `flyte get logs` shows
    return text.upper()


@env.task
async def nightly(trigger_time: datetime.datetime) -> str:
    return trigger_time.isoformat()
