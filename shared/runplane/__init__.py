"""runplane: the shared core of the serverless Flyte 2 run control plane.

Every Lambda function imports this package from the shared layer. It holds what more than one
function needs and nothing that only one of them does:

- ``identifiers``  run/action names, their validation and generation, TaskAction names
- ``phases``       Flyte's ActionPhase helpers (the enums themselves come from ``flyteidl2``)
- ``records``      the Action record and its DynamoDB item mapping (one table, one run per partition)
- ``store``        the DynamoDB data-access layer (conditional writes only, never a scan)
- ``blobs``        the S3 data bucket (run inputs)
- ``aws_http``     the table's and the bucket's clients: signed HTTP in botocore's calling convention,
                   without botocore's cold-start cost
- ``aws_clients``  botocore's low-level clients for the other services, one session per process
- ``transformers`` records -> flyteidl2 messages returned on the wire
- ``connect``      the Connect protocol (unary) over API Gateway HTTP API payload-v2 events
- ``settings``     configuration from environment variables, validated once per container
"""
