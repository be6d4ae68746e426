"""A task as a Flyte user writes it; the SDK bundles this module and runs it remotely."""

import flyte

env = flyte.TaskEnvironment(name="hello_env", image="python:3.12-slim")


@env.task
async def double(x: int) -> int:
    return x * 2
