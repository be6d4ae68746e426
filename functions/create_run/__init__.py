"""create_run: where a run begins. RunService/CreateRun over the HTTP API writes the root action."""
