#!/bin/sh
# The Lambda Web Adapter starts this (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap, Handler: this file):
# read_runs' streaming entry, an HTTP server on AWS_LWA_PORT.
export PYTHONPATH="${LAMBDA_TASK_ROOT:-/var/task}:/opt/python${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m functions.read_runs.stream
