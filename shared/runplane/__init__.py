"""runplane: the shared core of the serverless Flyte 2 run control plane, deployed as the layer.

Every Lambda function imports it; it holds what more than one function needs and nothing only one
of them does. Its packages are layers: each imports only those below it (an import-linter
``layers`` contract in pyproject.toml keeps it so).

- ``connect``  the wire: the Connect protocol over API Gateway's payload-v2 events (router, codecs,
               server-stream envelopes, the ``projects`` claim), Flyte's list semantics (filters,
               sorts, keyset page tokens) and the transformers from records to flyteidl2 messages
- ``ops``      logs (the run and action on every line), EMF metrics, settings from the environment
- ``table``    the DynamoDB data access: the Action record and its item mapping, the actions'
               conditional writes and reads, the task/trigger/project registry, the mirror's leases,
               an attempt's log context from its recorded events
- ``kube``     the TaskAction client (the Kubernetes client, imported lazily) and EKS's token
- ``aws``      the AWS clients: signed HTTP for the table, the bucket and EKS (``aws.http``), botocore
               for the rest (``aws.clients``), the data bucket, CloudWatch Logs, waking the mirror
- ``flyte``    Flyte's vocabulary, no I/O: identifiers and names, phases and the phase guard, request
               validation, the executor's output layout
- ``errors``   the domain's refusals, which only ``connect`` turns into Connect codes
"""
